"""Head pruning and masking for XLM.

Pruning removes the heads' rows of ``q_lin``, ``k_lin`` and ``v_lin`` (weights and
biases) and the same columns of ``out_lin`` (its bias is kept); the config records
``pruned_heads``. Unpruning puts them back, zero. See :mod:`ptfunc.archs.prune`.
"""

from __future__ import annotations

from ..prune import PrunableHeads, linear_head_pruning

__all__ = ["prune_heads", "mask_heads", "prune_init", "ParamTransforms"]

_QKV = (("q_lin",), ("k_lin",), ("v_lin",))
HEAD_PRUNING = linear_head_pruning(
    layers=("attentions",), rows=_QKV, cols=("out_lin",), value=("v_lin",)
)
prune_heads = HEAD_PRUNING.prune_heads
mask_heads = HEAD_PRUNING.mask_heads
prune_init = HEAD_PRUNING.prune_init


class ParamTransforms(PrunableHeads):
    """Mixin giving XLM models ``prune_heads`` and ``unprune_heads`` methods."""

    head_pruning = HEAD_PRUNING
