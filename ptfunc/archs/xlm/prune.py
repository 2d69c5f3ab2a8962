"""Head pruning and masking for XLM.

Pruning removes the heads' rows of ``q_lin``, ``k_lin`` and ``v_lin`` (weights and
biases) and the same columns of ``out_lin`` (its bias is kept); the config records
``pruned_heads``. Unpruning puts them back, zero. See :mod:`ptfunc.archs.prune`.
"""

from __future__ import annotations

from ...tree import Params
from ..prune import (
    FeatureEdit,
    HeadPruning,
    PrunableHeads,
    edit_cols,
    edit_rows,
    zero_heads,
)

__all__ = ["prune_heads", "mask_heads", "prune_init", "ParamTransforms"]


def _width(base: Params, layer: int) -> int:
    return base["attentions"][layer]["q_lin"]["weight"].shape[0]


def _edit_layer(base: Params, layer: int, edit: FeatureEdit) -> Params:
    att = list(base["attentions"])
    p = att[layer]
    att[layer] = {
        **p,
        **{name: edit_rows(p[name], edit) for name in ("q_lin", "k_lin", "v_lin")},
        "out_lin": edit_cols(p["out_lin"], edit),
    }
    return {**base, "attentions": att}


def _mask_layer(base: Params, layer: int, heads: list[int], head_dim: int) -> Params:
    """Zero the rows (weight and bias) of ``heads`` in ``v_lin``."""
    att = list(base["attentions"])
    v = att[layer]["v_lin"]
    new_v = {
        **v,
        "weight": zero_heads(v["weight"], heads, head_dim, dim=0),
        "bias": zero_heads(v["bias"], heads, head_dim, dim=0),
    }
    att[layer] = {**att[layer], "v_lin": new_v}
    return {**base, "attentions": att}


HEAD_PRUNING = HeadPruning(width=_width, edit_layer=_edit_layer, mask_layer=_mask_layer)
prune_heads = HEAD_PRUNING.prune_heads
mask_heads = HEAD_PRUNING.mask_heads
prune_init = HEAD_PRUNING.prune_init


class ParamTransforms(PrunableHeads):
    """Mixin giving XLM models ``prune_heads`` and ``unprune_heads`` methods."""

    head_pruning = HEAD_PRUNING
