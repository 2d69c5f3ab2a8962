"""``SequenceSummary``: one vector per sequence (first, last, mean or a chosen token),
then an optional projection and activation, as the seed's multiple-choice and
classification heads use it (GPT, GPT-2, XLNet, XLM).

Params: ``{"summary": {"weight", "bias"}}`` when projecting, ``{}`` otherwise.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..random import Key, split_for_dropout
from ..tree import Params
from . import activations, dropout, linear

__all__ = ["init", "apply", "SUMMARY_TYPES"]

SUMMARY_TYPES = ("last", "first", "mean", "cls_index", "token_ids")
"""The accepted ``summary_type`` values (pytorch-transformers 1.0's, plus ``token_ids``)."""


def init(
    key: Key,
    hidden: int,
    num_labels: int,
    *,
    use_proj: bool = True,
    proj_to_labels: bool = True,
    std: float = 0.02,
) -> Params:
    """A Linear(hidden -> num_labels, or hidden) named ``summary``, when ``use_proj``."""
    if not use_proj:
        return {}
    out = num_labels if proj_to_labels and num_labels > 0 else hidden
    return {"summary": linear.init(key, hidden, out, std=std)}


def apply(
    params: Params,
    hidden_states: Tensor,
    *,
    summary_type: str = "last",
    cls_index: Tensor | None = None,
    activation: str | None = None,
    first_dropout: float = 0.0,
    last_dropout: float = 0.0,
    key: Key | None = None,
    train: bool = False,
) -> Tensor:
    """hidden_states (..., s, d) -> (..., d_out).

    ``summary_type``: ``last``/``first`` token, ``mean`` over tokens, or
    ``cls_index`` (1.0: ``token_ids``): the token at ``cls_index`` (...,), default
    the last one.
    """
    if summary_type == "last":
        out = hidden_states[..., -1, :]
    elif summary_type == "first":
        out = hidden_states[..., 0, :]
    elif summary_type == "mean":
        out = hidden_states.mean(dim=-2)
    elif summary_type in ("cls_index", "token_ids"):
        if cls_index is None:
            out = hidden_states[..., -1, :]
        else:
            index = cls_index[..., None, None].expand(*cls_index.shape, 1, hidden_states.shape[-1])
            out = hidden_states.gather(-2, index.to(torch.long)).squeeze(-2)
    else:
        raise ValueError(f"summary_type must be one of {SUMMARY_TYPES}, got {summary_type!r}")
    k1, k2 = split_for_dropout(key, 2, train)
    out = dropout.apply(out, first_dropout, key=k1, train=train)
    if "summary" in params:
        out = linear.apply(params["summary"], out)
    if activation == "tanh":
        out = torch.tanh(out)
    elif activation:
        out = activations.get(activation)(out)
    return dropout.apply(out, last_dropout, key=k2, train=train)
