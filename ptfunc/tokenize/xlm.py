"""XLM's tokenizer: Moses pre-tokenisation (or 1.0's basic tokenizer), then BPE with ``</w>``.

Two pre-tokenisations, chosen by ``pretokenizer``:

- ``"moses"`` (default; today's ``transformers``): full-width punctuation to ASCII, Moses'
  punctuation normalisation and tokenizer for the language ``lang`` (en, fr, de, es, it
  ... see :mod:`._moses`), non-printing characters dropped, then (with
  ``do_lowercase_and_remove_accent``) lower-case and accents stripped. Romanian also gets
  Sennrich's diacritic removal, as ``xlm-mlm-enro-1024`` expects. Chinese, Japanese and
  Thai need word segmenters this port does not have: they raise ``ValueError``.
- ``"basic"`` (pytorch-transformers 1.0): 1.0 used ftfy + spaCy when both were installed
  and otherwise BERT's ``BasicTokenizer(do_lower_case=True)``; this is that fallback, as
  for OpenAI GPT. ``lang`` is ignored.

Each word then goes through BPE, its last character marked with ``</w>``. XLM's
``merges.txt`` has no header and lines ``a b count``: only the first two fields count.
Unlike the references, which drop the file's last line blindly, a file without a final
newline keeps its last merge, and a ``#version`` first line is skipped.

Special tokens: ``<s>`` (bos), ``</s>`` (sep and cls), ``<pad>``, ``<unk>``, mask
``<special1>`` and ``<special0>``..``<special9>``. Templates (today's; 1.0 added none):
``<s> A </s>`` and ``<s> A </s> B </s>``.
"""

from __future__ import annotations

import json
import os
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from ._bpe import BPE, END_OF_WORD, end_of_word_symbols, read_vocab
from ._files import read_text
from ._moses import moses_pipeline
from .base import PreTrainedTokenizer
from .bert import BasicTokenizer

__all__ = ["XLMTokenizer", "lowercase_and_remove_accent", "romanian_preprocessing"]

VOCAB_FILES_NAMES = {"vocab_file": "vocab.json", "merges_file": "merges.txt"}
SPECIALS = [f"<special{i}>" for i in range(10)]
_SEGMENTED_LANGS = frozenset({"zh", "ja", "th"})

# Sennrich's WMT16 Romanian scripts: cedilla forms to comma forms, then no diacritics.
_ROMANIAN = str.maketrans("ŞşŢţȘșȚțĂăÂâÎî", "SsTtSsTtAaAaIi")


def romanian_preprocessing(text: str) -> str:
    """Remove Romanian diacritics (s/t with comma or cedilla, ă, â, î).

    Example:
        >>> romanian_preprocessing("Știință și învățământ")
        'Stiinta si invatamant'
    """
    return text.translate(_ROMANIAN)


def lowercase_and_remove_accent(words: Iterable[str]) -> list[str]:
    """Lower-case each word and drop its combining marks (XLM's ``lowercase_and_remove_accent``).

    Example:
        >>> lowercase_and_remove_accent(["Éléphant", "Straße"])
        ['elephant', 'straße']
    """
    out = []
    for word in words:
        decomposed = unicodedata.normalize("NFD", word.lower())
        out.append("".join(c for c in decomposed if unicodedata.category(c) != "Mn").lower())
    return out


def read_xlm_merges(
    merges: str | os.PathLike[str] | Iterable[tuple[str, str] | str],
) -> list[tuple[str, str]]:
    """Merge pairs by rank from XLM's ``merges.txt`` (``a b [count]`` lines) or an iterable.

    Raises:
        ValueError: a line holds fewer than two fields, or the file is not valid UTF-8.
    """
    if isinstance(merges, (str, os.PathLike)):
        lines: list[Any] = read_text(merges, "merges file").split("\n")
        if lines and lines[0].startswith("#version"):
            lines = lines[1:]
    else:
        lines = list(merges)
    pairs: list[tuple[str, str]] = []
    for line in lines:
        fields = line.split() if isinstance(line, str) else list(line)
        if not fields:
            continue
        if len(fields) < 2:
            raise ValueError(f"a merge must hold two symbols; got {line!r}")
        pairs.append((fields[0], fields[1]))
    return pairs


class XLMTokenizer(PreTrainedTokenizer):
    """XLM's BPE tokenizer (``</w>`` word ends) with Moses or 1.0-style pre-tokenisation.

    Args:
        vocab_file: ``vocab.json`` or a mapping token -> id.
        merges_file: ``merges.txt`` (``a b [count]`` lines, no header) or merge pairs.
        lang: default language of :meth:`tokenize` (``tokenize(text, lang="fr")`` overrides).
        pretokenizer: ``"moses"`` (today's ``transformers``) or ``"basic"`` (1.0).
        do_lowercase_and_remove_accent: lower-case and strip accents after Moses (True
            for the XLM-15 models, False for XLM-17 and XLM-100).
        lang2id, id2lang: the model config's language maps (kept, saved, and used to
            reject unknown ``lang`` values; either may be given, the other is derived).
        **kwargs: special tokens and ``max_len`` (see :class:`PreTrainedTokenizer`).

    Example:
        >>> tok = XLMTokenizer("vocab.json", "merges.txt")  # doctest: +SKIP
        >>> tok.tokenize("L'homme n'est pas là.", lang="fr")  # doctest: +SKIP
        ["l'</w>", 'homme</w>', "n'</w>", 'est</w>', 'pas</w>', 'la</w>', '.</w>']
    """

    vocab_files_names = VOCAB_FILES_NAMES
    model_input_names = ("input_ids", "token_type_ids", "attention_mask")

    def __init__(
        self,
        vocab_file: str | os.PathLike[str] | Mapping[str, int],
        merges_file: str | os.PathLike[str] | Iterable[tuple[str, str]],
        unk_token: str | None = "<unk>",
        bos_token: str | None = "<s>",
        sep_token: str | None = "</s>",
        pad_token: str | None = "<pad>",
        cls_token: str | None = "</s>",
        mask_token: str | None = "<special1>",
        additional_special_tokens: Iterable[str] | None = tuple(SPECIALS),
        *,
        lang: str = "en",
        pretokenizer: Literal["moses", "basic"] = "moses",
        do_lowercase_and_remove_accent: bool = True,
        lang2id: Mapping[str, int] | None = None,
        id2lang: Mapping[int | str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            unk_token=unk_token,
            bos_token=bos_token,
            sep_token=sep_token,
            pad_token=pad_token,
            cls_token=cls_token,
            mask_token=mask_token,
            additional_special_tokens=list(additional_special_tokens or ()),
            **kwargs,
        )
        if pretokenizer not in ("moses", "basic"):
            raise ValueError(f"pretokenizer must be 'moses' or 'basic'; got {pretokenizer!r}")
        self.pretokenizer = pretokenizer
        self.do_lowercase_and_remove_accent = bool(do_lowercase_and_remove_accent)
        self.lang2id, self.id2lang = _language_maps(lang2id, id2lang)
        self.lang = self._check_lang(lang)
        self.encoder = read_vocab(vocab_file)
        self.decoder = {index: token for token, index in self.encoder.items()}
        self.bpe = BPE(read_xlm_merges(merges_file), prepare=end_of_word_symbols)
        self.nlp = BasicTokenizer(do_lower_case=True)

    def _check_lang(self, lang: str) -> str:
        if not isinstance(lang, str):
            raise TypeError(f"lang must be a str; got {type(lang).__name__}")
        if self.lang2id and lang not in self.lang2id:
            raise ValueError(
                f"lang {lang!r} is not one of the model's languages {sorted(self.lang2id)}"
            )
        return lang

    @property
    def do_lower_case(self) -> bool:
        """Whether the text is lower-cased (always with ``pretokenizer="basic"``)."""
        return self.pretokenizer == "basic" or self.do_lowercase_and_remove_accent

    @property
    def vocab_size(self) -> int:
        """Number of entries of vocab.json."""
        return len(self.encoder)

    def get_vocab(self) -> dict[str, int]:
        """Token -> id, added tokens included."""
        return {**self.encoder, **self.added_tokens_encoder}

    def tokenize(
        self, text: str, lang: str | None = None, bypass_tokenizer: bool = False
    ) -> list[str]:  # type: ignore[override]
        """Split ``text`` into BPE tokens.

        Args:
            text: the text.
            lang: language code for the Moses rules (default: the tokenizer's ``lang``).
            bypass_tokenizer: the text is already tokenized: split on whitespace, BPE only.

        Raises:
            ValueError: ``lang`` is not in ``lang2id``, or needs a word segmenter (zh, ja, th).
        """
        lang = self.lang if lang is None else self._check_lang(lang)
        return super().tokenize(text, lang=lang, bypass_tokenizer=bypass_tokenizer)

    def _words(self, text: str, lang: str, bypass_tokenizer: bool) -> list[str]:
        if bypass_tokenizer:
            return text.split()
        if self.pretokenizer == "basic":
            return self.nlp.tokenize(text)
        if lang in _SEGMENTED_LANGS:
            raise ValueError(
                f"lang {lang!r} needs a word segmenter (jieba, KyTea, PyThaiNLP) that ptfunc "
                "does not ship; segment the text yourself and pass bypass_tokenizer=True"
            )
        if lang == "ro":
            words = moses_pipeline(text, lang, before_tokenize=romanian_preprocessing)
        else:
            words = moses_pipeline(text, lang)
        if self.do_lowercase_and_remove_accent:
            words = lowercase_and_remove_accent(words)
        return words

    def _tokenize(self, text: str, lang: str = "en", bypass_tokenizer: bool = False) -> list[str]:
        return self.bpe.pieces(filter(None, self._words(text, lang, bypass_tokenizer)))

    def _convert_token_to_id(self, token: str) -> int | None:
        return self.encoder.get(token)

    def _convert_id_to_token(self, index: int) -> str | None:
        return self.decoder.get(index)

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        """Join tokens, turning each ``</w>`` into a space."""
        return "".join(tokens).replace(END_OF_WORD, " ").strip()

    def build_inputs_with_special_tokens(
        self, ids_a: list[int], ids_b: list[int] | None = None
    ) -> list[int]:
        """``<s> A </s>`` or ``<s> A </s> B </s>``."""
        bos, sep = [self._token_id(self.bos_token)], [self._token_id(self.sep_token)]
        return bos + ids_a + sep + ([] if ids_b is None else ids_b + sep)

    def create_token_type_ids(self, ids_a: list[int], ids_b: list[int] | None = None) -> list[int]:
        """0 for ``<s> A </s>``, 1 for ``B </s>``."""
        return [0] * (len(ids_a) + 2) + ([] if ids_b is None else [1] * (len(ids_b) + 1))

    def get_special_tokens_mask(
        self,
        ids_a: list[int],
        ids_b: list[int] | None = None,
        already_has_special_tokens: bool = False,
    ) -> list[int]:
        """1 where the template puts a special token, 0 on the sequences' ids."""
        if already_has_special_tokens:
            return super().get_special_tokens_mask(ids_a, ids_b, already_has_special_tokens=True)
        mask = [1] + [0] * len(ids_a) + [1]
        return mask if ids_b is None else mask + [0] * len(ids_b) + [1]

    def _vocabulary_files(self) -> dict[str, str | bytes]:
        return {
            VOCAB_FILES_NAMES["vocab_file"]: json.dumps(self.encoder, ensure_ascii=False),
            VOCAB_FILES_NAMES["merges_file"]: "".join(f"{a} {b}\n" for a, b in self.bpe.merges),
        }

    def _init_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "lang": self.lang,
            "pretokenizer": self.pretokenizer,
            "do_lowercase_and_remove_accent": self.do_lowercase_and_remove_accent,
        }
        if self.lang2id is not None:
            config["lang2id"] = dict(self.lang2id)
            config["id2lang"] = {str(i): lang for i, lang in self.id2lang.items()}  # type: ignore[union-attr]
        return config


def _language_maps(
    lang2id: Mapping[str, int] | None, id2lang: Mapping[int | str, str] | None
) -> tuple[dict[str, int] | None, dict[int, str] | None]:
    """Check and complete ``lang2id`` / ``id2lang`` (JSON keys of ``id2lang`` are strings)."""
    if lang2id is None and id2lang is None:
        return None, None
    inverse = None if id2lang is None else {int(i): lang for i, lang in id2lang.items()}
    forward = None if lang2id is None else {str(k): int(v) for k, v in lang2id.items()}
    if forward is None:
        forward = {lang: i for i, lang in inverse.items()}  # type: ignore[union-attr]
    if inverse is None:
        inverse = {i: lang for lang, i in forward.items()}
    if {i: lang for lang, i in forward.items()} != inverse:
        raise ValueError(f"lang2id {forward} and id2lang {inverse} do not match")
    return forward, inverse
