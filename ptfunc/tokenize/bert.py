"""BERT tokenization: basic tokenization (cleaning, lower-casing, punctuation) then WordPiece.

Ids equal those of pytorch-transformers 1.0, of today's ``transformers`` (Python
``BertTokenizerLegacy`` and Rust-backed ``BertTokenizer``) on real text. Where the
references disagree with each other, this module follows pytorch-transformers 1.0 and
the original BERT code:

- lower-casing is Python's ``str.lower`` (final sigma becomes ``ς``, as in 1.0 and the
  Python reference; the Rust backend lowercases character by character to ``σ``);
- text is not NFC-normalised first (1.0 and the Rust backend; ``BertTokenizerLegacy``
  composes, so cased ``"e\\u0301"`` differs);
- ``never_split`` tokens are kept whole: neither lower-cased, nor split on punctuation,
  nor cut into word pieces (today's Python behaviour; 1.0 still split them on
  punctuation, which made ``never_split=["[UNK]"]`` useless).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from itertools import chain
from pathlib import Path
from typing import Any

from . import _unicode
from ._files import read_text
from .base import PreTrainedTokenizer

logger = logging.getLogger(__name__)

__all__ = ["BasicTokenizer", "BertTokenizer", "WordpieceTokenizer", "load_vocab"]

VOCAB_FILES_NAMES = {"vocab_file": "vocab.txt"}


def load_vocab(vocab_file: str | os.PathLike[str]) -> dict[str, int]:
    """Read a WordPiece vocabulary: one token per line, id = line number.

    Lines are split on ``"\\n"`` only: the Chinese vocabulary holds U+2028 (LINE
    SEPARATOR) as a token, which ``str.splitlines`` would treat as a line break.

    Args:
        vocab_file: path of ``vocab.txt`` (UTF-8).

    Returns:
        token -> id, in id order (a token listed twice keeps its last line, as in
        ``transformers``).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not valid UTF-8 (the message names the file and line).
    """
    return {token: index for index, token in enumerate(_vocab_lines(vocab_file))}


def _vocab_lines(vocab_file: str | os.PathLike[str]) -> list[str]:
    path = Path(os.fspath(vocab_file))
    if not path.is_file():
        raise FileNotFoundError(f"no vocabulary file at {path} (expected a BERT vocab.txt)")
    lines = read_text(path, "vocabulary file").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _check_bool(name: str, value: Any, optional: bool = False) -> None:
    if isinstance(value, bool) or (optional and value is None):
        return
    expected = "a bool or None" if optional else "a bool"
    raise TypeError(f"{name} must be {expected}; got {type(value).__name__}: {value!r}")


def _token_set(name: str, value: Iterable[str] | None) -> frozenset[str]:
    if value is None:
        return frozenset()
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise TypeError(f"{name} must be a list of str; got {type(value).__name__}: {value!r}")
    tokens = list(value)
    for token in tokens:
        if not isinstance(token, str):
            raise TypeError(f"{name} must hold str; got {type(token).__name__}: {token!r}")
    return frozenset(tokens)


class BasicTokenizer:
    """BERT's pre-tokenizer: clean, space CJK ideographs, lower-case, strip accents, split.

    Cleaning drops NUL, U+FFFD and control characters (category C*, except tab, newline
    and carriage return); the text is then split on whitespace, lower-cased and
    stripped of accents (NFD, then non-spacing marks removed) unless a token is in
    ``never_split``, and split around every punctuation character (all non-alphanumeric
    printable ASCII and Unicode category P*).

    Args:
        do_lower_case: lower-case the text.
        never_split: tokens to keep exactly as they are.
        tokenize_chinese_chars: put spaces around CJK ideographs, so each is a word.
        strip_accents: None follows ``do_lower_case`` (as in the original BERT); True or
            False forces accent stripping on or off.

    Example:
        >>> BasicTokenizer().tokenize(" \\tHeLLo!how  \\n Are yoU?  ")
        ['hello', '!', 'how', 'are', 'you', '?']
    """

    def __init__(
        self,
        do_lower_case: bool = True,
        never_split: Iterable[str] | None = None,
        tokenize_chinese_chars: bool = True,
        strip_accents: bool | None = None,
    ) -> None:
        _check_bool("do_lower_case", do_lower_case)
        _check_bool("tokenize_chinese_chars", tokenize_chinese_chars)
        _check_bool("strip_accents", strip_accents, optional=True)
        self.do_lower_case = do_lower_case
        self.never_split = _token_set("never_split", never_split)
        self.tokenize_chinese_chars = tokenize_chinese_chars
        self.strip_accents = strip_accents

    def tokenize(self, text: str, never_split: Iterable[str] | None = None) -> list[str]:
        """Split a text into basic tokens.

        Args:
            text: the text.
            never_split: extra tokens to keep whole for this call.

        Returns:
            Tokens (str), without whitespace.
        """
        text = _unicode.text_input(text, "text")
        keep = self.never_split
        if never_split:
            keep = keep | _token_set("never_split", never_split)
        chars = _unicode.ASCII if text.isascii() else _unicode.unicode_classes()
        text = chars.clean(text)
        if self.tokenize_chinese_chars:
            text = chars.space_cjk(text)
        if keep:
            words = text.split()
            if not keep.isdisjoint(words):
                return self._split_keeping(words, keep, chars)
        return chars.split_words(self._normalize(text, chars))

    def _normalize(self, text: str, chars: _unicode.CharClasses) -> str:
        """Lower-case and strip accents as configured (whitespace is left in place)."""
        strip = self.strip_accents
        if self.do_lower_case:
            text = text.lower()
            strip = strip is not False
        return chars.strip_accents(text) if strip else text

    def _split_keeping(
        self, words: list[str], keep: frozenset[str], chars: _unicode.CharClasses
    ) -> list[str]:
        out: list[str] = []
        run: list[str] = []
        for word in words:
            if word in keep:
                if run:
                    out.extend(chars.split_words(self._normalize(" ".join(run), chars)))
                    run = []
                out.append(word)
            else:
                run.append(word)
        if run:
            out.extend(chars.split_words(self._normalize(" ".join(run), chars)))
        return out


class _PieceCache(dict):
    """word -> word pieces; a missing word is split on lookup (so hits stay in C)."""

    def __init__(self, split: Callable[[str], tuple[str, ...]], size: int) -> None:
        super().__init__()
        self._split = split
        self._size = size

    def __missing__(self, word: str) -> tuple[str, ...]:
        pieces = self._split(word)
        if len(self) >= self._size:
            self.clear()
        self[word] = pieces
        return pieces


class WordpieceTokenizer:
    """Greedy longest-match-first WordPiece, continuation pieces prefixed with ``##``.

    A word with more than ``max_input_chars_per_word`` characters, or with a part that no
    vocabulary entry matches, becomes the single ``unk_token``. Results are cached per
    word (the cache is emptied when it holds ``cache_size`` words).

    Args:
        vocab: token -> id (only membership is used; the mapping must not change later).
        unk_token: token for words that cannot be split.
        max_input_chars_per_word: longer words become ``unk_token``.
        cache_size: number of words to remember.

    Example:
        >>> WordpieceTokenizer({"un": 0, "##aff": 1, "##able": 2}, "[UNK]").tokenize("unaffable")
        ['un', '##aff', '##able']
    """

    def __init__(
        self,
        vocab: Mapping[str, int],
        unk_token: str,
        max_input_chars_per_word: int = 100,
        cache_size: int = 1 << 17,
    ) -> None:
        self.vocab = vocab
        self.unk_token = unk_token
        self.max_input_chars_per_word = max_input_chars_per_word
        self.cache_size = cache_size
        self._longest = max(map(len, vocab), default=0)
        self._cache = _PieceCache(self._split, cache_size)

    def tokenize(self, text: str) -> list[str]:
        """Word pieces of every whitespace-separated word of ``text``."""
        return self.tokenize_words(text.split())

    def tokenize_words(self, words: Iterable[str]) -> list[str]:
        """Word pieces of each word of ``words`` (no whitespace inside), concatenated."""
        return list(chain.from_iterable(map(self._cache.__getitem__, words)))

    def tokenize_word(self, word: str) -> tuple[str, ...]:
        """Word pieces of one word (no whitespace inside)."""
        return self._cache[word]

    def _split(self, word: str) -> tuple[str, ...]:
        length = len(word)
        if length > self.max_input_chars_per_word:
            return (self.unk_token,)
        vocab = self.vocab
        longest = self._longest
        pieces = []
        start = 0
        while start < length:
            end = min(length, start + longest)
            while end > start:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in vocab:
                    break
                end -= 1
            else:
                return (self.unk_token,)
            pieces.append(piece)
            start = end
        return tuple(pieces)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_cache"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._cache = _PieceCache(self._split, self.cache_size)


class BertTokenizer(PreTrainedTokenizer):
    """BERT's tokenizer: :class:`BasicTokenizer` then :class:`WordpieceTokenizer`.

    Inputs are built as ``[CLS] A [SEP]`` or ``[CLS] A [SEP] B [SEP]``, with token type
    ids 0 for ``[CLS] A [SEP]`` and 1 for ``B [SEP]``.

    Args:
        vocab_file: path of ``vocab.txt``, or a token -> id mapping with ids 0..n-1.
        do_lower_case: lower-case (and strip accents from) the text; False for cased models.
        do_basic_tokenize: run :class:`BasicTokenizer` first; if False, WordPiece splits
            the text on whitespace only.
        never_split: tokens the basic tokenizer keeps whole (and WordPiece does not cut).
        tokenize_chinese_chars: make every CJK ideograph a word.
        strip_accents: None follows ``do_lower_case``; True / False force it.
        unk_token, sep_token, pad_token, cls_token, mask_token: the special tokens.
        **kwargs: ``max_len`` / ``model_max_length``, ``bos_token``, ``eos_token``,
            ``additional_special_tokens`` (see :class:`PreTrainedTokenizer`).

    Example:
        >>> tok = BertTokenizer({t: i for i, t in enumerate(
        ...     ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "##s"])})
        >>> tok.tokenize("Hello, worlds!")
        ['hello', '[UNK]', 'world', '##s', '[UNK]']
        >>> tok.encode("hello worlds")  # pytorch-transformers 1.0's default: no special tokens
        [5, 6, 7]
        >>> tok.encode("hello", "worlds", add_special_tokens=True)
        [2, 5, 3, 6, 7, 3]
    """

    vocab_files_names = VOCAB_FILES_NAMES

    @classmethod
    def _shortcut_defaults(
        cls, name: str, entry: Mapping[str, Any], kwargs: dict[str, Any]
    ) -> None:
        """1.0's rule for shortcut names: ``do_lower_case`` is False for names holding
        ``-cased`` and True for the others, whatever was passed (1.0 warned and did so)."""
        super()._shortcut_defaults(name, entry, kwargs)
        lower = "-cased" not in name
        if kwargs.get("do_lower_case", True) != lower:
            logger.warning(
                "%s is %s model: setting do_lower_case=%s as pytorch-transformers 1.0 did",
                name,
                "an uncased" if lower else "a cased",
                lower,
            )
        kwargs["do_lower_case"] = lower

    def __init__(
        self,
        vocab_file: str | os.PathLike[str] | Mapping[str, int],
        do_lower_case: bool = True,
        do_basic_tokenize: bool = True,
        never_split: Iterable[str] | None = None,
        unk_token: str = "[UNK]",
        sep_token: str = "[SEP]",
        pad_token: str = "[PAD]",
        cls_token: str = "[CLS]",
        mask_token: str = "[MASK]",
        tokenize_chinese_chars: bool = True,
        strip_accents: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            unk_token=unk_token,
            sep_token=sep_token,
            pad_token=pad_token,
            cls_token=cls_token,
            mask_token=mask_token,
            **kwargs,
        )
        _check_bool("do_basic_tokenize", do_basic_tokenize)
        if isinstance(vocab_file, Mapping):
            self.vocab = dict(vocab_file)
            if sorted(self.vocab.values()) != list(range(len(self.vocab))):
                raise ValueError("a vocabulary mapping must hold the ids 0..n-1 exactly once")
            self.ids_to_tokens = sorted(self.vocab, key=self.vocab.__getitem__)
        else:
            self.ids_to_tokens = _vocab_lines(vocab_file)  # id -> token: one per line
            self.vocab = {token: index for index, token in enumerate(self.ids_to_tokens)}
        self.do_basic_tokenize = do_basic_tokenize
        self.basic_tokenizer = BasicTokenizer(
            do_lower_case=do_lower_case,
            never_split=never_split,
            tokenize_chinese_chars=tokenize_chinese_chars,
            strip_accents=strip_accents,
        )
        self.wordpiece_tokenizer = WordpieceTokenizer(vocab=self.vocab, unk_token=str(unk_token))

    @property
    def do_lower_case(self) -> bool:
        """Whether the text is lower-cased."""
        return self.basic_tokenizer.do_lower_case

    @property
    def vocab_size(self) -> int:
        """Number of entries of vocab.txt."""
        return len(self.ids_to_tokens)

    def get_vocab(self) -> dict[str, int]:
        """Token -> id, added tokens included."""
        return {**self.vocab, **self.added_tokens_encoder}

    def _tokenize(self, text: str) -> list[str]:
        wordpiece = self.wordpiece_tokenizer
        if not self.do_basic_tokenize:
            return wordpiece.tokenize(text)
        words = self.basic_tokenizer.tokenize(text)
        keep = self.basic_tokenizer.never_split
        if not keep or keep.isdisjoint(words):
            return wordpiece.tokenize_words(words)
        out: list[str] = []
        for word in words:
            out.extend((word,) if word in keep else wordpiece.tokenize_word(word))
        return out

    def _tokens_to_ids(self, tokens: Iterable[str]) -> list[int]:
        if not self.added_tokens_encoder:
            try:
                return list(map(self.vocab.__getitem__, tokens))
            except KeyError:
                pass  # an unknown token: take the general path, which maps it to unk
        return super()._tokens_to_ids(tokens)

    def _convert_token_to_id(self, token: str) -> int | None:
        return self.vocab.get(token)

    def _convert_id_to_token(self, index: int) -> str | None:
        return self.ids_to_tokens[index] if 0 <= index < len(self.ids_to_tokens) else None

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        """Join word pieces: ``["un", "##aff", "##able"]`` -> ``"unaffable"``."""
        return " ".join(tokens).replace(" ##", "").strip()

    def _special_id(self, name: str) -> int:
        index = getattr(self, f"{name}_id")
        if index is None:
            raise ValueError(f"BERT inputs need a {name}, but it is not set")
        return index

    def build_inputs_with_special_tokens(
        self, ids_a: list[int], ids_b: list[int] | None = None
    ) -> list[int]:
        """``[CLS] A [SEP]`` or ``[CLS] A [SEP] B [SEP]``."""
        cls, sep = self._special_id("cls_token"), self._special_id("sep_token")
        if ids_b is None:
            return [cls, *ids_a, sep]
        return [cls, *ids_a, sep, *ids_b, sep]

    def create_token_type_ids(self, ids_a: list[int], ids_b: list[int] | None = None) -> list[int]:
        """0 for ``[CLS] A [SEP]``, 1 for ``B [SEP]``."""
        first = [0] * (len(ids_a) + 2)
        return first if ids_b is None else first + [1] * (len(ids_b) + 1)

    create_token_type_ids_from_sequences = create_token_type_ids

    def get_special_tokens_mask(
        self,
        ids_a: list[int],
        ids_b: list[int] | None = None,
        already_has_special_tokens: bool = False,
    ) -> list[int]:
        """1 at the positions of ``[CLS]`` and ``[SEP]`` in the built input, else 0."""
        if already_has_special_tokens:
            return super().get_special_tokens_mask(ids_a, ids_b, True)
        mask = [1] + [0] * len(ids_a) + [1]
        return mask if ids_b is None else mask + [0] * len(ids_b) + [1]

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        """2 for one sequence, 3 for a pair."""
        return 3 if pair else 2

    def _vocabulary_files(self) -> dict[str, str | bytes]:
        return {VOCAB_FILES_NAMES["vocab_file"]: "".join(t + "\n" for t in self.ids_to_tokens)}

    def _init_config(self) -> dict[str, Any]:
        basic = self.basic_tokenizer
        return {
            "do_lower_case": basic.do_lower_case,
            "do_basic_tokenize": self.do_basic_tokenize,
            "never_split": sorted(basic.never_split) or None,
            "tokenize_chinese_chars": basic.tokenize_chinese_chars,
            "strip_accents": basic.strip_accents,
        }
