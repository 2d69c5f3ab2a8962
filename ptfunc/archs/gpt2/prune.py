"""Head pruning and masking for GPT-2 (and OpenAI GPT, which shares the ``h[i].attn``
layout).

Pruning removes the heads' columns from each of the query, key and value blocks of
``c_attn`` and the same rows of ``c_proj``; the config records ``pruned_heads``.
Unpruning puts them back, zero. See :mod:`ptfunc.archs.prune`.
"""

from __future__ import annotations

from ...tree import Params
from ..prune import (
    FeatureEdit,
    HeadPruning,
    PrunableHeads,
    edit_conv1d_attention,
    zero_heads,
)

__all__ = ["prune_heads", "mask_heads", "prune_init", "ParamTransforms"]


def _width(base: Params, layer: int) -> int:
    return base["h"][layer]["attn"]["c_proj"]["weight"].shape[0]


def _edit_layer(base: Params, layer: int, edit: FeatureEdit) -> Params:
    blocks = list(base["h"])
    blocks[layer] = {**blocks[layer], "attn": edit_conv1d_attention(blocks[layer]["attn"], edit)}
    return {**base, "h": blocks}


def _mask_layer(base: Params, layer: int, heads: list[int], head_dim: int) -> Params:
    """Zero the value columns (weight and bias) of ``heads`` in ``c_attn``."""
    blocks = list(base["h"])
    attn = blocks[layer]["attn"]
    w = _width(base, layer)
    c_attn = attn["c_attn"]
    new = {
        **c_attn,
        "weight": zero_heads(c_attn["weight"], heads, head_dim, dim=1, offset=2 * w),
        "bias": zero_heads(c_attn["bias"], heads, head_dim, dim=0, offset=2 * w),
    }
    blocks[layer] = {**blocks[layer], "attn": {**attn, "c_attn": new}}
    return {**base, "h": blocks}


HEAD_PRUNING = HeadPruning(width=_width, edit_layer=_edit_layer, mask_layer=_mask_layer)
prune_heads = HEAD_PRUNING.prune_heads
mask_heads = HEAD_PRUNING.mask_heads
prune_init = HEAD_PRUNING.prune_init


class ParamTransforms(PrunableHeads):
    """Mixin giving GPT/GPT-2 models ``prune_heads`` and ``unprune_heads`` methods."""

    head_pruning = HEAD_PRUNING
