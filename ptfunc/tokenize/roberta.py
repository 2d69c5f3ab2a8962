"""RoBERTa's tokenizer: GPT-2's byte-level BPE with ``<s>``/``</s>`` templates.

The BPE is :class:`~ptfunc.tokenize.gpt2.GPT2Tokenizer`'s; RoBERTa adds its special
tokens (``<s>``, ``</s>``, ``<pad>``, ``<unk>``, ``<mask>``), the input templates
``<s> A </s>`` and ``<s> A </s></s> B </s>`` (no token types: all zeros), and
``add_prefix_space``: a space is put before each piece of text that does not start
with one (each text, and each stretch between special tokens, as transformers'
byte-level pre-tokenizer does), so that the first word is encoded as it would be
inside a sentence.

Differences from transformers' ``RobertaTokenizer``: ``<mask>`` does not swallow the
space before it (transformers' ``lstrip=True``); byte-offset options are not supported.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from .gpt2 import GPT2Tokenizer

__all__ = ["RobertaTokenizer"]


class RobertaTokenizer(GPT2Tokenizer):
    """RoBERTa's byte-level BPE tokenizer.

    Args:
        vocab_file, merges_file, errors: as :class:`~ptfunc.tokenize.gpt2.GPT2Tokenizer`.
        bos_token, eos_token, sep_token, cls_token, unk_token, pad_token, mask_token: the
            special tokens (``<s>``, ``</s>``, ``</s>``, ``<s>``, ``<unk>``, ``<pad>``,
            ``<mask>`` by default).
        add_prefix_space: put a space before text that does not start with one.
        **kwargs: ``max_len`` / ``model_max_length`` (see :class:`PreTrainedTokenizer`).

    Example:
        >>> tok = RobertaTokenizer("roberta/vocab.json", "roberta/merges.txt")  # doctest: +SKIP
        >>> tok.convert_ids_to_tokens(tok.encode("Hello world", "Hi"))  # doctest: +SKIP
        ['<s>', 'Hello', 'Ġworld', '</s>', '</s>', 'Hi', '</s>']
    """

    def __init__(
        self,
        vocab_file: str | os.PathLike[str] | Mapping[str, int],
        merges_file: str | os.PathLike[str] | Iterable[tuple[str, str]],
        errors: str = "replace",
        bos_token: str | None = "<s>",
        eos_token: str | None = "</s>",
        sep_token: str | None = "</s>",
        cls_token: str | None = "<s>",
        unk_token: str | None = "<unk>",
        pad_token: str | None = "<pad>",
        mask_token: str | None = "<mask>",
        add_prefix_space: bool = False,
        **kwargs: Any,
    ) -> None:
        if not isinstance(add_prefix_space, bool):
            raise TypeError(f"add_prefix_space must be a bool; got {add_prefix_space!r}")
        super().__init__(
            vocab_file,
            merges_file,
            errors=errors,
            unk_token=unk_token,
            bos_token=bos_token,
            eos_token=eos_token,
            sep_token=sep_token,
            cls_token=cls_token,
            pad_token=pad_token,
            mask_token=mask_token,
            **kwargs,
        )
        self.add_prefix_space = add_prefix_space

    def _tokenize(self, text: str) -> list[str]:
        if self.add_prefix_space and not text.startswith(" "):
            text = " " + text
        return super()._tokenize(text)

    def build_inputs_with_special_tokens(
        self, ids_a: list[int], ids_b: list[int] | None = None
    ) -> list[int]:
        """``<s> A </s>`` or ``<s> A </s></s> B </s>``."""
        cls, sep = self.cls_token_id, self.sep_token_id
        if cls is None or sep is None:
            raise ValueError("RoBERTa inputs need a cls_token and a sep_token; one is not set")
        second = [] if ids_b is None else [sep, *ids_b, sep]
        return [cls, *ids_a, sep, *second]

    def create_token_type_ids(self, ids_a: list[int], ids_b: list[int] | None = None) -> list[int]:
        """All zeros: RoBERTa has no segment embeddings to tell A from B."""
        return [0] * len(self.build_inputs_with_special_tokens(ids_a, ids_b))

    create_token_type_ids_from_sequences = create_token_type_ids

    def get_special_tokens_mask(
        self,
        ids_a: list[int],
        ids_b: list[int] | None = None,
        already_has_special_tokens: bool = False,
    ) -> list[int]:
        """1 at the positions of ``<s>`` and ``</s>`` in the built input, else 0."""
        if already_has_special_tokens:
            return super().get_special_tokens_mask(ids_a, ids_b, True)
        mask = [1] + [0] * len(ids_a) + [1]
        return mask if ids_b is None else mask + [1] + [0] * len(ids_b) + [1]

    def _init_config(self) -> dict[str, Any]:
        return {**super()._init_config(), "add_prefix_space": self.add_prefix_space}
