"""Pure param transforms: resize the vocabulary, prune attention heads.

Each returns a new ``(model, params)``: the config changes with the params
(``vocab_size``, ``pruned_heads``), so a saved model reloads with the right shapes.
Input params are never modified.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch

from ...layers.initializers import normal
from ...random import Key
from ...tree import Params

__all__ = ["resize_token_embeddings", "prune_heads", "prune_layer_heads", "ParamTransforms"]


def _base(params: Params, prefix: str) -> Params:
    return params[prefix] if prefix else params


def _with_base(params: Params, prefix: str, base: Params) -> Params:
    return {**params, prefix: base} if prefix else base


def resize_token_embeddings(model, params: Params, new_num_tokens: int, *, key: Key):
    """Grow or shrink the word embeddings to ``new_num_tokens`` rows.

    Kept rows are copied; new rows are drawn from N(0, initializer_range) with
    ``key``. A tied MLM decoder follows automatically (it reads the same leaf);
    its bias is cut or padded with zeros.

    Returns:
        ``(model with config.vocab_size = new_num_tokens, new params)``.
    """
    if not isinstance(new_num_tokens, int) or new_num_tokens < 1:
        raise ValueError(f"new_num_tokens must be a positive int, got {new_num_tokens!r}")
    c = model.config
    prefix = model.params_prefix
    base = _base(params, prefix)
    old = base["embeddings"]["word_embeddings"]["weight"]
    keep = min(old.shape[0], new_num_tokens)
    fresh = normal(key, (new_num_tokens, old.shape[1]), std=c.initializer_range, dtype=old.dtype)
    weight = torch.cat([old[:keep], fresh[keep:].to(old.device)])
    embeddings = {**base["embeddings"], "word_embeddings": {"weight": weight}}
    out = _with_base(params, prefix, {**base, "embeddings": embeddings})
    predictions = out.get("cls", {}).get("predictions")
    if predictions is not None:
        bias = predictions["bias"]
        pad = bias.new_zeros(max(0, new_num_tokens - bias.shape[0]))
        out = {
            **out,
            "cls": {
                **out["cls"],
                "predictions": {**predictions, "bias": torch.cat([bias[:keep], pad])},
            },
        }
    return type(model)(c.replace(vocab_size=new_num_tokens)), out


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
    """Mixin giving BERT models ``resize_token_embeddings`` and ``prune_heads`` methods."""

    def resize_token_embeddings(self, params: Params, new_num_tokens: int, *, key: Key):
        """See :func:`resize_token_embeddings`; returns ``(model, params)``."""
        return resize_token_embeddings(self, params, new_num_tokens, key=key)

    def prune_heads(self, params: Params, heads_to_prune: Mapping[int, Iterable[int]]):
        """See :func:`prune_heads`; returns ``(model, params)``."""
        return prune_heads(self, params, heads_to_prune)
