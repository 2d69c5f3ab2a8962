"""``PreTrainedTokenizer``: the tokenizer API shared by every family (1.0's API + today's).

A subclass supplies the vocabulary and the algorithm through a few hooks:

- ``vocab_files_names`` (class attribute): constructor argument -> file name;
- ``vocab_size`` (property), ``_tokenize(text, **options)`` (the options are the
  keywords given to ``tokenize``, if the family has any), ``_convert_token_to_id(token)`` and
  ``_convert_id_to_token(index)`` (returning None for tokens / ids outside the base
  vocabulary), ``convert_tokens_to_string(tokens)``;
- ``_vocabulary_files()`` (file name -> content, written by ``save_vocabulary``) and
  ``_init_config()`` (the constructor options saved in ``tokenizer_config.json``);
- ``build_inputs_with_special_tokens`` / ``create_token_type_ids`` /
  ``get_special_tokens_mask`` for the model's special-token template (none by default).

Decisions that differ from pytorch-transformers 1.0 (all documented where they apply):
``encode`` adds the special tokens by default, as in today's ``transformers``;
``add_special_tokens`` adds the tokens of list values (``additional_special_tokens``);
``added_tokens.json`` holds ``{token: id}`` so added tokens survive a reload;
``from_pretrained`` raises ``FileNotFoundError`` instead of returning None; added
tokens are matched longest first; ids outside the vocabulary raise ``ValueError``
instead of decoding to the unknown token; special-token properties return None
silently when unset.

Text input, the same in every family: text must be a ``str`` (``bytes`` raise a
``TypeError`` suggesting ``.decode("utf-8", errors="replace")``), and every code point
that UTF-8 cannot encode (a lone surrogate, U+D800..U+DFFF) is replaced by U+FFFD before
tokenization (:func:`._unicode.text_input`, called by ``tokenize`` and every ``encode``
entry point). So a text with a lone surrogate gives exactly the ids of the same text
with U+FFFD there, which each family then treats as any other character (BERT's cleaning
drops it, as the original BERT does; GPT-2 encodes its three UTF-8 bytes; sentencepiece
gives its piece or ``<unk>``). pytorch-transformers 1.0 raised ``UnicodeEncodeError``
(GPT-2), a pybind11 ``RuntimeError`` (XLNet) or dropped it (BERT). Vocabulary files that
are not valid UTF-8 raise ``ValueError`` naming the file.

Added and special tokens are found by one regex written as a prefix tree
(:mod:`._trie`), built once per token set and cached: the work per character follows
the next characters, not the number of added tokens (10,000 of them make a 100 KB
encode about 2x slower than none; an alternation of them, 70-110x).
"""

from __future__ import annotations

import inspect
import json
import logging
import operator
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch

from .. import hub
from .._atomic import check_save_complete
from . import _encoding, _trie, _unicode
from ._files import (
    ADDED_TOKENS_FILE,
    SPECIAL_TOKENS_MAP_FILE,
    TOKENIZER_CONFIG_FILE,
    find_vocab_files,
    make_dir,
    read_saved_config,
    token_content,
    write_files_atomically,
)

__all__ = ["PreTrainedTokenizer", "clean_up_tokenization"]

logger = logging.getLogger(__name__)

UNBOUNDED_LENGTH = int(1e12)  # pytorch-transformers 1.0's "no maximum length"

_SINGLE_SPECIAL = (
    "bos_token",
    "eos_token",
    "unk_token",
    "sep_token",
    "pad_token",
    "cls_token",
    "mask_token",
)

TextInput = str
Ids = Sequence[int] | torch.Tensor


def clean_up_tokenization(out_string: str) -> str:
    """Undo the spaces that joining tokens puts before punctuation and English contractions.

    The pytorch-transformers 1.0 rules: drop the space before ``. ? ! ,``, join `` ' ``,
    `` n't``, `` 'm``, `` 's``, `` 've``, `` 're``, and turn `` do not`` into `` don't``
    (today's ``transformers`` no longer has that last rule).

    Args:
        out_string: decoded text.

    Returns:
        The cleaned text.

    Example:
        >>> clean_up_tokenization("i do not know , he 's here .")
        "i don't know, he's here."
    """
    return (
        out_string.replace(" .", ".")
        .replace(" ?", "?")
        .replace(" !", "!")
        .replace(" ,", ",")
        .replace(" ' ", "'")
        .replace(" n't", "n't")
        .replace(" 'm", "'m")
        .replace(" do not", " don't")
        .replace(" 's", "'s")
        .replace(" 've", "'ve")
        .replace(" 're", "'re")
    )


def _token_list(value: Any, name: str) -> list[str]:
    """A list of special tokens; HF's dict form ``{name: token}`` contributes its values."""
    if value is None:
        return []
    if isinstance(value, Mapping) and "content" not in value:
        value = list(value.values())
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TypeError(f"{name} must be a list of str; got {type(value).__name__}: {value!r}")
    tokens = [token_content(v, name) for v in value]
    if any(t is None for t in tokens):
        raise TypeError(f"{name} must not contain None")
    return tokens  # type: ignore[return-value]


def _special_token_property(name: str) -> property:
    def getter(self: PreTrainedTokenizer) -> str | None:
        return self._special_tokens.get(name)

    def setter(self: PreTrainedTokenizer, value: Any) -> None:
        self._special_tokens[name] = token_content(value, name)
        self._split_cache = None

    return property(getter, setter, doc=f"The {name.replace('_', ' ')} (str), or None when unset.")


def _special_id_property(name: str) -> property:
    def getter(self: PreTrainedTokenizer) -> int | None:
        token = self._special_tokens.get(name)
        return None if token is None else self._token_id(token)

    return property(getter, doc=f"Id of the {name.replace('_', ' ')}, or None when unset.")


class PreTrainedTokenizer:
    """Base class of the tokenizers: special tokens, added tokens, encoding, files.

    Args:
        max_len: maximum number of ids the model accepts (``model_max_length`` is an
            alias); default 10**12, i.e. unbounded, as in pytorch-transformers 1.0.
        **special_tokens: any of :attr:`SPECIAL_TOKENS_ATTRIBUTES` (``unk_token="[UNK]"``,
            ``additional_special_tokens=[...]``); values are str, or Hugging Face's
            ``{"content": ...}`` dicts. Other keywords raise ``TypeError``.
    """

    vocab_files_names: ClassVar[dict[str, str]] = {}
    optional_vocab_files: ClassVar[frozenset[str]] = frozenset()
    hub_files: ClassVar[Sequence[str | Sequence[str]] | None] = None
    """Vocabulary files to fetch for a Hub name (an inner sequence: the first the repo
    has); None: the ``vocab_files_names`` that are not optional."""
    SPECIAL_TOKENS_ATTRIBUTES: ClassVar[list[str]] = [*_SINGLE_SPECIAL, "additional_special_tokens"]
    model_input_names: ClassVar[tuple[str, ...]] = ("input_ids", "token_type_ids", "attention_mask")
    # pytorch-transformers 1.0 strips the text on both sides of an added/special token.
    # Harmless for WordPiece; byte-level BPE (GPT-2) sets this to False to keep spaces.
    strip_around_added_tokens: ClassVar[bool] = True
    padding_side: Literal["right", "left"] = "right"

    bos_token = _special_token_property("bos_token")
    eos_token = _special_token_property("eos_token")
    unk_token = _special_token_property("unk_token")
    sep_token = _special_token_property("sep_token")
    pad_token = _special_token_property("pad_token")
    cls_token = _special_token_property("cls_token")
    mask_token = _special_token_property("mask_token")
    bos_token_id = _special_id_property("bos_token")
    eos_token_id = _special_id_property("eos_token")
    unk_token_id = _special_id_property("unk_token")
    sep_token_id = _special_id_property("sep_token")
    pad_token_id = _special_id_property("pad_token")
    cls_token_id = _special_id_property("cls_token")
    mask_token_id = _special_id_property("mask_token")

    def __init__(self, max_len: int | None = None, **kwargs: Any) -> None:
        model_max_length = kwargs.pop("model_max_length", None)
        if max_len is not None and model_max_length is not None and max_len != model_max_length:
            raise ValueError(
                f"max_len={max_len} and model_max_length={model_max_length} disagree; "
                "give one of them"
            )
        max_len = max_len if max_len is not None else model_max_length
        if max_len is not None and (isinstance(max_len, bool) or not isinstance(max_len, int)):
            raise TypeError(f"max_len must be an int; got {type(max_len).__name__}: {max_len!r}")
        # today's transformers writes int(1e30) for "no limit"; keep 1.0's 1e12
        self.max_len: int = UNBOUNDED_LENGTH if max_len is None else min(max_len, UNBOUNDED_LENGTH)
        self._special_tokens: dict[str, str | None] = dict.fromkeys(_SINGLE_SPECIAL)
        self._additional_special_tokens: list[str] = []
        self.added_tokens_encoder: dict[str, int] = {}
        self.added_tokens_decoder: dict[int, str] = {}
        self._split_cache: tuple[Any, re.Pattern[str] | None] | None = None
        unknown = sorted(set(kwargs) - set(self.SPECIAL_TOKENS_ATTRIBUTES))
        if unknown:
            raise TypeError(
                f"{type(self).__name__} got unexpected keyword argument(s) {unknown}; special "
                f"tokens are {self.SPECIAL_TOKENS_ATTRIBUTES}"
            )
        for key, value in kwargs.items():
            setattr(self, key, value)

    # ------------------------------------------------------------------ special tokens

    @property
    def additional_special_tokens(self) -> list[str]:
        """Extra special tokens (never split, skipped by ``decode(skip_special_tokens=True)``)."""
        return self._additional_special_tokens

    @additional_special_tokens.setter
    def additional_special_tokens(self, value: Any) -> None:
        self._additional_special_tokens = _token_list(value, "additional_special_tokens")
        self._split_cache = None

    @property
    def additional_special_tokens_ids(self) -> list[int]:
        """Ids of :attr:`additional_special_tokens`."""
        return self._tokens_to_ids(self._additional_special_tokens)

    @property
    def model_max_length(self) -> int:
        """Alias of ``max_len`` (today's ``transformers`` name)."""
        return self.max_len

    @model_max_length.setter
    def model_max_length(self, value: int) -> None:
        self.max_len = value

    @property
    def special_tokens_map(self) -> dict[str, str | list[str]]:
        """The special-token attributes that are set, in ``SPECIAL_TOKENS_ATTRIBUTES`` order."""
        out: dict[str, str | list[str]] = {}
        for name in _SINGLE_SPECIAL:
            if self._special_tokens[name]:
                out[name] = self._special_tokens[name]  # type: ignore[assignment]
        if self._additional_special_tokens:
            out["additional_special_tokens"] = list(self._additional_special_tokens)
        return out

    @property
    def all_special_tokens(self) -> list[str]:
        """Every special token once, in attribute order, then the additional ones in order."""
        tokens = [t for t in (self._special_tokens[n] for n in _SINGLE_SPECIAL) if t]
        return list(dict.fromkeys(tokens + self._additional_special_tokens))

    @property
    def all_special_ids(self) -> list[int]:
        """Ids of :attr:`all_special_tokens`, in the same order."""
        return self._tokens_to_ids(self.all_special_tokens)

    # ------------------------------------------------------------------ vocabulary

    @property
    def vocab_size(self) -> int:
        """Size of the base vocabulary, without added tokens."""
        raise NotImplementedError(f"{type(self).__name__} must define vocab_size")

    def __len__(self) -> int:
        return self.vocab_size + len(self.added_tokens_encoder)

    def get_vocab(self) -> dict[str, int]:
        """Token -> id for the whole vocabulary, added tokens included."""
        vocab = {self._convert_id_to_token(i): i for i in range(self.vocab_size)}
        vocab.pop(None, None)  # type: ignore[call-overload]
        vocab.update(self.added_tokens_encoder)
        return vocab  # type: ignore[return-value]

    def _next_added_id(self) -> int:
        return max(len(self), max(self.added_tokens_decoder, default=-1) + 1)

    def add_tokens(self, new_tokens: str | Iterable[str]) -> int:
        """Add tokens that are not in the vocabulary yet; they are never split by ``tokenize``.

        Args:
            new_tokens: a token or a list of tokens. Tokens already in the base vocabulary
                or already added, empty strings and repeats are skipped.

        Returns:
            How many tokens were added (grow the model's embeddings by that many). New ids
            are ``len(self)``, ``len(self) + 1``, ...

        Raises:
            TypeError: a token is not a str.
            ValueError: a token holds a lone surrogate (no text could ever match it:
                surrogates in texts become U+FFFD).
        """
        tokens = [new_tokens] if isinstance(new_tokens, str) else list(new_tokens)
        for token in tokens:  # check them all first: nothing is added if one is bad
            if not isinstance(token, str):
                raise TypeError(f"tokens to add must be str; got {type(token).__name__}: {token!r}")
            if _unicode.text_input(token, "token") is not token:
                raise ValueError(
                    f"token {token!r} holds a lone surrogate, which no text can match "
                    "(surrogates in texts become U+FFFD); add valid Unicode"
                )
        added = 0
        index = self._next_added_id()
        for token in tokens:
            if not token or token in self.added_tokens_encoder:
                continue
            if self._convert_token_to_id(token) is not None:
                continue
            self.added_tokens_encoder[token] = index
            self.added_tokens_decoder[index] = token
            index += 1
            added += 1
        if added:
            self._split_cache = None
        return added

    def add_special_tokens(self, special_tokens_dict: Mapping[str, Any]) -> int:
        """Set special-token attributes and add their tokens to the vocabulary when missing.

        Unlike pytorch-transformers 1.0, list values (``additional_special_tokens``) are
        expanded, so their tokens are added too; the list replaces the previous one.

        Args:
            special_tokens_dict: attribute name (one of :attr:`SPECIAL_TOKENS_ATTRIBUTES`)
                -> token, or list of tokens for ``additional_special_tokens``.

        Returns:
            How many tokens were added to the vocabulary.
        """
        tokens: list[str] = []
        for key, value in special_tokens_dict.items():
            if key not in self.SPECIAL_TOKENS_ATTRIBUTES:
                raise ValueError(
                    f"{key!r} is not a special-token attribute; expected one of "
                    f"{self.SPECIAL_TOKENS_ATTRIBUTES}"
                )
            if key == "additional_special_tokens":
                values = _token_list(value, key)
            else:
                token = token_content(value, key)
                values = [] if token is None else [token]
            tokens.extend(values)
            setattr(self, key, values if key == "additional_special_tokens" else value)
        return self.add_tokens(tokens)

    # ------------------------------------------------------------------ tokenizing

    def _no_split_pattern(self) -> re.Pattern[str] | None:
        """Regex capturing added and special tokens, longest first (see :mod:`._trie`).

        Built once per token set: ``add_tokens``, ``add_special_tokens`` and the
        special-token setters drop it; the cache key (the numbers of added and additional
        special tokens and the special-token values) also catches tokens appended to
        ``added_tokens_encoder`` or ``additional_special_tokens`` directly, without
        walking them on every call.
        """
        key = (
            len(self.added_tokens_encoder),
            len(self._additional_special_tokens),
            tuple(self._special_tokens.values()),
        )
        cached = self._split_cache
        if cached is not None and cached[0] == key:
            return cached[1]
        pattern = _trie.longest_first_pattern(
            set(self.added_tokens_encoder).union(self.all_special_tokens)
        )
        self._split_cache = (key, pattern)
        return pattern

    def tokenize(self, text: TextInput, **kwargs: Any) -> list[str]:
        """Split a text into tokens; added and special tokens are kept whole.

        The text is first cut around added and special tokens (longest match first); with
        ``strip_around_added_tokens`` (True here, as in 1.0) the pieces between them are
        stripped of surrounding whitespace. Each piece then goes through ``_tokenize``.

        Args:
            text: the text.
            **kwargs: options of the family's ``_tokenize``, passed to every piece as in
                pytorch-transformers 1.0 (e.g. XLNet's ``sample``); the families without
                options take none.

        Returns:
            Tokens (str).

        Raises:
            TypeError: ``text`` is not a str (lone surrogates become U+FFFD, see above).
        """
        text = _unicode.text_input(text, "text")
        pattern = self._no_split_pattern()
        if pattern is None:
            return self._tokenize(text, **kwargs) if text else []
        tokens: list[str] = []
        for i, piece in enumerate(pattern.split(text)):
            if i % 2:
                tokens.append(piece)
                continue
            if self.strip_around_added_tokens:
                piece = piece.strip()
            if piece:
                tokens.extend(self._tokenize(piece, **kwargs))
        return tokens

    def _tokenize(self, text: str) -> list[str]:
        """Tokenize a text that holds no added or special token (subclass hook)."""
        raise NotImplementedError(f"{type(self).__name__} must define _tokenize")

    def _convert_token_to_id(self, token: str) -> int | None:
        """Id of a token of the base vocabulary, None when absent (subclass hook)."""
        raise NotImplementedError(f"{type(self).__name__} must define _convert_token_to_id")

    def _convert_id_to_token(self, index: int) -> str | None:
        """Token of a base-vocabulary id, None when out of range (subclass hook)."""
        raise NotImplementedError(f"{type(self).__name__} must define _convert_id_to_token")

    def _unknown_token_id(self, token: str) -> int:
        unk = self._special_tokens["unk_token"]
        unk_id = None
        if unk is not None:
            unk_id = self.added_tokens_encoder.get(unk, self._convert_token_to_id(unk))
        if unk_id is None:
            raise ValueError(
                f"token {token!r} is not in the vocabulary and the tokenizer has no usable "
                f"unk_token (unk_token={unk!r})"
            )
        return unk_id

    def _token_id(self, token: str) -> int:
        index = self.added_tokens_encoder.get(token)
        if index is None:
            index = self._convert_token_to_id(token)
        return self._unknown_token_id(token) if index is None else index

    def _tokens_to_ids(self, tokens: Iterable[str]) -> list[int]:
        added = self.added_tokens_encoder
        to_id = self._convert_token_to_id
        ids = []
        for token in tokens:
            index = added.get(token)
            if index is None:
                index = to_id(token)
                if index is None:
                    index = self._unknown_token_id(token)
            ids.append(index)
        return ids

    def convert_tokens_to_ids(self, tokens: str | Iterable[str]) -> int | list[int]:
        """Map a token, or a list of tokens, to ids; unknown tokens map to ``unk_token``'s id.

        Args:
            tokens: a str or an iterable of str.

        Returns:
            An int for a str, else a list of ints. A warning is logged when the list is
            longer than ``max_len`` (nothing is truncated).

        Raises:
            TypeError: a token is not a str.
            ValueError: a token is unknown and the tokenizer has no ``unk_token``.
        """
        if isinstance(tokens, str):
            return self._tokens_to_ids((tokens,))[0]
        tokens = list(tokens)
        for token in tokens:
            if not isinstance(token, str):
                raise TypeError(f"tokens must be str; got {type(token).__name__}: {token!r}")
        ids = self._tokens_to_ids(tokens)
        self._warn_if_too_long(len(ids))
        return ids

    def _id_list(self, ids: Any) -> tuple[list[int], bool]:
        """Ids as a list of int, and whether the input was a scalar; checks type and rank."""
        if isinstance(ids, torch.Tensor):
            if ids.dtype.is_floating_point or ids.dtype.is_complex or ids.dtype == torch.bool:
                raise TypeError(f"token ids must be an integer tensor; got dtype {ids.dtype}")
            if ids.dim() > 1:
                raise ValueError(
                    f"token ids must be a scalar or a 1-D tensor; got shape {tuple(ids.shape)} "
                    "(decode rows one at a time, or use batch_decode)"
                )
            return (ids.tolist() if ids.dim() else [ids.item()]), ids.dim() == 0
        if hasattr(ids, "dtype") and hasattr(ids, "ndim"):  # numpy array or scalar
            if ids.dtype.kind not in "iu":
                raise TypeError(f"token ids must be integers; got dtype {ids.dtype}")
            if ids.ndim > 1:
                raise ValueError(f"token ids must be a scalar or 1-D; got shape {ids.shape}")
            return ([int(i) for i in ids.tolist()] if ids.ndim else [int(ids)]), ids.ndim == 0
        if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
            return [self._one_id(ids)], True
        return [self._one_id(i) for i in ids], False

    @staticmethod
    def _one_id(index: Any) -> int:
        if type(index) is int:
            return index
        if isinstance(index, bool) or isinstance(index, (str, bytes, float)):
            raise TypeError(f"token ids must be int; got {type(index).__name__}: {index!r}")
        try:
            return operator.index(index)
        except TypeError:
            raise TypeError(
                f"token ids must be int; got {type(index).__name__}: {index!r}"
            ) from None

    def convert_ids_to_tokens(
        self, ids: int | Ids, skip_special_tokens: bool = False
    ) -> str | list[str]:
        """Map an id, or a sequence of ids, to tokens (added tokens included).

        Args:
            ids: an int, a list/tuple of ints, or an integer tensor / array of rank 0 or 1.
            skip_special_tokens: drop the ids of :attr:`all_special_tokens` (lists only).

        Returns:
            A str for a scalar, else a list of str.

        Raises:
            TypeError: ids that are not integers (floats, bools, strings, float tensors).
            ValueError: an id outside ``[0, len(self))``, or a tensor of rank > 1.
        """
        id_list, scalar = self._id_list(ids)
        if skip_special_tokens and not scalar:
            special = set(self.all_special_ids)
            id_list = [i for i in id_list if i not in special]
        decoder = self.added_tokens_decoder
        to_token = self._convert_id_to_token
        tokens = []
        for index in id_list:
            token = decoder.get(index)
            if token is None:
                token = to_token(index) if index >= 0 else None
                if token is None:
                    raise ValueError(
                        f"token id {index} is outside the vocabulary: ids run from 0 to "
                        f"{len(self) - 1}"
                    )
            tokens.append(token)
        return tokens[0] if scalar else tokens

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        """Join tokens into text (subclass hook; here: separated by single spaces)."""
        return " ".join(tokens)

    def decode(
        self,
        token_ids: int | Ids,
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: bool = True,
    ) -> str:
        """Turn ids back into text.

        Args:
            token_ids: list or tuple of ints, or a 1-D integer tensor.
            skip_special_tokens: leave out special tokens ([CLS], [PAD], ...).
            clean_up_tokenization_spaces: apply :func:`clean_up_tokenization`.

        Returns:
            The text.

        Raises:
            TypeError / ValueError: as :meth:`convert_ids_to_tokens`.
        """
        tokens = self.convert_ids_to_tokens(token_ids, skip_special_tokens=skip_special_tokens)
        text = self.convert_tokens_to_string([tokens] if isinstance(tokens, str) else tokens)
        return clean_up_tokenization(text) if clean_up_tokenization_spaces else text

    def batch_decode(self, sequences: Iterable[Ids] | torch.Tensor, **kwargs: Any) -> list[str]:
        """:meth:`decode` each row of a list of id lists or of a 2-D tensor."""
        if isinstance(sequences, torch.Tensor) and sequences.dim() != 2:
            raise ValueError(f"batch_decode needs a 2-D tensor; got shape {tuple(sequences.shape)}")
        return [self.decode(row, **kwargs) for row in sequences]

    # ------------------------------------------------------------------ special-token template

    def build_inputs_with_special_tokens(
        self, ids_a: list[int], ids_b: list[int] | None = None
    ) -> list[int]:
        """Model input from one or two id sequences; the base class adds no special token."""
        return list(ids_a) if ids_b is None else list(ids_a) + list(ids_b)

    def create_token_type_ids(self, ids_a: list[int], ids_b: list[int] | None = None) -> list[int]:
        """Segment ids matching :meth:`build_inputs_with_special_tokens` (0 for A, 1 for B)."""
        return [0] * len(ids_a) + ([] if ids_b is None else [1] * len(ids_b))

    create_token_type_ids_from_sequences = create_token_type_ids  # today's transformers name

    def get_special_tokens_mask(
        self,
        ids_a: list[int],
        ids_b: list[int] | None = None,
        already_has_special_tokens: bool = False,
    ) -> list[int]:
        """1 where :meth:`build_inputs_with_special_tokens` puts a special token, else 0.

        With ``already_has_special_tokens=True``, ``ids_a`` is a built input and the mask
        marks the ids of :attr:`all_special_tokens` in it.
        """
        if already_has_special_tokens:
            if ids_b is not None:
                raise ValueError("ids_b must be None when already_has_special_tokens=True")
            special = set(self.all_special_ids)
            return [1 if i in special else 0 for i in ids_a]
        # build the input around placeholders: whatever is not a placeholder is special
        built = self.build_inputs_with_special_tokens(
            [None] * len(ids_a), None if ids_b is None else [None] * len(ids_b)
        )
        return [0 if i is None else 1 for i in built]

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        """How many special tokens :meth:`build_inputs_with_special_tokens` adds."""
        return len(self.build_inputs_with_special_tokens([], [] if pair else None))

    # ------------------------------------------------------------------ encoding

    def _text_ids(self, text: Any, name: str) -> list[int]:
        return self._tokens_to_ids(self.tokenize(_unicode.text_input(text, name)))

    def _encode_one(
        self,
        ids_a: list[int],
        ids_b: list[int] | None,
        add_special_tokens: bool,
        truncation: _encoding.TruncationStrategy,
        max_length: int | None,
        keys: Sequence[str] = (),
    ) -> dict[str, list[int]]:
        """Truncate and template one example; ``input_ids`` plus the other ``keys``."""
        if truncation != "do_not_truncate":
            limit = self.max_len if max_length is None else max_length
            special = self.num_special_tokens_to_add(ids_b is not None) if add_special_tokens else 0
            ids_a, ids_b = _encoding.truncate(ids_a, ids_b, limit - special, truncation)
        if add_special_tokens:
            input_ids = self.build_inputs_with_special_tokens(ids_a, ids_b)
        else:
            input_ids = ids_a + ids_b if ids_b else list(ids_a)
        out = {"input_ids": input_ids}
        if "token_type_ids" in keys:
            out["token_type_ids"] = (
                self.create_token_type_ids(ids_a, ids_b)
                if add_special_tokens
                else PreTrainedTokenizer.create_token_type_ids(self, ids_a, ids_b)
            )
        if "attention_mask" in keys:
            out["attention_mask"] = [1] * len(input_ids)
        if "special_tokens_mask" in keys:
            out["special_tokens_mask"] = (
                self.get_special_tokens_mask(ids_a, ids_b)
                if add_special_tokens
                else [0] * len(input_ids)
            )
        return out

    def _truncation_mode(
        self, truncation: bool | str | None, max_length: int | None
    ) -> _encoding.TruncationStrategy:
        if max_length is not None and (
            isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 0
        ):
            raise ValueError(f"max_length must be a non-negative int; got {max_length!r}")
        mode = _encoding.truncation_strategy(truncation, max_length)
        if max_length is None and self.max_len >= UNBOUNDED_LENGTH:
            return "do_not_truncate"  # nothing to truncate to, as in transformers
        return mode

    def _warn_if_too_long(self, length: int) -> None:
        if length > self.max_len:
            logger.warning(
                "Token indices sequence length is longer than the specified maximum sequence "
                "length for this model (%d > %d); running it through the model will fail",
                length,
                self.max_len,
            )

    def encode(
        self,
        text: TextInput,
        text_pair: TextInput | None = None,
        add_special_tokens: bool = False,
        *,
        truncation: bool | str | None = None,
        max_length: int | None = None,
    ) -> list[int]:
        """Ids of a text, or of a pair of texts (concatenated).

        The default is pytorch-transformers 1.0's: **no special tokens**
        (``encode("a")`` is the ids of ``a`` alone), so 1.0 code gives the same ids.
        Today's ``transformers`` changed that default: its ``encode("a")`` is
        ``[CLS] a [SEP]`` for BERT. Pass ``add_special_tokens=True`` for the model's
        template, or use ``tokenizer(text)`` / :meth:`encode_plus` / :meth:`batch_encode`,
        which add them by default as today's ``transformers`` does.

        Args:
            text: first sequence.
            text_pair: optional second sequence (1.0 returned the two id lists as a
                tuple here without special tokens; ptfunc returns one list, as today).
            add_special_tokens: insert the special tokens of the model's template
                (for BERT ``[CLS] a [SEP] b [SEP]``).
            truncation: as in :meth:`batch_encode`.
            max_length: as in :meth:`batch_encode`.

        Returns:
            A list of int.

        Raises:
            TypeError: ``text`` or ``text_pair`` is not a str.
        """
        mode = self._truncation_mode(truncation, max_length)
        ids_a = self._text_ids(text, "text")
        ids_b = None if text_pair is None else self._text_ids(text_pair, "text_pair")
        ids = self._encode_one(ids_a, ids_b, add_special_tokens, mode, max_length)["input_ids"]
        if mode == "do_not_truncate":
            self._warn_if_too_long(len(ids))
        return ids

    def encode_plus(
        self, text: TextInput, text_pair: TextInput | None = None, **options: Any
    ) -> dict[str, Any]:
        """Encode one text (or pair): like :meth:`batch_encode` with a batch of one, unbatched.

        Returns:
            ``{"input_ids": [...], "token_type_ids": [...], "attention_mask": [...]}`` of
            lists, or of int64 tensors of shape (1, length) with ``return_tensors="pt"``.
        """
        _unicode.text_input(text, "text")
        batch = self.batch_encode([text], None if text_pair is None else [text_pair], **options)
        if options.get("return_tensors") is not None:
            return batch
        return {key: rows[0] for key, rows in batch.items()}

    def __call__(
        self,
        text: TextInput | Sequence[TextInput],
        text_pair: TextInput | Sequence[TextInput] | None = None,
        **options: Any,
    ) -> dict[str, Any]:
        """Hugging Face style entry point: a str goes to :meth:`encode_plus`, a list to
        :meth:`batch_encode`."""
        if isinstance(text, str):
            return self.encode_plus(text, text_pair, **options)
        return self.batch_encode(text, text_pair, **options)

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
        return_token_type_ids: bool | None = None,
        return_attention_mask: bool = True,
        return_special_tokens_mask: bool = False,
    ) -> dict[str, Any]:
        """Encode a batch of texts (or of text pairs) with padding and truncation.

        Semantics of today's Hugging Face ``tokenizer(texts, pairs, padding=...,
        truncation=..., max_length=...)`` for BERT, except that impossible requests raise
        ``ValueError`` instead of being ignored.

        Args:
            texts: list of str.
            text_pairs: optional list of str, one per text.
            add_special_tokens: insert the model's special tokens ([CLS] A [SEP] B [SEP]).
            padding: False/'do_not_pad'; True/'longest' (to the longest row of the batch);
                'max_length' (to ``max_length``, or ``max_len`` when not given).
            truncation: None (default: 'longest_first' if ``max_length`` is given and
                there is no padding, else none), False, True/'longest_first',
                'only_first', 'only_second'. The limit is ``max_length``, or ``max_len``
                when not given, special tokens included.
            max_length: the length limit for truncation and 'max_length' padding.
            return_tensors: None for lists of lists, "pt" for int64 tensors of shape
                (batch, length) (the rows must then have equal lengths).
            padding_side: 'right' (default: ``self.padding_side``) or 'left'.
            return_token_type_ids: include ``token_type_ids`` (default: whether the class
                lists it in ``model_input_names``).
            return_attention_mask: include ``attention_mask`` (1 for tokens, 0 for padding).
            return_special_tokens_mask: include ``special_tokens_mask`` (1 for special
                tokens and padding).

        Returns:
            A dict with ``input_ids`` and the requested ``token_type_ids``,
            ``attention_mask``, ``special_tokens_mask``. Padding uses ``pad_token_id``,
            token type 0, attention 0.

        Raises:
            TypeError: texts not a list of str.
            ValueError: bad option, pairs of another length, nothing to pad with, or a
                truncation that cannot reach ``max_length``.
        """
        side = self.padding_side if padding_side is None else padding_side
        _encoding.check_batch_arguments(texts, text_pairs, return_tensors, side)
        pad_mode = _encoding.padding_strategy(padding)
        if truncation is None and pad_mode != "do_not_pad":
            truncation = False  # with padding, max_length alone does not truncate (as in HF)
        trunc_mode = self._truncation_mode(truncation, max_length)
        if return_token_type_ids is None:
            return_token_type_ids = "token_type_ids" in self.model_input_names
        keys = ["input_ids"]
        if return_token_type_ids:
            keys.append("token_type_ids")
        if return_attention_mask:
            keys.append("attention_mask")
        if return_special_tokens_mask:
            keys.append("special_tokens_mask")

        rows = [
            self._encode_one(
                self._text_ids(text, f"texts[{i}]"),
                None if text_pairs is None else self._text_ids(text_pairs[i], f"text_pairs[{i}]"),
                add_special_tokens,
                trunc_mode,
                max_length,
                keys,
            )
            for i, text in enumerate(texts)
        ]
        batch = {key: [row[key] for row in rows] for key in keys}
        if pad_mode != "do_not_pad":
            length = self.max_len if max_length is None else max_length
            if pad_mode == "max_length" and length >= UNBOUNDED_LENGTH:
                raise ValueError(
                    "padding='max_length' needs max_length (the tokenizer has no max_len)"
                )
            _encoding.pad_batch(
                batch, length if pad_mode == "max_length" else None, self.pad_token_id, side
            )
        elif trunc_mode == "do_not_truncate":
            self._warn_if_too_long(max((len(ids) for ids in batch["input_ids"]), default=0))
        if return_tensors == "pt":
            return {key: _encoding.to_tensor(value, key) for key, value in batch.items()}
        return batch

    # ------------------------------------------------------------------ files

    def _vocabulary_files(self) -> dict[str, str | bytes]:
        """File name -> content of the vocabulary files (subclass hook)."""
        raise NotImplementedError(f"{type(self).__name__} must define _vocabulary_files")

    def _init_config(self) -> dict[str, Any]:
        """Constructor options to save in tokenizer_config.json (subclass hook)."""
        return {}

    def save_vocabulary(self, save_directory: str | os.PathLike[str]) -> tuple[str, ...]:
        """Write the vocabulary files (only; see :meth:`save_pretrained`) into a directory.

        Args:
            save_directory: directory, created if missing.

        Returns:
            Paths of the files written.
        """
        directory = make_dir(save_directory)
        return write_files_atomically(
            {directory / name: data for name, data in self._vocabulary_files().items()}
        )

    def tokenizer_config(self) -> dict[str, Any]:
        """The content of ``tokenizer_config.json``: class, options, max length, special tokens."""
        config: dict[str, Any] = {"tokenizer_class": type(self).__name__}
        config.update(self._init_config())
        config["model_max_length"] = self.max_len
        config.update(self.special_tokens_map)
        return config

    def save_pretrained(self, save_directory: str | os.PathLike[str]) -> tuple[str, ...]:
        """Save everything :meth:`from_pretrained` needs, atomically.

        Writes ``special_tokens_map.json``, ``added_tokens.json`` (``{token: id}``; 1.0 wrote
        ``{id: token}`` and lost the tokens on reload), ``tokenizer_config.json`` and the
        vocabulary files. All files are written to temporary files first and moved into
        place only when every one of them is complete, so a failure leaves the previous
        files intact. Today's ``transformers`` reads the directory too.

        Args:
            save_directory: directory, created if missing.

        Returns:
            Paths written: vocabulary files, then special_tokens_map.json,
            added_tokens.json, tokenizer_config.json.
        """
        directory = make_dir(save_directory)
        files: dict[Path, str | bytes] = {
            directory / name: data for name, data in self._vocabulary_files().items()
        }
        added = dict(sorted(self.added_tokens_encoder.items(), key=lambda kv: kv[1]))
        files[directory / SPECIAL_TOKENS_MAP_FILE] = (
            json.dumps(self.special_tokens_map, ensure_ascii=False, indent=2) + "\n"
        )
        files[directory / ADDED_TOKENS_FILE] = (
            json.dumps(added, ensure_ascii=False, indent=2) + "\n"
        )
        files[directory / TOKENIZER_CONFIG_FILE] = (
            json.dumps(self.tokenizer_config(), ensure_ascii=False, indent=2) + "\n"
        )
        return write_files_atomically(files)

    @classmethod
    def from_pretrained(
        cls, pretrained_path: str | os.PathLike[str], **kwargs: Any
    ) -> PreTrainedTokenizer:
        """Load a tokenizer from a directory (or, for one-file vocabularies, a vocabulary file).

        The directory holds the files named by ``vocab_files_names``, and optionally
        ``added_tokens.json`` (``{token: id}``, or 1.0's ``{id: token}``),
        ``special_tokens_map.json`` and ``tokenizer_config.json`` as written by
        pytorch-transformers 1.0, today's ``transformers`` or :meth:`save_pretrained`
        (``max_len`` or ``model_max_length``; special tokens as str or ``{"content": ...}``;
        ``additional_special_tokens`` or ``extra_special_tokens``; ``added_tokens_decoder``).
        A pytorch-transformers 1.0 shortcut name (``bert-base-uncased``) or a Hub repo id
        fetches the vocabulary and those JSON files (nothing else) into the Hugging Face
        cache; shortcut names get 1.0's defaults too (``max_len`` capped at the model's
        positions; for BERT, ``do_lower_case`` from the name). A local path always wins.

        Args:
            pretrained_path: directory, path of the vocabulary file, shortcut name or repo id.
            **kwargs: constructor arguments; they override the files. ``revision``,
                ``cache_dir``, ``force_download``, ``local_files_only`` and ``token`` are
                for names (see :class:`ptfunc.hub.HubOptions`).

        Returns:
            The tokenizer.

        Raises:
            FileNotFoundError: the path does not exist, or a vocabulary file is missing.
            ValueError: a JSON file is corrupt or an added-token id clashes.
        """
        pretrained_path = cls._resolve_pretrained(pretrained_path, kwargs)
        if os.path.isdir(pretrained_path):  # a save killed while committing: say so
            for name in cls.vocab_files_names.values():
                check_save_complete(pretrained_path, name)
        files, directory = find_vocab_files(
            cls.__name__, cls.vocab_files_names, cls.optional_vocab_files, pretrained_path, kwargs
        )
        config: dict[str, Any] = {}
        added: dict[str, int] = {}
        if directory is not None:
            config, added = read_saved_config(directory, cls._accepted_init_args())
        init_args = {**files, **config, **kwargs}
        tokenizer = cls(**init_args)
        tokenizer._restore_added_tokens(added, where=str(directory))
        missing_special = [
            t
            for t in tokenizer.all_special_tokens
            if t not in tokenizer.added_tokens_encoder and tokenizer._convert_token_to_id(t) is None
        ]
        tokenizer.add_tokens(missing_special)
        return tokenizer

    @classmethod
    def _resolve_pretrained(
        cls, pretrained_path: str | os.PathLike[str], kwargs: dict[str, Any]
    ) -> str | os.PathLike[str]:
        """A local path for ``pretrained_path``: itself, or the cache snapshot of a name.

        Takes the hub options out of ``kwargs`` and, for a 1.0 shortcut name, puts 1.0's
        defaults in (see :meth:`_shortcut_defaults`).
        """
        options = hub.HubOptions.pop_from(kwargs)
        if hub.is_local(pretrained_path):
            return pretrained_path
        name = os.fspath(pretrained_path)
        entry = hub.shortcut(name)
        if entry is not None:
            cls._shortcut_defaults(name, entry, kwargs)
        required = cls.hub_files
        if required is None:
            required = [
                file
                for arg, file in cls.vocab_files_names.items()
                if file not in cls.optional_vocab_files and arg not in kwargs
            ]
        optional = [TOKENIZER_CONFIG_FILE, SPECIAL_TOKENS_MAP_FILE, ADDED_TOKENS_FILE]
        return hub.fetch(name, required, optional, options=options)

    @classmethod
    def _shortcut_defaults(
        cls, name: str, entry: Mapping[str, Any], kwargs: dict[str, Any]
    ) -> None:
        """1.0's defaults for a shortcut name: ``max_len`` capped at the model's positions."""
        cap = entry.get("max_len")
        if cap is not None:
            kwargs["max_len"] = min(kwargs.get("max_len", int(1e12)), int(cap))

    @classmethod
    def _accepted_init_args(cls) -> set[str]:
        names: set[str] = set(cls.SPECIAL_TOKENS_ATTRIBUTES) | {"max_len", "model_max_length"}
        for klass in cls.__mro__:
            init = klass.__dict__.get("__init__")
            if init is None:
                continue
            for param in inspect.signature(init).parameters.values():
                if param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
                    names.add(param.name)
        names.discard("self")
        return names - set(cls.vocab_files_names)

    def _restore_added_tokens(self, added: Mapping[str, int], where: str) -> None:
        """Put saved added tokens back with their ids; ids must follow the vocabulary."""
        new = {}
        for token, index in added.items():
            if _unicode.text_input(token, "token") is not token:
                raise ValueError(f"{where}: added token {token!r} holds a lone surrogate")
            base = self._convert_token_to_id(token)
            if base is not None:
                if base != index:
                    raise ValueError(
                        f"{where}: added token {token!r} has id {index} but is id {base} in the "
                        "vocabulary"
                    )
                continue
            new[token] = index
        expected = self._next_added_id()
        for token, index in sorted(new.items(), key=lambda kv: kv[1]):
            if token in self.added_tokens_encoder and self.added_tokens_encoder[token] == index:
                continue
            if index != expected:
                raise ValueError(
                    f"{where}: added token {token!r} has id {index}, expected {expected} "
                    "(added-token ids must follow the vocabulary without gaps or repeats)"
                )
            self.added_tokens_encoder[token] = index
            self.added_tokens_decoder[index] = token
            expected += 1
        self._split_cache = None

    # ------------------------------------------------------------------ pickling, repr

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_split_cache"] = None
        return state

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(vocab_size={self.vocab_size}, "
            f"added_tokens={len(self.added_tokens_encoder)}, max_len={self.max_len}, "
            f"special_tokens={self.special_tokens_map})"
        )
