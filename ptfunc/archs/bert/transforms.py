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
from ..prune import (
    FeatureEdit,
    HeadPruning,
    PrunableHeads,
    edit_cols,
    edit_rows,
    keep_features,
    kept_index,
    zero_heads,
)

__all__ = ["prune_heads", "prune_layer_heads", "mask_heads", "ParamTransforms"]


def _edit_block(layer: Params, edit: FeatureEdit) -> Params:
    """``edit`` the head features of query/key/value outputs and of the output dense's inputs."""
    attn = layer["attention"]
    new_self = {name: edit_rows(p, edit) for name, p in attn["self"].items()}
    dense = edit_cols(attn["output"]["dense"], edit)
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
    return layer if index is None else _edit_block(layer, keep_features(index))


def _block_width(layer: Params) -> int:
    return layer["attention"]["self"]["query"]["weight"].shape[0]


def _width(base: Params, layer: int) -> int:
    return _block_width(base["encoder"]["layer"][layer])


def _edit_layer(base: Params, layer: int, edit: FeatureEdit) -> Params:
    layers = list(base["encoder"]["layer"])
    layers[layer] = _edit_block(layers[layer], edit)
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


HEAD_PRUNING = HeadPruning(width=_width, edit_layer=_edit_layer, mask_layer=_mask_layer)
prune_heads = HEAD_PRUNING.prune_heads
mask_heads = HEAD_PRUNING.mask_heads


class ParamTransforms(PrunableHeads):
    """Mixin giving BERT models ``prune_heads`` and ``unprune_heads`` methods."""

    head_pruning = HEAD_PRUNING
