"""Pure param transforms: prune and mask attention heads (resizing lives in ``archs.resize``).

Each returns new params (pruning also a new model: its config records
``pruned_heads``, so a saved model reloads with the right shapes; ``unprune_heads``
gives the full-size equivalent, the pruned heads zero). Input params are
never modified. The index bookkeeping is shared with the other architectures
(:mod:`ptfunc.archs.prune`); this module knows BERT's layout.
"""

from __future__ import annotations

from collections.abc import Iterable

from ...tree import Params
from ..prune import PrunableHeads, kept_index, linear_head_pruning

__all__ = ["prune_heads", "prune_layer_heads", "mask_heads", "ParamTransforms"]

_SELF = ("attention", "self")
HEAD_PRUNING = linear_head_pruning(
    layers=("encoder", "layer"),
    rows=tuple((*_SELF, n) for n in ("query", "key", "value")),
    cols=("attention", "output", "dense"),
    value=(*_SELF, "value"),
)
"""BERT's head pruning and masking: a head's rows of ``attention.self.{query,key,value}``
and its columns of ``attention.output.dense``."""
prune_heads = HEAD_PRUNING.prune_heads
mask_heads = HEAD_PRUNING.mask_heads


def prune_layer_heads(
    layer: Params, remove: Iterable[int], already: Iterable[int], head_dim: int
) -> Params:
    """Remove heads (original indices ``remove``) from one block's params.

    ``already`` lists original indices removed earlier, so indices keep
    referring to the unpruned model.
    """
    already = set(already)
    one = {"encoder": {"layer": [layer]}}
    n_heads = HEAD_PRUNING.width(one, 0) // head_dim + len(already)
    index = kept_index(n_heads, head_dim, remove, already)
    return (
        layer if index is None else HEAD_PRUNING.prune_layer(one, 0, index)["encoder"]["layer"][0]
    )


class ParamTransforms(PrunableHeads):
    """Mixin giving BERT models ``prune_heads`` and ``unprune_heads`` methods."""

    head_pruning = HEAD_PRUNING
