"""RoBERTa's base model: BERT's encoder with padding-aware positions.

RoBERTa (Liu et al., 2019) keeps BERT's layers and parameter names under ``roberta``;
only the positions differ: padding tokens sit at position ``pad_token_id`` and the
others count from ``pad_token_id + 1`` (fairseq's ``make_positions``), so left and
right padding give every real token the same position embedding.

Params tree: as :class:`~ptfunc.archs.bert.BertModel`'s.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ...layers import embedding
from ...random import Key
from ...tree import Params
from ..bert.model import BertModel
from .config import RobertaConfig

__all__ = ["RobertaModel", "position_ids_from_input_ids", "prepare"]


def position_ids_from_input_ids(input_ids: Tensor, padding_idx: int) -> Tensor:
    """input_ids (b, s) -> position ids (b, s) int64: ``padding_idx`` at padding tokens,
    ``padding_idx + 1, padding_idx + 2, ...`` at the others, in order.

    transformers' ``create_position_ids_from_input_ids``.

    >>> position_ids_from_input_ids(torch.tensor([[1, 1, 7, 8], [7, 8, 9, 1]]), 1).tolist()
    [[1, 1, 2, 3], [2, 3, 4, 1]]
    """
    mask = (input_ids != padding_idx).long()
    return torch.cumsum(mask, dim=1) * mask + padding_idx


def prepare(
    c: RobertaConfig, params: Params, input_ids: Tensor, options: dict[str, Any]
) -> tuple[Params, dict[str, Any]]:
    """What BERT's encoder needs to run RoBERTa: ``(params, options)``.

    ``options`` gets ``position_ids`` from :func:`position_ids_from_input_ids` when not
    given. The position table passes through ``embedding.apply(..., padding_idx=pad)``
    (the same values), so that its ``pad_token_id`` row gets no gradient, as in
    transformers' ``nn.Embedding(padding_idx=pad)``.
    """
    if options.get("position_ids") is None:
        positions = position_ids_from_input_ids(input_ids, c.pad_token_id)
        options = {**options, "position_ids": positions}
    emb = params["embeddings"]
    table = emb["position_embeddings"]["weight"]
    rows = torch.arange(table.shape[0], device=table.device)
    table = embedding.apply({"weight": table}, rows, padding_idx=c.pad_token_id)
    emb = {**emb, "position_embeddings": {**emb["position_embeddings"], "weight": table}}
    return {**params, "embeddings": emb}, options


def zero_padding_rows(params: Params, c: RobertaConfig) -> Params:
    """The base params with the ``pad_token_id`` rows of the word and position tables zeroed,
    as ``nn.Embedding(padding_idx=...)`` initialises them."""
    emb = dict(params["embeddings"])
    for name in ("word_embeddings", "position_embeddings"):
        weight = emb[name]["weight"]
        keep = torch.arange(weight.shape[0]) != c.pad_token_id
        emb[name] = {**emb[name], "weight": weight * keep[:, None].to(weight.dtype)}
    return {**params, "embeddings": emb}


class RobertaModel(BertModel):
    """The bare RoBERTa encoder with pooler (``RobertaModel`` of transformers).

    ``apply`` takes :class:`~ptfunc.archs.bert.BertModel`'s arguments and returns its
    ``BaseModelOutputWithPooling``; without ``position_ids`` the positions follow the
    padding of ``input_ids`` (:func:`position_ids_from_input_ids`).
    """

    config_class = RobertaConfig
    base_model_prefix = "roberta"
    ignored_checkpoint_keys = ("embeddings.position_ids", "embeddings.token_type_ids")

    def init(self, key: Key) -> Params:
        return zero_padding_rows(super().init(key), self.config)

    def apply(self, params: Params, input_ids: Tensor, **options: Any) -> Any:
        params, options = prepare(self.config, params, input_ids, options)
        return super().apply(params, input_ids, **options)
