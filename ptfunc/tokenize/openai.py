"""OpenAI GPT's tokenizer: BERT's basic tokenizer (lower-cased), then BPE with ``</w>``.

pytorch-transformers 1.0 used ftfy + spaCy when both were installed and otherwise fell
back to ``BasicTokenizer(do_lower_case=True)``; today's ``transformers`` always uses that
fallback (a ``BertNormalizer(lowercase=True)`` and ``BertPreTokenizer``), and so does this
port: clean the text, space CJK ideographs, lower-case, strip accents, split on
whitespace and punctuation. Each word then goes through BPE, its last character marked
with ``</w>``; pieces missing from the vocabulary map to ``<unk>``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

from ._bpe import BPE, END_OF_WORD, end_of_word_symbols, merges_text, read_merges, read_vocab
from .base import PreTrainedTokenizer
from .bert import BasicTokenizer

__all__ = ["OpenAIGPTTokenizer"]

VOCAB_FILES_NAMES = {"vocab_file": "vocab.json", "merges_file": "merges.txt"}


class OpenAIGPTTokenizer(PreTrainedTokenizer):
    """OpenAI GPT's BPE tokenizer (lower-cased, ``</w>`` word ends).

    Args:
        vocab_file: ``vocab.json`` or OpenAI's ``encoder_bpe_40000.json``, or a mapping.
        merges_file: ``merges.txt`` or OpenAI's ``vocab_40000.bpe`` (first line is a
            header), or an iterable of merge pairs in rank order.
        unk_token: the unknown token.
        **kwargs: ``max_len`` / ``model_max_length`` and other special tokens
            (see :class:`PreTrainedTokenizer`).

    Example:
        >>> tok = OpenAIGPTTokenizer("vocab.json", "merges.txt")  # doctest: +SKIP
        >>> tok.tokenize("Hello, World!")  # doctest: +SKIP
        ['hello</w>', ',</w>', 'world</w>', '!</w>']
    """

    vocab_files_names = VOCAB_FILES_NAMES
    model_input_names = ("input_ids", "attention_mask")

    def __init__(
        self,
        vocab_file: str | os.PathLike[str] | Mapping[str, int],
        merges_file: str | os.PathLike[str] | Iterable[tuple[str, str]],
        unk_token: str | None = "<unk>",
        **kwargs: Any,
    ) -> None:
        super().__init__(unk_token=unk_token, **kwargs)
        self.encoder = read_vocab(vocab_file)
        self.decoder = {index: token for token, index in self.encoder.items()}
        self.bpe = BPE(read_merges(merges_file), prepare=end_of_word_symbols)
        self.nlp = BasicTokenizer(do_lower_case=True)

    @property
    def do_lower_case(self) -> bool:
        """Always True: the text is lower-cased."""
        return True

    @property
    def vocab_size(self) -> int:
        """Number of entries of vocab.json."""
        return len(self.encoder)

    def get_vocab(self) -> dict[str, int]:
        """Token -> id, added tokens included."""
        return {**self.encoder, **self.added_tokens_encoder}

    def _tokenize(self, text: str) -> list[str]:
        return self.bpe.pieces(self.nlp.tokenize(text))

    def _convert_token_to_id(self, token: str) -> int | None:
        return self.encoder.get(token)

    def _convert_id_to_token(self, index: int) -> str | None:
        return self.decoder.get(index)

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        """Join tokens, turning each ``</w>`` into a space."""
        return "".join(tokens).replace(END_OF_WORD, " ").strip()

    def _vocabulary_files(self) -> dict[str, str | bytes]:
        return {
            VOCAB_FILES_NAMES["vocab_file"]: json.dumps(self.encoder, ensure_ascii=False),
            VOCAB_FILES_NAMES["merges_file"]: merges_text(self.bpe.merges),
        }

    def _init_config(self) -> dict[str, Any]:
        return {}
