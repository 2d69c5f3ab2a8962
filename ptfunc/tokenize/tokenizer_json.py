"""``PreTrainedTokenizerFast``: a ``tokenizer.json`` (Hugging Face ``tokenizers``), ptfunc's API.

Today's checkpoints (Llama 3, Mistral, Qwen2/3, Pythia, ...) ship their tokenizer as one
``tokenizer.json`` (normalizer, pre-tokenizer, model, post-processor, decoder and added
tokens, run by the Rust ``tokenizers`` library) plus ``tokenizer_config.json`` (special
tokens, ``chat_template``, ``padding_side``, ``model_max_length``, ...), optionally
``special_tokens_map.json`` and ``chat_template.jinja``. This class wraps the Rust
tokenizer and reads those files the way ``transformers`` 5's ``PreTrainedTokenizerFast``
(``TokenizersBackend``) does, so ids, tokens and decoded text are the same:

- ``tokenizer.json`` is the truth for the pipeline, its post-processor included
  (``add_bos_token`` / ``add_eos_token`` in ``tokenizer_config.json`` are ignored on load,
  as in ``transformers``; passing them to :meth:`~PreTrainedTokenizerFast.from_pretrained`
  or setting the attributes rebuilds the post-processor as ``transformers`` does);
- ``added_tokens_decoder`` of ``tokenizer_config.json`` is applied on top of the file's
  added tokens, and special tokens missing from the added tokens are added as special;
- ``chat_template.jinja`` (and ``additional_chat_templates/*.jinja``) win over the
  config's ``chat_template``; ``special_tokens_map.json`` is read only when the config has
  no ``added_tokens_decoder`` (the legacy layout);
- ``decode`` skips the tokens the Rust tokenizer marks special, and cleans up spaces only
  when ``clean_up_tokenization_spaces`` is set and the model is not BPE.

Batches go through the Rust ``encode_batch`` (parallel); truncation and padding are set
on the Rust tokenizer for the call only and switched off again afterwards, so the object
holds no per-call state between calls (one tokenizer is not meant to encode from two
threads at once).

Differences from ``transformers`` (each also where it applies): ptfunc's API, so
``encode`` adds no special tokens unless asked (``tokenizer(text)`` and
:meth:`~PreTrainedTokenizerFast.batch_encode` do, as in ``transformers``); unknown ids and
tokens raise ``ValueError`` instead of giving None; ``model_max_length`` is capped at
10**12 ("unbounded"); the Mistral pre-tokenizer regex patch of ``transformers`` is not
applied; ``sanitize_control_tokens`` is not offered by ``apply_chat_template``.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import tokenizers
import torch
from tokenizers import AddedToken, processors

from .. import hub
from .._atomic import check_save_complete
from . import _encoding, _unicode
from . import chat_template as _chat
from ._files import (
    ADDED_TOKENS_FILE,
    SPECIAL_TOKENS_MAP_FILE,
    TOKENIZER_CONFIG_FILE,
    make_dir,
    read_json,
    read_text,
    token_content,
    write_files_atomically,
)
from .base import _SINGLE_SPECIAL, UNBOUNDED_LENGTH, Ids, PreTrainedTokenizer, TextInput

__all__ = [
    "CHAT_TEMPLATE_DIR",
    "CHAT_TEMPLATE_FILE",
    "TOKENIZER_FILE",
    "PreTrainedTokenizerFast",
    "TokenizerFileNotFoundError",
]

logger = logging.getLogger(__name__)

TOKENIZER_FILE = "tokenizer.json"
"""The Rust tokenizers' serialisation file a model directory may hold."""
CHAT_TEMPLATE_FILE = "chat_template.jinja"
"""The default chat template's file, as ``transformers`` 5 saves it."""
CHAT_TEMPLATE_DIR = "additional_chat_templates"
"""The folder of named chat templates (``<name>.jinja``), as ``transformers`` 5 saves them."""

# tokenizer_config.json keys the constructor reads; the others are kept and written back
_OPTIONS = (
    "padding_side",
    "truncation_side",
    "clean_up_tokenization_spaces",
    "split_special_tokens",
    "model_input_names",
    "chat_template",
)
_DROPPED_ON_LOAD = ("add_bos_token", "add_eos_token")  # tokenizer.json's post-processor wins
_NOT_SAVED = ("tokenizer_file", "name_or_path", "special_tokens_map_file", "files_loaded")


class TokenizerFileNotFoundError(FileNotFoundError, ValueError):
    """A tokenizer directory has no ``tokenizer.json``; a ``FileNotFoundError`` and a
    ``ValueError`` both, so either ``except`` catches it."""


def _clean_up_spaces(text: str) -> str:
    """``transformers`` 5's ``clean_up_tokenization`` (no ``do not`` -> ``don't`` rule)."""
    for before, after in (
        (" .", "."),
        (" ?", "?"),
        (" !", "!"),
        (" ,", ","),
        (" ' ", "'"),
        (" n't", "n't"),
        (" 'm", "'m"),
        (" 's", "'s"),
        (" 've", "'ve"),
        (" 're", "'re"),
    ):
        text = text.replace(before, after)
    return text


def _added_token(value: Any, *, special: bool, where: str) -> AddedToken:
    """An :class:`tokenizers.AddedToken` from a str, an ``AddedToken`` or a config dict
    (``{"content": ..., "lstrip": ..., ...}``, with or without ``"__type"``)."""
    if isinstance(value, AddedToken):
        return value
    if isinstance(value, str):
        return AddedToken(value, special=special)
    if isinstance(value, Mapping) and isinstance(value.get("content"), str):
        fields = ("single_word", "lstrip", "rstrip", "normalized", "special")
        options = {k: bool(value[k]) for k in fields if k in value and value[k] is not None}
        options.setdefault("special", special)
        return AddedToken(value["content"], **options)
    raise TypeError(
        f"{where} must be a token (str, AddedToken or {{'content': ...}}); "
        f"got {type(value).__name__}: {value!r}"
    )


def _load_backend(path: Path) -> tuple[tokenizers.Tokenizer, str]:
    """The Rust tokenizer of a ``tokenizer.json``, and the file's text."""
    text = read_text(path, TOKENIZER_FILE)
    try:
        return tokenizers.Tokenizer.from_str(text), text
    except Exception as err:  # the Rust library raises plain Exception
        raise ValueError(
            f"{path} is not valid JSON or not a tokenizers file that tokenizers "
            f"{tokenizers.__version__} can read: {err}"
        ) from None


class PreTrainedTokenizerFast(PreTrainedTokenizer):
    """A tokenizer defined by a ``tokenizer.json`` file, run by the Rust ``tokenizers`` library.

    Usually built by :meth:`from_pretrained` from a directory (or Hub repo) holding
    ``tokenizer.json`` and ``tokenizer_config.json``.

    Args:
        tokenizer_file: path of a ``tokenizer.json``.
        tokenizer_object: a :class:`tokenizers.Tokenizer` to use instead (copied).
        chat_template: a Jinja chat template, or ``{name: template}`` (see
            :meth:`apply_chat_template`).
        padding_side: 'right' (default) or 'left' (generation pads prompts on the left).
        truncation_side: 'right' (default) or 'left'.
        clean_up_tokenization_spaces: ``decode``'s default (ignored for BPE models, as
            in ``transformers``).
        split_special_tokens: encode special tokens found in text as plain text.
        model_input_names: the keys :meth:`batch_encode` returns by default
            (``token_type_ids`` only when listed).
        added_tokens_decoder: ``{id: token}`` of ``tokenizer_config.json`` (tokens as
            ``{"content": ..., "special": ..., ...}``), applied to the Rust tokenizer.
        add_bos_token, add_eos_token: when given, replace the post-processor by
            ``[bos] A [eos]`` as ``transformers`` does; None keeps ``tokenizer.json``'s.
        model_specific_special_tokens: other named special tokens (``image_token``, ...),
            passed to chat templates like ``bos_token``.
        extra_config: other ``tokenizer_config.json`` entries, written back by
            :meth:`save_pretrained`.
        **kwargs: ``max_len`` / ``model_max_length`` and the special tokens (str,
            ``AddedToken`` or ``{"content": ...}``), see :class:`PreTrainedTokenizer`.

    Raises:
        ValueError: no tokenizer given, an unreadable file, or a bad option value.

    Example:
        >>> from tokenizers import Tokenizer, models, pre_tokenizers
        >>> backend = Tokenizer(models.WordLevel({"hello": 0, "world": 1, "[UNK]": 2}, "[UNK]"))
        >>> backend.pre_tokenizer = pre_tokenizers.Whitespace()
        >>> tok = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]")
        >>> tok.encode("hello world there")
        [0, 1, 2]
    """

    vocab_files_names = {"tokenizer_file": TOKENIZER_FILE}
    hub_files = [TOKENIZER_FILE]
    model_input_names = ("input_ids", "attention_mask")
    strip_around_added_tokens = False

    def __init__(
        self,
        tokenizer_file: str | os.PathLike[str] | None = None,
        *,
        tokenizer_object: tokenizers.Tokenizer | None = None,
        chat_template: str | Mapping[str, str] | None = None,
        padding_side: Literal["right", "left"] | None = None,
        truncation_side: Literal["right", "left"] = "right",
        clean_up_tokenization_spaces: bool = False,
        split_special_tokens: bool = False,
        model_input_names: Sequence[str] | None = None,
        added_tokens_decoder: Mapping[int | str, Any] | None = None,
        add_bos_token: bool | None = None,
        add_eos_token: bool | None = None,
        model_specific_special_tokens: Mapping[str, Any] | None = None,
        extra_config: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if tokenizer_object is not None:
            if not isinstance(tokenizer_object, tokenizers.Tokenizer):
                raise TypeError(
                    "tokenizer_object must be a tokenizers.Tokenizer; got "
                    f"{type(tokenizer_object).__name__}"
                )
            text = tokenizer_object.to_str()
            backend = tokenizers.Tokenizer.from_str(text)
        elif tokenizer_file is not None:
            path = Path(os.fspath(tokenizer_file))
            if not path.is_file():
                raise TokenizerFileNotFoundError(f"no tokenizer file at {path}")
            backend, text = _load_backend(path)
        else:
            raise ValueError("PreTrainedTokenizerFast needs tokenizer_file or tokenizer_object")

        # padding / truncation saved in tokenizer.json: defaults here, per call afterwards,
        # written back as they were by save_pretrained
        self._file_settings: dict[str, Any] | None = None
        if backend.padding is not None or backend.truncation is not None:
            data = json.loads(text)
            self._file_settings = {k: data.get(k) for k in ("padding", "truncation")}
        if backend.padding is not None:
            kwargs.setdefault("pad_token", backend.padding.get("pad_token"))
            if padding_side is None:
                padding_side = backend.padding.get("direction", "right")
        backend.no_padding()
        backend.no_truncation()
        self._tokenizer = backend

        special_values = {k: kwargs[k] for k in _SINGLE_SPECIAL if kwargs.get(k) is not None}
        additional = kwargs.pop("extra_special_tokens", None)
        if additional is not None:
            kwargs.setdefault("additional_special_tokens", additional)
        additional_values = kwargs.get("additional_special_tokens") or []
        if isinstance(additional_values, Mapping):  # HF's named form {name: token}
            model_specific_special_tokens = {
                **dict(additional_values),
                **(model_specific_special_tokens or {}),
            }
            kwargs["additional_special_tokens"] = additional_values = []
        super().__init__(**kwargs)
        self.model_specific_special_tokens: dict[str, str] = {
            name: token_content(value, name) or ""
            for name, value in (model_specific_special_tokens or {}).items()
        }

        self.padding_side = _side(padding_side or "right", "padding_side")
        self.truncation_side = _side(truncation_side, "truncation_side")
        self.clean_up_tokenization_spaces = bool(clean_up_tokenization_spaces)
        self.clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output = False
        if model_input_names is not None:
            self.model_input_names = tuple(model_input_names)
        self.chat_template = (
            dict(chat_template) if isinstance(chat_template, Mapping) else chat_template
        )
        self.extra_config: dict[str, Any] = dict(extra_config or {})
        self.split_special_tokens = bool(split_special_tokens)

        named = {**special_values, **(model_specific_special_tokens or {})}
        self._ensure_added_tokens(
            added_tokens_decoder or {},
            [_added_token(value, special=True, where=key) for key, value in named.items()],
            [
                _added_token(v, special=True, where="additional_special_tokens")
                for v in additional_values
            ],
        )
        self._add_bos_token = bool(add_bos_token)
        self._add_eos_token = bool(add_eos_token)
        if add_bos_token is not None or add_eos_token is not None or backend.post_processor is None:
            self.update_post_processor()

    # ------------------------------------------------------------------ backend and options

    @property
    def backend_tokenizer(self) -> tokenizers.Tokenizer:
        """The Rust :class:`tokenizers.Tokenizer` (changes to it change this tokenizer)."""
        return self._tokenizer

    @property
    def split_special_tokens(self) -> bool:
        """Whether special tokens in the text are encoded as plain text."""
        return self._tokenizer.encode_special_tokens

    @split_special_tokens.setter
    def split_special_tokens(self, value: bool) -> None:
        self._tokenizer.encode_special_tokens = bool(value)

    @property
    def add_bos_token(self) -> bool:
        """Set it to put ``bos_token`` before each sequence (rebuilds the post-processor).
        False after loading, whatever ``tokenizer.json`` does, as in ``transformers``."""
        return self._add_bos_token

    @add_bos_token.setter
    def add_bos_token(self, value: bool) -> None:
        self._add_bos_token = bool(value)
        self.update_post_processor()

    @property
    def add_eos_token(self) -> bool:
        """Set it to put ``eos_token`` after each sequence (rebuilds the post-processor)."""
        return self._add_eos_token

    @add_eos_token.setter
    def add_eos_token(self, value: bool) -> None:
        self._add_eos_token = bool(value)
        self.update_post_processor()

    def update_post_processor(self) -> None:
        """Replace the post-processor by ``[bos] $A [eos]`` / ``[bos] $A [eos] [bos] $B [eos]``
        from :attr:`add_bos_token` / :attr:`add_eos_token` (``transformers``' rule; a flag
        whose token is unset is turned off)."""
        bos, eos = self.bos_token, self.eos_token
        if bos is None:
            self._add_bos_token = False
        if eos is None:
            self._add_eos_token = False
        add_bos, add_eos = self._add_bos_token, self._add_eos_token
        head = f"{bos}:0 " if add_bos else ""
        tail = f" {eos}:0" if add_eos else ""
        single = f"{head}$A:0{tail}"
        pair = f"{single}{f' {bos}:1' if add_bos else ''} $B:1{f' {eos}:1' if add_eos else ''}"
        special = []
        if add_bos:
            special.append((bos, self._token_id(bos)))
        if add_eos:
            special.append((eos, self._token_id(eos)))
        self._tokenizer.post_processor = processors.TemplateProcessing(
            single=single, pair=pair, special_tokens=special
        )

    def _ensure_added_tokens(
        self,
        added_tokens_decoder: Mapping[int | str, Any],
        named: list[AddedToken],
        additional: list[AddedToken],
    ) -> None:
        """Apply the config's added tokens, then add the special tokens the Rust tokenizer
        does not hold as added tokens yet (``transformers``' order and flags)."""
        entries = []
        for index, value in added_tokens_decoder.items():
            try:
                key = int(index)
            except (TypeError, ValueError):
                raise ValueError(
                    f"added_tokens_decoder keys must be token ids; got {index!r}"
                ) from None
            entries.append((key, _added_token(value, special=False, where=f"added token {index}")))
        to_add = [token for _, token in sorted(entries, key=lambda e: e[0])]
        present = {t.content for t in self._tokenizer.get_added_tokens_decoder().values()}
        present.update(t.content for t in to_add)
        for token in [*named, *additional]:
            if token.content not in present:
                to_add.append(token)
                present.add(token.content)
        named_contents = {t.content for t in named}
        for token in to_add:
            if not token.special and token.content in named_contents:
                token.special = True
        if to_add:
            self._tokenizer.add_tokens(to_add)
        self._sync_added_tokens()

    def _sync_added_tokens(self) -> None:
        decoder = self._tokenizer.get_added_tokens_decoder()
        self.added_tokens_decoder = {index: token.content for index, token in decoder.items()}
        self.added_tokens_encoder = {
            token: index for index, token in self.added_tokens_decoder.items()
        }
        self._split_cache = None

    @property
    def special_tokens_map(self) -> dict[str, str | list[str]]:
        """The special tokens that are set: the named ones, the model-specific ones
        (``image_token``, ...), then ``additional_special_tokens``."""
        out = dict(super().special_tokens_map)
        additional = out.pop("additional_special_tokens", None)
        out.update({k: v for k, v in self.model_specific_special_tokens.items() if v})
        if additional:
            out["additional_special_tokens"] = additional
        return out

    @property
    def all_special_tokens(self) -> list[str]:
        """Every special token once: named, model-specific, then additional (``transformers``'
        order)."""
        named = [t for t in (self._special_tokens[n] for n in _SINGLE_SPECIAL) if t]
        specific = [t for t in self.model_specific_special_tokens.values() if t]
        return list(dict.fromkeys(named + specific + self._additional_special_tokens))

    # ------------------------------------------------------------------ vocabulary

    @property
    def vocab_size(self) -> int:
        """Size of the model's vocabulary, without the added tokens."""
        return self._tokenizer.get_vocab_size(with_added_tokens=False)

    def __len__(self) -> int:
        return self._tokenizer.get_vocab_size(with_added_tokens=True)

    def get_vocab(self) -> dict[str, int]:
        """Token -> id for the whole vocabulary, added tokens included."""
        return self._tokenizer.get_vocab(with_added_tokens=True)

    def get_added_vocab(self) -> dict[str, int]:
        """Added token -> id (the Rust tokenizer's added tokens, special ones included)."""
        return dict(sorted(self.added_tokens_encoder.items(), key=lambda kv: kv[1]))

    def added_tokens(self) -> dict[int, AddedToken]:
        """``{id: AddedToken}`` with each token's flags (special, lstrip, normalized, ...)."""
        return self._tokenizer.get_added_tokens_decoder()

    def _convert_token_to_id(self, token: str) -> int | None:
        return self._tokenizer.token_to_id(token)

    def _convert_id_to_token(self, index: int) -> str | None:
        return self._tokenizer.id_to_token(index) if 0 <= index < 2**32 else None

    def _tokens_to_ids(self, tokens: Iterable[str]) -> list[int]:
        to_id = self._tokenizer.token_to_id
        ids = []
        for token in tokens:
            index = to_id(token)
            ids.append(self._unknown_token_id(token) if index is None else index)
        return ids

    def add_tokens(
        self,
        new_tokens: str | AddedToken | Iterable[str | AddedToken],
        special_tokens: bool = False,
    ) -> int:
        """Add tokens that are never split (``AddedToken`` sets lstrip/rstrip/normalized/...).

        Args:
            new_tokens: a token or a list of tokens (str or :class:`tokenizers.AddedToken`).
            special_tokens: add them as special (skipped by ``decode(skip_special_tokens=True)``,
                not normalized).

        Returns:
            How many new ids were created (tokens already in the vocabulary keep their id).

        Raises:
            TypeError: a token is not a str or ``AddedToken``.
            ValueError: a token holds a lone surrogate.
        """
        single = isinstance(new_tokens, (str, AddedToken))
        tokens = [new_tokens] if single else list(new_tokens)  # type: ignore[arg-type]
        for token in tokens:
            content = token.content if isinstance(token, AddedToken) else token
            if not isinstance(content, str):
                raise TypeError(f"tokens to add must be str; got {type(token).__name__}: {token!r}")
            if _unicode.text_input(content, "token") is not content:
                raise ValueError(
                    f"token {content!r} holds a lone surrogate, which no text can match "
                    "(surrogates in texts become U+FFFD); add valid Unicode"
                )
        if not tokens:
            return 0
        if special_tokens:
            added = self._tokenizer.add_special_tokens(tokens)
        else:
            added = self._tokenizer.add_tokens(tokens)
        self._sync_added_tokens()
        return added

    def add_special_tokens(
        self, special_tokens_dict: Mapping[str, Any], replace_additional_special_tokens: bool = True
    ) -> int:
        """Set special-token attributes and add their tokens, as special, to the vocabulary.

        Args:
            special_tokens_dict: attribute name (``bos_token``, ..., ``additional_special_tokens``
                or today's ``extra_special_tokens``) -> token (str or ``AddedToken``), or list
                of tokens for the additional ones.
            replace_additional_special_tokens: the list replaces the previous additional
                special tokens (they stay in the vocabulary); False extends it.

        Returns:
            How many new ids were created.

        Raises:
            ValueError: an unknown attribute name.
        """
        tokens: list[AddedToken] = []
        items = dict(special_tokens_dict)
        if "additional_special_tokens" in items and not items.get("extra_special_tokens"):
            # transformers renames the key, which moves it last: its tokens get the last ids
            items["extra_special_tokens"] = items.pop("additional_special_tokens")
        for key, value in items.items():
            if key in ("additional_special_tokens", "extra_special_tokens"):
                if isinstance(value, (str, AddedToken)) or not isinstance(value, Iterable):
                    raise TypeError(f"{key} must be a list of tokens; got {value!r}")
                new = [
                    _added_token(v, special=True, where=key)
                    if isinstance(v, (str, AddedToken))
                    else _added_token(token_content(v, key), special=True, where=key)
                    for v in value
                ]
                for token in new:
                    if isinstance(token, AddedToken) and token.special is False:
                        token.special = True
                contents = [t.content for t in new]
                if replace_additional_special_tokens:
                    self.additional_special_tokens = contents
                else:
                    self.additional_special_tokens = list(
                        dict.fromkeys(self.additional_special_tokens + contents)
                    )
                tokens.extend(new)
            elif key in _SINGLE_SPECIAL:
                token = (
                    AddedToken(value, rstrip=False, lstrip=False, normalized=False, special=True)
                    if isinstance(value, str)
                    else _added_token(value, special=True, where=key)
                )
                setattr(self, key, token.content)
                tokens.append(token)
            else:
                raise ValueError(
                    f"{key!r} is not a special-token attribute; expected one of "
                    f"{[*_SINGLE_SPECIAL, 'additional_special_tokens', 'extra_special_tokens']}"
                )
        return self.add_tokens(tokens, special_tokens=True)

    # ------------------------------------------------------------------ tokenizing

    def tokenize(
        self, text: TextInput, pair: TextInput | None = None, add_special_tokens: bool = False
    ) -> list[str]:
        """The tokens of a text (or pair), as the Rust tokenizer produces them.

        Args:
            text: the text.
            pair: an optional second text.
            add_special_tokens: include the post-processor's special tokens.

        Returns:
            Tokens (str); byte-level models give their byte characters (``Ġ`` for space).
        """
        text = _unicode.text_input(text, "text")
        if pair is not None:
            pair = _unicode.text_input(pair, "pair")
        return self._tokenizer.encode(text, pair, add_special_tokens=add_special_tokens).tokens

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        """How many special tokens the post-processor adds to one sequence (or a pair)."""
        return self._tokenizer.num_special_tokens_to_add(pair)

    def build_inputs_with_special_tokens(
        self, ids_a: list[int], ids_b: list[int] | None = None
    ) -> list[int]:
        """Not available: the Rust post-processor adds special tokens to encodings, not to id
        lists; use ``encode(text, add_special_tokens=True)`` or :meth:`batch_encode`."""
        raise NotImplementedError(
            "PreTrainedTokenizerFast adds special tokens while encoding text: use "
            "encode(text, add_special_tokens=True) or batch_encode(texts)"
        )

    def create_token_type_ids(self, ids_a: list[int], ids_b: list[int] | None = None) -> list[int]:
        """Not available (see :meth:`build_inputs_with_special_tokens`); ask
        :meth:`batch_encode` for ``return_token_type_ids=True``."""
        raise NotImplementedError(
            "PreTrainedTokenizerFast gives token type ids while encoding text: use "
            "batch_encode(texts, text_pairs, return_token_type_ids=True)"
        )

    create_token_type_ids_from_sequences = create_token_type_ids

    def get_special_tokens_mask(
        self,
        ids_a: list[int],
        ids_b: list[int] | None = None,
        already_has_special_tokens: bool = False,
    ) -> list[int]:
        """1 where ``ids_a`` (a built input, ``already_has_special_tokens=True``) holds a
        special token, else 0. For text, ask :meth:`batch_encode` for
        ``return_special_tokens_mask=True``."""
        if not already_has_special_tokens:
            raise NotImplementedError(
                "PreTrainedTokenizerFast gives special-token masks while encoding text: use "
                "batch_encode(texts, return_special_tokens_mask=True), or pass "
                "already_has_special_tokens=True"
            )
        return super().get_special_tokens_mask(ids_a, ids_b, already_has_special_tokens=True)

    # ------------------------------------------------------------------ encoding

    def _rust_encode(
        self,
        items: list[str] | list[tuple[str, str]],
        *,
        add_special_tokens: bool,
        truncation: _encoding.TruncationStrategy,
        max_length: int | None,
        padding: _encoding.PaddingStrategy = "do_not_pad",
        padding_side: Literal["right", "left"] = "right",
        pad_to_multiple_of: int | None = None,
        offsets: bool = False,
    ) -> list[tokenizers.Encoding]:
        """Encode with truncation and padding set on the Rust tokenizer for this call only."""
        backend = self._tokenizer
        limit = self.max_len if max_length is None else max_length
        try:
            if truncation != "do_not_truncate":
                backend.enable_truncation(
                    max_length=limit, stride=0, strategy=truncation, direction=self.truncation_side
                )
            if padding != "do_not_pad":
                backend.enable_padding(
                    direction=padding_side,
                    pad_id=self.pad_token_id,
                    pad_type_id=0,
                    pad_token=self.pad_token,
                    length=limit if padding == "max_length" else None,
                    pad_to_multiple_of=pad_to_multiple_of,
                )
            if len(items) == 1:
                item = items[0]
                pair = (item[0], item[1]) if isinstance(item, tuple) else (item, None)
                return [backend.encode(*pair, add_special_tokens=add_special_tokens)]
            encode = backend.encode_batch
            if not offsets and hasattr(backend, "encode_batch_fast"):
                encode = backend.encode_batch_fast
            return encode(items, add_special_tokens=add_special_tokens)
        except Exception as err:  # the Rust library raises plain Exception
            if isinstance(err, (TypeError, ValueError)):
                raise
            raise ValueError(f"tokenizers could not encode the batch: {err}") from None
        finally:
            backend.no_truncation()
            backend.no_padding()

    def encode(
        self,
        text: TextInput,
        text_pair: TextInput | None = None,
        add_special_tokens: bool = False,
        *,
        truncation: bool | str | None = None,
        max_length: int | None = None,
    ) -> list[int]:
        """Ids of a text, or of a pair of texts.

        ptfunc's default is **no special tokens** (pytorch-transformers 1.0's); pass
        ``add_special_tokens=True`` for the post-processor's (Llama 3's
        ``<|begin_of_text|>``, BERT's ``[CLS] ... [SEP]``), as ``transformers``' ``encode``
        does by default.

        Args:
            text: first sequence.
            text_pair: optional second sequence.
            add_special_tokens: run the post-processor (bos/eos/cls/sep).
            truncation: as in :meth:`batch_encode`.
            max_length: as in :meth:`batch_encode`.

        Returns:
            A list of int.
        """
        mode = self._truncation_mode(truncation, max_length)
        text = _unicode.text_input(text, "text")
        item: Any = (
            text if text_pair is None else (text, _unicode.text_input(text_pair, "text_pair"))
        )
        (encoding,) = self._rust_encode(
            [item], add_special_tokens=add_special_tokens, truncation=mode, max_length=max_length
        )
        if mode == "do_not_truncate":
            self._warn_if_too_long(len(encoding.ids))
        return encoding.ids

    def batch_encode(
        self,
        texts: Sequence[TextInput],
        text_pairs: Sequence[TextInput] | None = None,
        *,
        add_special_tokens: bool = True,
        padding: bool | str = False,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        return_tensors: str | None = None,
        padding_side: Literal["right", "left"] | None = None,
        pad_to_multiple_of: int | None = None,
        return_token_type_ids: bool | None = None,
        return_attention_mask: bool = True,
        return_special_tokens_mask: bool = False,
        return_offsets_mapping: bool = False,
    ) -> dict[str, Any]:
        """Encode a batch of texts (or pairs) with the Rust ``encode_batch``: padding,
        truncation, attention masks and tensors.

        Semantics of ``transformers``' ``tokenizer(texts, pairs, padding=..., truncation=...,
        max_length=...)``, except that impossible requests raise ``ValueError``.

        Args:
            texts: list of str.
            text_pairs: optional list of str, one per text.
            add_special_tokens: run the post-processor (bos/eos, [CLS]/[SEP]).
            padding: False/'do_not_pad'; True/'longest'; 'max_length' (to ``max_length``,
                or ``max_len`` when not given).
            truncation: None (default: 'longest_first' if ``max_length`` is given and
                there is no padding), False, True/'longest_first', 'only_first',
                'only_second'; the limit counts the special tokens.
            max_length: the limit for truncation and 'max_length' padding.
            return_tensors: None for lists, "pt" for int64 tensors (batch, length).
            padding_side: 'right' or 'left' (default: :attr:`padding_side`, from
                ``tokenizer_config.json``).
            pad_to_multiple_of: round padded lengths up to a multiple of this.
            return_token_type_ids: include ``token_type_ids`` (default: whether
                ``model_input_names`` lists it).
            return_attention_mask: include ``attention_mask`` (0 on padding).
            return_special_tokens_mask: include ``special_tokens_mask`` (1 on special
                tokens and padding).
            return_offsets_mapping: include ``offset_mapping``, ``(start, end)`` character
                spans in the text ((0, 0) for special tokens and padding).

        Returns:
            A dict of lists of lists (or of tensors; offsets have shape (batch, length, 2)).

        Raises:
            TypeError: texts not a list of str.
            ValueError: bad option, pairs of another length, padding without a pad token,
                or a truncation that cannot reach ``max_length``.
        """
        side = self.padding_side if padding_side is None else padding_side
        _encoding.check_batch_arguments(texts, text_pairs, return_tensors, side)
        pad_mode = _encoding.padding_strategy(padding)
        if truncation is None and pad_mode != "do_not_pad":
            truncation = False  # with padding, max_length alone does not truncate (as in HF)
        trunc_mode = self._truncation_mode(truncation, max_length)
        if pad_to_multiple_of is not None and (
            isinstance(pad_to_multiple_of, bool)
            or not isinstance(pad_to_multiple_of, int)
            or pad_to_multiple_of < 1
        ):
            raise ValueError(
                f"pad_to_multiple_of must be a positive int; got {pad_to_multiple_of!r}"
            )
        if pad_mode == "max_length":
            length = self.max_len if max_length is None else max_length
            if length >= UNBOUNDED_LENGTH:
                raise ValueError(
                    "padding='max_length' needs max_length (the tokenizer has no max_len)"
                )
        items: list[Any] = [_unicode.text_input(t, f"texts[{i}]") for i, t in enumerate(texts)]
        if text_pairs is not None:
            items = [
                (text, _unicode.text_input(pair, f"text_pairs[{i}]"))
                for i, (text, pair) in enumerate(zip(items, text_pairs))
            ]
        pad_id = self.pad_token_id if pad_mode != "do_not_pad" else None
        rust_pad = pad_mode if pad_id is not None else "do_not_pad"
        encodings = (
            self._rust_encode(
                items,
                add_special_tokens=add_special_tokens,
                truncation=trunc_mode,
                max_length=max_length,
                padding=rust_pad,
                padding_side=side,
                pad_to_multiple_of=pad_to_multiple_of,
                offsets=return_offsets_mapping,
            )
            if items
            else []
        )
        if return_token_type_ids is None:
            return_token_type_ids = "token_type_ids" in self.model_input_names
        batch: dict[str, list[Any]] = {"input_ids": [e.ids for e in encodings]}
        if return_token_type_ids:
            batch["token_type_ids"] = [e.type_ids for e in encodings]
        if return_attention_mask:
            batch["attention_mask"] = [e.attention_mask for e in encodings]
        if return_special_tokens_mask:
            batch["special_tokens_mask"] = [e.special_tokens_mask for e in encodings]
        if return_offsets_mapping:
            batch["offset_mapping"] = [e.offsets for e in encodings]
        if pad_mode != "do_not_pad" and pad_id is None:  # fine only if nothing needs padding
            length = None if pad_mode == "longest" else (max_length or self.max_len)
            _encoding.pad_batch(batch, length, None, side)
        elif trunc_mode == "do_not_truncate":
            self._warn_if_too_long(max((len(ids) for ids in batch["input_ids"]), default=0))
        if return_tensors == "pt":
            return {key: _encoding.to_tensor(value, key) for key, value in batch.items()}
        return batch

    # ------------------------------------------------------------------ decoding

    def _checked_ids(self, ids: Any) -> list[int]:
        id_list, _ = self._id_list(ids)
        if id_list and (min(id_list) < 0 or max(id_list) >= len(self)):
            bad = next(i for i in id_list if i < 0 or i >= len(self))
            raise ValueError(
                f"token id {bad} is outside the vocabulary: ids run from 0 to {len(self) - 1}"
            )
        return id_list

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        """Join tokens with the Rust decoder (a space between them when there is none)."""
        decoder = self._tokenizer.decoder
        return decoder.decode(tokens) if decoder is not None else " ".join(tokens)

    def _finish_decode(self, text: str, clean_up_tokenization_spaces: bool | None) -> str:
        clean = (
            self.clean_up_tokenization_spaces
            if clean_up_tokenization_spaces is None
            else clean_up_tokenization_spaces
        )
        if not clean:
            return text
        if (
            type(self._tokenizer.model).__name__ == "BPE"
            and not self.clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output
        ):
            return text  # transformers skips the clean-up for BPE: it would remove real spaces
        return _clean_up_spaces(text)

    def decode(
        self,
        token_ids: int | Ids,
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: bool | None = None,
    ) -> str:
        """Text of ids, by the Rust decoder.

        Args:
            token_ids: an int, a list/tuple of ints, or an integer tensor / array of rank 0 or 1.
            skip_special_tokens: leave out the tokens added as special.
            clean_up_tokenization_spaces: remove spaces before punctuation; None: the
                ``tokenizer_config.json`` setting. Not applied to BPE models, as in
                ``transformers`` (it would remove real spaces).

        Returns:
            The text.

        Raises:
            TypeError: ids that are not integers.
            ValueError: an id outside ``[0, len(self))`` or a tensor of rank > 1.
        """
        ids = self._checked_ids(token_ids)
        text = self._tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)
        return self._finish_decode(text, clean_up_tokenization_spaces)

    def batch_decode(
        self,
        sequences: Iterable[Ids] | torch.Tensor,
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: bool | None = None,
    ) -> list[str]:
        """:meth:`decode` each row of a list of id lists or of a 2-D tensor (Rust
        ``decode_batch``)."""
        if isinstance(sequences, torch.Tensor) and sequences.dim() != 2:
            raise ValueError(f"batch_decode needs a 2-D tensor; got shape {tuple(sequences.shape)}")
        rows = [self._checked_ids(row) for row in sequences]
        texts = self._tokenizer.decode_batch(rows, skip_special_tokens=skip_special_tokens)
        return [self._finish_decode(text, clean_up_tokenization_spaces) for text in texts]

    # ------------------------------------------------------------------ chat templates

    def get_chat_template(
        self, chat_template: str | None = None, tools: list[dict[str, Any]] | None = None
    ) -> str:
        """The template :meth:`apply_chat_template` uses (see
        :func:`.chat_template.select_chat_template`)."""
        return _chat.select_chat_template(self.chat_template, chat_template, tools)

    def apply_chat_template(self, conversation: Any, **options: Any) -> Any:
        """Render (and tokenize) a conversation with the chat template, as ``transformers``.

        See :func:`.chat_template.apply_chat_template` for the options (``tools``,
        ``documents``, ``add_generation_prompt``, ``continue_final_message``,
        ``tokenize``, ``return_dict``, ``return_assistant_tokens_mask``, ...).
        """
        return _chat.apply_chat_template(self, conversation, **options)

    # ------------------------------------------------------------------ files

    def tokenizer_config(self) -> dict[str, Any]:
        """The content of ``tokenizer_config.json`` (chat templates go to ``.jinja`` files)."""
        config: dict[str, Any] = {
            k: copy.deepcopy(v) for k, v in self.extra_config.items() if k not in _NOT_SAVED
        }
        for key in (*_SINGLE_SPECIAL, "additional_special_tokens", "extra_special_tokens"):
            config.pop(key, None)
        config.setdefault("tokenizer_class", type(self).__name__)
        added = {}
        for index, token in sorted(self._tokenizer.get_added_tokens_decoder().items()):
            added[str(index)] = token.__getstate__()
        config["added_tokens_decoder"] = added
        config.update(self.special_tokens_map)
        config["clean_up_tokenization_spaces"] = self.clean_up_tokenization_spaces
        config["model_max_length"] = self.max_len
        config["padding_side"] = self.padding_side
        config["truncation_side"] = self.truncation_side
        config["split_special_tokens"] = self.split_special_tokens
        if type(self).model_input_names != self.model_input_names:
            config["model_input_names"] = list(self.model_input_names)
        if self._add_bos_token or "add_bos_token" in config:
            config["add_bos_token"] = self._add_bos_token
        if self._add_eos_token or "add_eos_token" in config:
            config["add_eos_token"] = self._add_eos_token
        config.pop("chat_template", None)
        return dict(sorted(config.items()))

    def _backend_json(self) -> str:
        text = self._tokenizer.to_str(pretty=True)
        if self._file_settings is None:
            return text
        data = json.loads(text)
        data.update(self._file_settings)
        return json.dumps(data, ensure_ascii=False, indent=2)

    def save_pretrained(self, save_directory: str | os.PathLike[str]) -> tuple[str, ...]:
        """Write ``tokenizer.json``, ``tokenizer_config.json``, ``special_tokens_map.json``
        and the chat template(s), atomically (see :mod:`ptfunc._atomic`).

        A single chat template goes to ``chat_template.jinja``, named templates to
        ``chat_template.jinja`` (``default``) and ``additional_chat_templates/<name>.jinja``,
        as ``transformers`` 5 writes them; a stale ``chat_template.jinja`` or
        ``added_tokens.json`` of a previous save is removed in the same step.
        ``transformers`` reads the directory back to the same tokenizer.

        Args:
            save_directory: directory, created if missing.

        Returns:
            Paths written.

        Raises:
            ValueError: a chat template name that is not a plain file name.
        """
        directory = make_dir(save_directory)
        files: dict[Path, str | bytes] = {directory / TOKENIZER_FILE: self._backend_json()}
        files[directory / TOKENIZER_CONFIG_FILE] = _json_text(self.tokenizer_config())
        files[directory / SPECIAL_TOKENS_MAP_FILE] = _json_text(self.special_tokens_map)
        remove = [directory / ADDED_TOKENS_FILE]
        templates = self.chat_template
        if isinstance(templates, str):
            templates = {"default": templates}
        if templates and "default" in templates:
            files[directory / CHAT_TEMPLATE_FILE] = templates["default"]
        else:
            remove.append(directory / CHAT_TEMPLATE_FILE)
        extra = {name: text for name, text in (templates or {}).items() if name != "default"}
        if extra:
            (directory / CHAT_TEMPLATE_DIR).mkdir(exist_ok=True)
        for name, text in extra.items():
            if not name or name != Path(name).name or name.startswith("."):
                raise ValueError(f"chat template name {name!r} is not a plain file name")
            files[directory / CHAT_TEMPLATE_DIR / f"{name}.jinja"] = text
        return write_files_atomically(files, remove=remove)

    @classmethod
    def from_pretrained(
        cls, pretrained_path: str | os.PathLike[str], **kwargs: Any
    ) -> PreTrainedTokenizerFast:
        """Load ``tokenizer.json`` and its companion files from a directory or a Hub repo.

        Reads ``tokenizer.json``; ``tokenizer_config.json`` (special tokens, options,
        ``added_tokens_decoder``, ``chat_template``; the keys this class does not use are
        kept for :meth:`save_pretrained`); ``chat_template.jinja`` and
        ``additional_chat_templates/*.jinja``; and, when the config has no
        ``added_tokens_decoder``, the legacy ``special_tokens_map.json`` and
        ``added_tokens.json``. A path to a ``tokenizer.json`` file works too.

        Args:
            pretrained_path: directory, ``tokenizer.json`` path, or Hub repo id.
            **kwargs: constructor arguments, overriding the files (``padding_side="left"``,
                ``add_bos_token=True``, ``pad_token=...``); ``revision``, ``cache_dir``,
                ``force_download``, ``local_files_only`` and ``token`` are for repo ids.

        Returns:
            The tokenizer.

        Raises:
            TokenizerFileNotFoundError: no such path, or the directory has no
                ``tokenizer.json`` (both a ``FileNotFoundError`` and a ``ValueError``).
            ValueError: a file is not valid JSON or not a ``tokenizers`` file.
        """
        options = hub.HubOptions.pop_from(kwargs)
        if hub.is_hub_name(pretrained_path):
            optional = [
                TOKENIZER_CONFIG_FILE,
                SPECIAL_TOKENS_MAP_FILE,
                ADDED_TOKENS_FILE,
                CHAT_TEMPLATE_FILE,
            ]
            pretrained_path = hub.fetch(
                pretrained_path, [TOKENIZER_FILE], optional, options=options
            )
        path = Path(os.fspath(pretrained_path))
        if path.is_file():
            return cls(path, **kwargs)
        if not path.is_dir():
            raise TokenizerFileNotFoundError(
                f"PreTrainedTokenizerFast.from_pretrained: no directory or file at {path} "
                f"(expected a directory holding {TOKENIZER_FILE}, or a Hub repo id 'org/name')"
            )
        check_save_complete(path, TOKENIZER_FILE)
        if not (path / TOKENIZER_FILE).is_file():
            raise TokenizerFileNotFoundError(
                f"PreTrainedTokenizerFast.from_pretrained: directory {path} has no "
                f"{TOKENIZER_FILE} (the Hugging Face tokenizers file this class reads)"
            )
        init = _read_config(path)
        init.update(kwargs)
        return cls(path / TOKENIZER_FILE, **init)


def _side(value: Any, name: str) -> Literal["right", "left"]:
    if value not in ("right", "left"):
        raise ValueError(f"{name} must be 'right' or 'left'; got {value!r}")
    return value  # type: ignore[no-any-return]


def _json_text(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


def _read_object(path: Path) -> dict[str, Any]:
    data = read_json(path, path.name)
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object; got {type(data).__name__}")
    return data


def _read_config(directory: Path) -> dict[str, Any]:
    """Constructor arguments from the JSON and Jinja files beside ``tokenizer.json``."""
    config: dict[str, Any] = {}
    if (directory / TOKENIZER_CONFIG_FILE).is_file():
        config = _read_object(directory / TOKENIZER_CONFIG_FILE)
    for key in _DROPPED_ON_LOAD:
        config.pop(key, None)
    if "added_tokens_decoder" not in config:  # legacy layout: the two older files count
        if (directory / SPECIAL_TOKENS_MAP_FILE).is_file():
            for key, value in _read_object(directory / SPECIAL_TOKENS_MAP_FILE).items():
                if key in ("additional_special_tokens", "extra_special_tokens") and isinstance(
                    value, list
                ):
                    previous = config.get("extra_special_tokens") or config.get(
                        "additional_special_tokens"
                    )
                    merged = list(previous) if isinstance(previous, list) else []
                    for token in value:
                        if token not in merged:
                            merged.append(token)
                    config.pop("additional_special_tokens", None)
                    config["extra_special_tokens"] = merged
                else:
                    config[key] = value
        if (directory / ADDED_TOKENS_FILE).is_file():
            special = {token_content(config.get(k), k) for k in _SINGLE_SPECIAL}
            decoder = {}
            for token, index in _read_object(directory / ADDED_TOKENS_FILE).items():
                if isinstance(index, str) and index.isdigit():  # 1.0's {id: token}
                    token, index = index, token
                decoder[int(index)] = {
                    "content": token,
                    "normalized": token not in special,
                    "special": token in special,
                }
            config["added_tokens_decoder"] = decoder
    templates: dict[str, str] = {}
    if (directory / CHAT_TEMPLATE_FILE).is_file():
        templates["default"] = read_text(directory / CHAT_TEMPLATE_FILE, CHAT_TEMPLATE_FILE)
    if (directory / CHAT_TEMPLATE_DIR).is_dir():
        for file in sorted((directory / CHAT_TEMPLATE_DIR).glob("*.jinja")):
            templates[file.name.removesuffix(".jinja")] = read_text(file, "chat template")
    if list(templates) == ["default"]:
        config["chat_template"] = templates["default"]
    elif templates:
        config["chat_template"] = templates
    elif isinstance(config.get("chat_template"), list):  # [{"name": ..., "template": ...}]
        config["chat_template"] = {
            entry["name"]: entry["template"] for entry in config["chat_template"]
        }
    return _split_config(config)


def _split_config(config: dict[str, Any]) -> dict[str, Any]:
    """Sort tokenizer_config.json entries into constructor arguments and ``extra_config``."""
    init: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    named: dict[str, Any] = {}
    for key, value in config.items():
        if key in _SINGLE_SPECIAL:
            init[key] = value  # None too: an explicit null wins over tokenizer.json's padding
        elif key in _OPTIONS or key == "added_tokens_decoder":
            if value is not None:
                init[key] = value
        elif key in ("additional_special_tokens", "extra_special_tokens"):
            if isinstance(value, Mapping):
                named.update(value)
            elif value:
                init["additional_special_tokens"] = list(value)
        elif key in ("model_max_length", "max_len"):
            if isinstance(value, int) and not isinstance(value, bool):
                init["model_max_length"] = min(value, UNBOUNDED_LENGTH)
        elif key.endswith("_token") and (
            isinstance(value, str) or (isinstance(value, Mapping) and "content" in value)
        ):
            named[key] = value
        else:
            extra[key] = value
    if "model_max_length" in config and "max_len" in config:
        extra.pop("max_len", None)
    if named:
        init["model_specific_special_tokens"] = named
    init["extra_config"] = extra
    return init
