"""Pure param transforms: prune attention heads (resizing lives in ``archs.resize``).

Each returns a new ``(model, params)``: the config changes with the params
(``vocab_size``, ``pruned_heads``), so a saved model reloads with the right shapes.
Input params are never modified.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch

from ...tree import Params

__all__ = ["prune_heads", "prune_layer_heads", "ParamTransforms"]


def _base(params: Params, prefix: str) -> Params:
    return params[prefix] if prefix else params


def _with_base(params: Params, prefix: str, base: Params) -> Params:
    return {**params, prefix: base} if prefix else base


def prune_layer_heads(
    layer: Params, remove: Iterable[int], already: Iterable[int], head_dim: int
) -> Params:
    """Remove heads (original indices ``remove``) from one block's params.

    ``already`` lists original indices removed earlier, so indices keep
    referring to the unpruned model.
    """
    already = set(already)
    remove = sorted(set(remove) - already)
    if not remove:
        return layer
    current = [h for h in range(_num_heads(layer, head_dim) + len(already)) if h not in already]
    keep_heads = [i for i, h in enumerate(current) if h not in remove]
    index = (
        torch.cat([torch.arange(h * head_dim, (h + 1) * head_dim) for h in keep_heads])
        if keep_heads
        else torch.zeros(0, dtype=torch.long)
    )
    attn = layer["attention"]
    new_self = {
        name: {
            "weight": p["weight"][index.to(p["weight"].device)],
            "bias": p["bias"][index.to(p["bias"].device)],
        }
        for name, p in attn["self"].items()
    }
    dense = attn["output"]["dense"]
    new_dense = {**dense, "weight": dense["weight"][:, index.to(dense["weight"].device)]}
    return {
        **layer,
        "attention": {"self": new_self, "output": {**attn["output"], "dense": new_dense}},
    }


def _num_heads(layer: Params, head_dim: int) -> int:
    return layer["attention"]["self"]["query"]["weight"].shape[0] // head_dim


def prune_heads(model, params: Params, heads_to_prune: Mapping[int, Iterable[int]]):
    """Remove attention heads: ``{layer: [head indices of the unpruned model]}``.

    Returns:
        ``(model whose config records pruned_heads, new params)``.
    """
    c = model.config
    n_layers, n_heads = c.num_hidden_layers, c.num_attention_heads
    prefix = model.params_prefix
    base = _base(params, prefix)
    layers = list(base["encoder"]["layer"])
    pruned = {k: set(v) for k, v in c.pruned_heads.items()}
    for layer_index, heads in heads_to_prune.items():
        heads = set(int(h) for h in heads)
        if not 0 <= layer_index < n_layers:
            raise ValueError(f"layer index {layer_index} out of range [0, {n_layers})")
        bad = [h for h in heads if not 0 <= h < n_heads]
        if bad:
            raise ValueError(
                f"head indices {bad} out of range [0, {n_heads}) in layer {layer_index}"
            )
        done = pruned.get(layer_index, set())
        layers[layer_index] = prune_layer_heads(layers[layer_index], heads, done, c.head_dim)
        pruned[layer_index] = done | heads
    new_base = {**base, "encoder": {**base["encoder"], "layer": layers}}
    record = {k: tuple(sorted(v)) for k, v in sorted(pruned.items()) if v}
    return type(model)(c.replace(pruned_heads=record)), _with_base(params, prefix, new_base)


class ParamTransforms:
    """Mixin giving BERT models a ``prune_heads`` method."""

    def prune_heads(self, params: Params, heads_to_prune: Mapping[int, Iterable[int]]):
        """See :func:`prune_heads`; returns ``(model, params)``."""
        return prune_heads(self, params, heads_to_prune)
