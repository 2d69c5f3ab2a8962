"""ALBERT's SentencePiece tokenizer: XLNet's machinery with ALBERT's special tokens.

The text goes through :class:`~ptfunc.tokenize.xlnet.XLNetTokenizer`'s preparation
(``remove_space``, LaTeX quotes to ``"``, accents removed unless ``keep_accents``,
lower-cased by default) and the ``sentencepiece`` library. Model inputs are BERT's:
``[CLS] A [SEP]`` or ``[CLS] A [SEP] B [SEP]``, token types 0 for ``[CLS] A [SEP]`` and 1
for ``B [SEP]``; batches are padded on the right.

Ids equal those of today's ``transformers`` ``AlbertTokenizer`` built from the same
``spiece.model`` (its vocabulary and normalisation map), which keeps pieces such as
``"▁14,"`` whole. ``split_digit_commas=True`` gives the original ALBERT code's ids (and
transformers 4's slow tokenizer's) instead: a piece ending in a comma after a digit is
re-encoded and the comma kept apart, as XLNet does.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from .base import PreTrainedTokenizer
from .bert import BertTokenizer
from .xlnet import XLNetTokenizer

__all__ = ["AlbertTokenizer"]


class AlbertTokenizer(XLNetTokenizer):
    """ALBERT's SentencePiece tokenizer (see the module docstring).

    Args:
        vocab_file: path of the sentencepiece model (``spiece.model``).
        do_lower_case: lower-case the text (True, as every released ALBERT).
        remove_space: collapse whitespace runs and strip the ends.
        keep_accents: keep accents (by default they are removed).
        bos_token, eos_token, unk_token, sep_token, pad_token, cls_token, mask_token: the
            special tokens (ALBERT's by default).
        additional_special_tokens: more special tokens, kept whole by the tokenizer.
        split_digit_commas: split ``"▁14,"``-style pieces as the original ALBERT code
            (False: keep them whole, as transformers 5).
        **kwargs: sampling options and ``max_len`` / ``model_max_length``, as
            :class:`~ptfunc.tokenize.xlnet.XLNetTokenizer`.

    Example:
        >>> tok = AlbertTokenizer("albert/spiece.model")  # doctest: +SKIP
        >>> tok.tokenize("This is a test")  # doctest: +SKIP
        ['▁this', '▁is', '▁a', '▁test']
        >>> tok.encode("this is", "a test", add_special_tokens=True)  # doctest: +SKIP
        [2, 48, 25, 3, 21, 1289, 3]
    """

    padding_side = "right"

    def __init__(
        self,
        vocab_file: str | os.PathLike[str],
        do_lower_case: bool = True,
        remove_space: bool = True,
        keep_accents: bool = False,
        bos_token: str | None = "[CLS]",
        eos_token: str | None = "[SEP]",
        unk_token: str | None = "<unk>",
        sep_token: str | None = "[SEP]",
        pad_token: str | None = "<pad>",
        cls_token: str | None = "[CLS]",
        mask_token: str | None = "[MASK]",
        additional_special_tokens: Sequence[str] | None = None,
        split_digit_commas: bool = False,
        **kwargs: Any,
    ) -> None:
        if not isinstance(split_digit_commas, bool):
            raise TypeError(f"split_digit_commas must be a bool; got {split_digit_commas!r}")
        self.splits_digit_commas = split_digit_commas
        super().__init__(
            vocab_file,
            do_lower_case=do_lower_case,
            remove_space=remove_space,
            keep_accents=keep_accents,
            bos_token=bos_token,
            eos_token=eos_token,
            unk_token=unk_token,
            sep_token=sep_token,
            pad_token=pad_token,
            cls_token=cls_token,
            mask_token=mask_token,
            additional_special_tokens=additional_special_tokens,
            **kwargs,
        )

    def _init_config(self) -> dict[str, Any]:
        config = super()._init_config()
        if self.splits_digit_commas:  # only ptfunc reads it; transformers' files lack it
            config["split_digit_commas"] = True
        return config

    # BERT's layout of the special tokens: [CLS] A [SEP] (B [SEP]).
    _special_id = BertTokenizer._special_id
    build_inputs_with_special_tokens = BertTokenizer.build_inputs_with_special_tokens
    create_token_type_ids = BertTokenizer.create_token_type_ids
    create_token_type_ids_from_sequences = BertTokenizer.create_token_type_ids
    num_special_tokens_to_add = BertTokenizer.num_special_tokens_to_add
    # the base's mask, read off build_inputs_with_special_tokens (not XLNet's layout)
    get_special_tokens_mask = PreTrainedTokenizer.get_special_tokens_mask
