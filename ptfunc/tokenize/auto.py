"""Pick the right tokenizer class for a directory, as users' directories come.

:func:`tokenizer_class_for` decides, in this order: the ``kind`` the caller gives;
``tokenizer_config.json``'s ``tokenizer_class`` (ptfunc and today's ``transformers``
write it; a ``Fast`` suffix is ignored); ``config.json``'s model type (inferred
from its fields for pytorch-transformers 1.0 files); and last the vocabulary files
themselves (``spiece.model``, ``vocab.bin``, ``encoder.json`` + ``vocab.bpe``, a
``vocab.txt`` holding ``[CLS]`` or ``<eos>``, or BPE merges with ``</w>``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import hub
from .albert import AlbertTokenizer
from .base import PreTrainedTokenizer
from .bert import BertTokenizer
from .deberta_v2 import DebertaV2Tokenizer
from .gpt2 import GPT2Tokenizer
from .openai import OpenAIGPTTokenizer
from .roberta import RobertaTokenizer
from .tokenizer_json import TOKENIZER_FILE, PreTrainedTokenizerFast
from .transfo_xl import TransfoXLTokenizer
from .xlm import XLMTokenizer
from .xlnet import XLNetTokenizer

__all__ = ["TOKENIZER_CLASSES", "tokenizer_class_for", "load_tokenizer"]

TOKENIZER_CLASSES: dict[str, type[PreTrainedTokenizer]] = {
    "bert": BertTokenizer,
    "gpt2": GPT2Tokenizer,
    "openai-gpt": OpenAIGPTTokenizer,
    "transfo-xl": TransfoXLTokenizer,
    "xlnet": XLNetTokenizer,
    "xlm": XLMTokenizer,
    "roberta": RobertaTokenizer,
    "distilbert": BertTokenizer,
    "electra": BertTokenizer,
    "albert": AlbertTokenizer,
    "deberta-v2": DebertaV2Tokenizer,
    "tokenizer-json": PreTrainedTokenizerFast,
}
"""``{model type: tokenizer class}``; also the values ``kind`` accepts (``"tokenizer-json"``:
any ``tokenizer.json``)."""

_BY_CLASS_NAME = {cls.__name__: kind for kind, cls in TOKENIZER_CLASSES.items()}
_BY_CLASS_NAME["TokenizersBackend"] = "tokenizer-json"  # transformers 5's name of the class


def _from_tokenizer_config(directory: Path) -> str | None:
    path = directory / "tokenizer_config.json"
    if not path.is_file():
        return None
    try:
        name = json.loads(path.read_text(encoding="utf-8")).get("tokenizer_class")
    except (ValueError, AttributeError):
        return None
    if not isinstance(name, str):
        return None
    return _BY_CLASS_NAME.get(name, _BY_CLASS_NAME.get(name.removesuffix("Fast")))


def _from_model_config(directory: Path) -> str | None:
    path = directory / "config.json"
    if not path.is_file():
        return None
    from ..archs.registry import model_type_of

    try:
        config = json.loads(path.read_text(encoding="utf-8"))
        return model_type_of(config) if isinstance(config, dict) else None
    except ValueError:
        return None


def _first_line_with(path: Path, needles: tuple[str, ...], limit: int = 2000) -> str | None:
    with open(path, encoding="utf-8", errors="replace") as handle:
        for i, line in enumerate(handle):
            for needle in needles:
                if needle in line:
                    return needle
            if i >= limit:
                break
    return None


def _from_files(directory: Path) -> str | None:
    if (directory / "spiece.model").is_file():
        return "xlnet"
    if (directory / "vocab.bin").is_file():
        return "transfo-xl"
    if (directory / "encoder.json").is_file() and (directory / "vocab.bpe").is_file():
        return "gpt2"
    if (directory / "vocab.txt").is_file():
        found = _first_line_with(directory / "vocab.txt", ("[CLS]", "<eos>"))
        return {"[CLS]": "bert", "<eos>": "transfo-xl"}.get(found or "")
    if (directory / "vocab.json").is_file() and (directory / "merges.txt").is_file():
        if _first_line_with(directory / "merges.txt", ("</w>",)) is None:
            return "gpt2"
        vocab = (directory / "vocab.json").read_text(encoding="utf-8", errors="replace")
        return "xlm" if "<special1>" in vocab else "openai-gpt"
    if (directory / TOKENIZER_FILE).is_file():
        return "tokenizer-json"
    return None


def _choose(directory: Path, has: Callable[[str], bool]) -> str | None:
    """The kind for ``directory``; ``has(name)``: whether the directory (or repo) has a file."""
    for find in (_from_tokenizer_config, _from_model_config, _from_files):
        found = find(directory)
        if found is not None and found not in TOKENIZER_CLASSES:
            continue  # a model type of today's (llama, qwen2, ...): its tokenizer.json says
        if found is not None:
            cls = TOKENIZER_CLASSES[found]
            optional = cls.optional_vocab_files
            needed = [name for name in cls.vocab_files_names.values() if name not in optional]
            if has(TOKENIZER_FILE) and not all(has(name) for name in needed):
                return "tokenizer-json"  # only tokenizer.json: it holds the family's vocabulary
            return found
    return "tokenizer-json" if has(TOKENIZER_FILE) else None


def tokenizer_class_for(
    path: str | os.PathLike[str], kind: str | None = None
) -> type[PreTrainedTokenizer]:
    """The tokenizer class for the directory ``path`` (see the module docstring).

    Args:
        path: a tokenizer or model directory.
        kind: force a model type (``"bert"``, ``"gpt2"``, ``"openai-gpt"``,
            ``"transfo-xl"``, ``"xlnet"``, ``"xlm"``), or ``"tokenizer-json"``.

    Raises:
        FileNotFoundError: ``path`` is not a directory.
        ValueError: an unknown ``kind``, or nothing in the directory says which tokenizer.
    """
    if kind is not None:
        if kind not in TOKENIZER_CLASSES:
            raise ValueError(
                f"unknown tokenizer kind {kind!r}; expected one of {', '.join(TOKENIZER_CLASSES)}"
            )
        return TOKENIZER_CLASSES[kind]
    directory = Path(path)
    if not directory.is_dir():
        raise FileNotFoundError(f"expected a tokenizer directory at {directory}")
    found = _choose(directory, lambda name: (directory / name).is_file())
    if found is not None:
        return TOKENIZER_CLASSES[found]
    raise ValueError(
        f"cannot tell which tokenizer {directory} holds: expected a tokenizer_config.json, a "
        "config.json, or vocabulary files (tokenizer.json, vocab.txt, vocab.json + merges.txt, "
        "spiece.model, vocab.bin); name the kind explicitly"
    )


def load_tokenizer(
    path: str | os.PathLike[str], kind: str | None = None, **kwargs: Any
) -> PreTrainedTokenizer:
    """Load the tokenizer of a directory, a 1.0 shortcut name or a Hub repo id,
    whichever family it is.

    ``kwargs`` go to the class's ``from_pretrained`` (e.g. ``do_lower_case=False``).

    Example:
        >>> from ptfunc.cli import DEFAULT_MODEL
        >>> type(load_tokenizer(DEFAULT_MODEL)).__name__
        'GPT2Tokenizer'
    """
    if kind is None and not hub.is_local(path):
        entry = hub.shortcut(os.fspath(path))
        if entry is not None:
            kind = str(entry["model_type"])
        else:  # a repo id: its tokenizer_config.json or config.json says which
            options = hub.HubOptions.pop_from(dict(kwargs))
            names = ("tokenizer_config.json", "config.json")
            chosen: list[str | None] = []

            def choose(repo: Any, directory: Path) -> tuple[str, ...]:
                chosen.append(_choose(directory, repo.has))  # the repo's files, not fetched
                return ()

            found = hub.fetch(path, [names], list(names), options=options, then=choose)
            cls = TOKENIZER_CLASSES[chosen[0]] if chosen[0] else tokenizer_class_for(found)
            return cls.from_pretrained(path, **kwargs)
    return tokenizer_class_for(path, kind).from_pretrained(path, **kwargs)
