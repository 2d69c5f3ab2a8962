"""Pure param transforms: prune and mask attention heads (resizing lives in ``archs.resize``).

Each returns new params (pruning also a new model: its config records
``pruned_heads``, so a saved model reloads with the right shapes). Input params are
never modified. The index bookkeeping is shared with the other architectures
(:mod:`ptfunc.archs.prune`); this module knows BERT's layout.
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import Tensor

from ...tree import Params
from ..prune import (
    HeadPruning,
    PrunableHeads,
    kept_index,
    take_cols,
    take_rows,
    zero_heads,
)

__all__ = ["prune_heads", "prune_layer_heads", "mask_heads", "ParamTransforms"]


def _prune_block(layer: Params, index: Tensor) -> Params:
    """Keep features ``index`` of query/key/value outputs and of the output dense's inputs."""
    attn = layer["attention"]
    new_self = {name: take_rows(p, index) for name, p in attn["self"].items()}
    dense = take_cols(attn["output"]["dense"], index)
    return {
        **layer,
        "attention": {"self": new_self, "output": {**attn["output"], "dense": dense}},
    }


def prune_layer_heads(
    layer: Params, remove: Iterable[int], already: Iterable[int], head_dim: int
) -> Params:
    """Remove heads (original indices ``remove``) from one block's params.

    ``already`` lists original indices removed earlier, so indices keep
    referring to the unpruned model.
    """
    already = set(already)
    n_heads = _block_width(layer) // head_dim + len(already)
    index = kept_index(n_heads, head_dim, remove, already)
    return layer if index is None else _prune_block(layer, index)


def _block_width(layer: Params) -> int:
    return layer["attention"]["self"]["query"]["weight"].shape[0]


def _width(base: Params, layer: int) -> int:
    return _block_width(base["encoder"]["layer"][layer])


def _prune_layer(base: Params, layer: int, index: Tensor) -> Params:
    layers = list(base["encoder"]["layer"])
    layers[layer] = _prune_block(layers[layer], index)
    return {**base, "encoder": {**base["encoder"], "layer": layers}}


def _mask_layer(base: Params, layer: int, heads: list[int], head_dim: int) -> Params:
    """Zero the value projection rows (weight and bias) of ``heads``."""
    layers = list(base["encoder"]["layer"])
    attn = layers[layer]["attention"]
    value = attn["self"]["value"]
    new_value = {
        **value,
        "weight": zero_heads(value["weight"], heads, head_dim, dim=0),
        "bias": zero_heads(value["bias"], heads, head_dim, dim=0),
    }
    layers[layer] = {
        **layers[layer],
        "attention": {**attn, "self": {**attn["self"], "value": new_value}},
    }
    return {**base, "encoder": {**base["encoder"], "layer": layers}}


HEAD_PRUNING = HeadPruning(width=_width, prune_layer=_prune_layer, mask_layer=_mask_layer)
prune_heads = HEAD_PRUNING.prune_heads
mask_heads = HEAD_PRUNING.mask_heads


class ParamTransforms(PrunableHeads):
    """Mixin giving BERT models a ``prune_heads`` method."""

    head_pruning = HEAD_PRUNING
