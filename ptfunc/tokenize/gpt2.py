"""GPT-2's byte-level BPE tokenizer.

The text is cut by GPT-2's pre-split pattern (English contractions, letter runs, digit
runs, other-symbol runs, each with one optional leading space, and whitespace runs); each
chunk's UTF-8 bytes are mapped to printable characters (:func:`bytes_to_unicode`) and
merged by BPE. Every byte is in the vocabulary, so no text is unknown and
``decode(encode(text), clean_up_tokenization_spaces=False) == text`` (a lone surrogate,
which UTF-8 cannot encode, is read as U+FFFD: see :mod:`.base`). ``decode`` cleans up
spaces before punctuation by default (``"don 't" -> "don't"``), as pytorch-transformers
1.0 did; today's ``transformers`` does not for GPT-2 (pass
``clean_up_tokenization_spaces=False`` for its output and for an exact round trip).
The merge loop is O(n log n) in a chunk's length
(:func:`._bpe.merge_symbols`): a megabyte of letters without a space, one chunk, encodes
in seconds; the classic loop (pytorch-transformers 1.0's) is quadratic, a minute for
100,000 letters.

Differences from pytorch-transformers 1.0 (all as today's ``transformers``):
the text around added / special tokens keeps its spaces (1.0 stripped them, issue #1698);
``unk_token`` defaults to ``<|endoftext|>``. Added tokens decode to their own text
(today's ``transformers`` byte-decodes them, garbling non-ASCII added tokens).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

import regex

from ._bpe import BPE, merges_text, read_merges, read_vocab
from .base import PreTrainedTokenizer

__all__ = ["GPT2Tokenizer", "bytes_to_unicode"]

VOCAB_FILES_NAMES = {"vocab_file": "vocab.json", "merges_file": "merges.txt"}

# GPT-2's pre-split pattern (OpenAI's encoder.py)
PRE_SPLIT = regex.compile(
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
)


@functools.cache
def bytes_to_unicode() -> dict[int, str]:
    """Byte value -> printable character, as GPT-2 uses it.

    Bytes ``!``..``~``, ``¡``..``¬`` and ``®``..``ÿ`` map to the same code point; the 68
    others (control characters, space, ...) map to ``chr(256)``, ``chr(257)``, ... in
    byte order (so the space is ``Ġ`` = U+0120).
    """
    keep = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    table = {b: chr(b) for b in keep}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return dict(sorted(table.items()))


# latin-1 decoding turns byte b into chr(b); this table then maps it to GPT-2's character
_BYTE_TABLE = str.maketrans({chr(b): c for b, c in bytes_to_unicode().items()})


def byte_symbols(chunk: str) -> str:
    """The initial BPE symbols of a chunk: its UTF-8 bytes as GPT-2's printable characters.

    Example:
        >>> byte_symbols(" é")
        'ĠÃ©'
    """
    return chunk.encode("utf-8").decode("latin-1").translate(_BYTE_TABLE)


class GPT2Tokenizer(PreTrainedTokenizer):
    """GPT-2's byte-level BPE tokenizer.

    Args:
        vocab_file: ``vocab.json`` or OpenAI's ``encoder.json`` (token -> id), or a mapping.
        merges_file: ``merges.txt`` or OpenAI's ``vocab.bpe`` (first line is a header), or
            an iterable of merge pairs in rank order.
        errors: how ``decode`` treats invalid UTF-8 (as ``bytes.decode``).
        unk_token, bos_token, eos_token: special tokens (all ``<|endoftext|>`` by default).
        **kwargs: ``max_len`` / ``model_max_length`` and other special tokens
            (see :class:`PreTrainedTokenizer`).

    Example:
        >>> tok = GPT2Tokenizer("gpt2/vocab.json", "gpt2/merges.txt")  # doctest: +SKIP
        >>> tok.tokenize("Hello world")  # doctest: +SKIP
        ['Hello', 'Ġworld']
    """

    vocab_files_names = VOCAB_FILES_NAMES
    model_input_names = ("input_ids", "attention_mask")
    strip_around_added_tokens = False  # byte-level BPE encodes the spaces

    def __init__(
        self,
        vocab_file: str | os.PathLike[str] | Mapping[str, int],
        merges_file: str | os.PathLike[str] | Iterable[tuple[str, str]],
        errors: str = "replace",
        unk_token: str | None = "<|endoftext|>",
        bos_token: str | None = "<|endoftext|>",
        eos_token: str | None = "<|endoftext|>",
        **kwargs: Any,
    ) -> None:
        super().__init__(unk_token=unk_token, bos_token=bos_token, eos_token=eos_token, **kwargs)
        if not isinstance(errors, str):
            raise TypeError(f"errors must be a str; got {type(errors).__name__}")
        self.errors = errors
        self.encoder = read_vocab(vocab_file)
        self.decoder = {index: token for token, index in self.encoder.items()}
        self.byte_encoder = bytes_to_unicode()
        self.byte_decoder = {c: b for b, c in self.byte_encoder.items()}
        self.bpe = BPE(read_merges(merges_file), prepare=byte_symbols)

    @property
    def vocab_size(self) -> int:
        """Number of entries of vocab.json."""
        return len(self.encoder)

    def get_vocab(self) -> dict[str, int]:
        """Token -> id, added tokens included."""
        return {**self.encoder, **self.added_tokens_encoder}

    def _tokenize(self, text: str) -> list[str]:
        return self.bpe.pieces(PRE_SPLIT.findall(text))

    def _tokens_to_ids(self, tokens: Iterable[str]) -> list[int]:
        if not self.added_tokens_encoder:
            try:
                return list(map(self.encoder.__getitem__, tokens))
            except KeyError:
                pass  # an unknown token: the general path maps it to unk
        return super()._tokens_to_ids(tokens)

    def _convert_token_to_id(self, token: str) -> int | None:
        return self.encoder.get(token)

    def _convert_id_to_token(self, index: int) -> str | None:
        return self.decoder.get(index)

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        """Join tokens, map their characters back to bytes and decode with ``errors``.

        Added tokens that are not in the vocabulary contribute their own text.
        """
        out = bytearray()
        to_byte = self.byte_decoder
        added = self.added_tokens_encoder
        for token in tokens:
            if token in added and token not in self.encoder:
                out += token.encode("utf-8")
                continue
            for char in token:
                byte = to_byte.get(char)
                out += char.encode("utf-8") if byte is None else bytes((byte,))
        return out.decode("utf-8", errors=self.errors)

    def _vocabulary_files(self) -> dict[str, str | bytes]:
        return {
            VOCAB_FILES_NAMES["vocab_file"]: json.dumps(self.encoder, ensure_ascii=False),
            VOCAB_FILES_NAMES["merges_file"]: merges_text(self.bpe.merges),
        }

    def _init_config(self) -> dict[str, Any]:
        return {"errors": self.errors}
