"""DeBERTa-v2/v3's SentencePiece tokenizer.

The ``sentencepiece`` library cuts the text (lower-cased with ``do_lower_case``) into
pieces, with nothing of XLNet's preparation (no quote or accent rewriting, no digit-comma
rule): the model's own normaliser does the rest. Model inputs are ``[CLS] A [SEP]`` and
``[CLS] A [SEP] B [SEP]``, token types 0 up to the first ``[SEP]`` and 1 after it; batches
are padded on the right.

Special tokens the sentencepiece model lacks are appended after its pieces in
transformers 5's order (``[CLS]``, ``[SEP]``, ``[UNK]``, ``[PAD]``, ``[MASK]``); the
model's control pieces (``<s>``, ``</s>``...) are additional special tokens, never split,
as transformers 5's conversion of ``spm.model`` makes them. On DeBERTa-v3's ``spm.model``
this gives the Hub's ids (``[MASK]`` = 128000).

Ids equal transformers 5's ``DebertaV2Tokenizer`` converted from the same ``spm.model``
on real text, with one documented difference: transformers 5's Unigram model also
matches the model's unknown piece as text (a literal ``<unk>`` in wikitext becomes one
unknown id), which sentencepiece never does (it spells ``<``, ``un``, ``k``, ``>``); we
are sentencepiece. A string outside the vocabulary converts to the model's unknown piece
(``convert_tokens_to_ids``), where transformers 5 gives ``unk_token``'s id: the two differ
only for models whose unknown piece is not ``[UNK]`` (the test models' ``<unk>``).
``split_by_punct=True`` is not implemented (refused).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from .base import PreTrainedTokenizer
from .bert import BertTokenizer
from .xlnet import XLNetTokenizer

__all__ = ["DebertaV2Tokenizer", "VOCAB_FILES_NAMES"]

VOCAB_FILES_NAMES = {"vocab_file": "spm.model"}
"""The vocabulary file of a saved tokenizer, by constructor argument."""

# transformers 5 adds the special tokens missing from the model in this order
_SPECIAL_ORDER = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token")


class DebertaV2Tokenizer(XLNetTokenizer):
    """DeBERTa-v2/v3's tokenizer over a sentencepiece model (``spm.model``).

    The sentencepiece machinery (sampling, added tokens, files) is
    :class:`~ptfunc.tokenize.xlnet.XLNetTokenizer`'s, without XLNet's text preparation,
    special-token template or left padding.

    Args:
        vocab_file: path of the sentencepiece model.
        do_lower_case: lower-case the text first.
        split_by_punct: must be False (transformers' punctuation pre-split is not
            implemented).
        bos_token, eos_token, unk_token, sep_token, pad_token, cls_token, mask_token: the
            special tokens (DeBERTa's by default).
        additional_special_tokens: default: the model's control pieces.
        **kwargs: ``enable_sampling``, ``nbest_size``, ``alpha``, ``max_len`` (see
            :class:`~ptfunc.tokenize.xlnet.XLNetTokenizer`).

    Example:
        >>> tok = DebertaV2Tokenizer("deberta-v3-base/spm.model")  # doctest: +SKIP
        >>> tok("Hello", "world")["input_ids"]  # doctest: +SKIP
        [1, 31414, 2, 1006, 2]
    """

    vocab_files_names = VOCAB_FILES_NAMES
    padding_side = "right"
    splits_digit_commas = False  # ids straight from the model, as transformers 5

    def __init__(
        self,
        vocab_file: str | os.PathLike[str],
        do_lower_case: bool = False,
        split_by_punct: bool = False,
        bos_token: str | None = "[CLS]",
        eos_token: str | None = "[SEP]",
        unk_token: str | None = "[UNK]",
        sep_token: str | None = "[SEP]",
        pad_token: str | None = "[PAD]",
        cls_token: str | None = "[CLS]",
        mask_token: str | None = "[MASK]",
        additional_special_tokens: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        if split_by_punct is not False:
            raise ValueError(
                "DebertaV2Tokenizer(split_by_punct=True) is not implemented in ptfunc "
                "(DeBERTa-v3's models use split_by_punct=False)"
            )
        for name in ("remove_space", "keep_accents"):
            if name in kwargs:
                raise TypeError(f"DebertaV2Tokenizer got an unexpected keyword argument {name!r}")
        specials = {
            "bos_token": bos_token,
            "eos_token": eos_token,
            "unk_token": unk_token,
            "sep_token": sep_token,
            "pad_token": pad_token,
            "cls_token": cls_token,
            "mask_token": mask_token,
        }
        super().__init__(
            vocab_file,
            do_lower_case=do_lower_case,
            remove_space=False,
            keep_accents=True,
            additional_special_tokens=(),
            **specials,
            **kwargs,
        )
        self.split_by_punct = False
        if additional_special_tokens is None:
            sp = self.sp_model
            named = set(specials.values())
            additional_special_tokens = [
                p for i, p in enumerate(self._pieces) if sp.is_control(i) and p not in named
            ]
        self.additional_special_tokens = additional_special_tokens
        missing = [specials[n] for n in (*_SPECIAL_ORDER, "mask_token") if specials[n]]
        self.add_tokens([t for t in dict.fromkeys(missing) if t not in self._piece_ids])

    def _unknown_token_id(self, token: str) -> int:
        """A piece outside the vocabulary (an unknown character sentencepiece spells out) is
        the model's unknown piece, as in sentencepiece's and transformers 5's ids; on
        DeBERTa-v3's model that is ``[UNK]``."""
        return self.sp_model.unk_id()

    def preprocess_text(self, inputs: str) -> str:
        """Lower-case with ``do_lower_case``; sentencepiece's normaliser does the rest."""
        return inputs.lower() if self.do_lower_case else inputs

    # ------------------------------------------------------------------ special tokens

    # BERT's template: [CLS] A [SEP] B [SEP], token types 0 then 1
    _special_id = BertTokenizer._special_id
    build_inputs_with_special_tokens = BertTokenizer.build_inputs_with_special_tokens
    create_token_type_ids = BertTokenizer.create_token_type_ids
    create_token_type_ids_from_sequences = create_token_type_ids
    # the base's mask, read off build_inputs_with_special_tokens (not XLNet's layout)
    get_special_tokens_mask = PreTrainedTokenizer.get_special_tokens_mask

    # ------------------------------------------------------------------ files

    def _vocabulary_files(self) -> dict[str, str | bytes]:
        return {VOCAB_FILES_NAMES["vocab_file"]: self._model}

    def _init_config(self) -> dict[str, Any]:
        return {
            "do_lower_case": self.do_lower_case,
            "split_by_punct": False,
            "enable_sampling": self.enable_sampling,
            "nbest_size": self.nbest_size,
            "alpha": self.alpha,
        }
