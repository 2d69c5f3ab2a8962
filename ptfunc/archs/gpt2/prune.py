"""Head pruning and masking for GPT-2 (and OpenAI GPT, which shares the ``h[i].attn``
layout).

Pruning removes the heads' columns from each of the query, key and value blocks of
``c_attn`` and the same rows of ``c_proj``; the config records ``pruned_heads``.
See :mod:`ptfunc.archs.prune`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from torch import Tensor

from ...tree import Params
from ..prune import (
    mask_model_heads,
    prune_conv1d_attention,
    prune_model_heads,
    prune_recorded,
    zero_heads,
)

__all__ = ["prune_heads", "mask_heads", "prune_init", "ParamTransforms"]


def _width(base: Params, layer: int) -> int:
    return base["h"][layer]["attn"]["c_proj"]["weight"].shape[0]


def _prune_layer(base: Params, layer: int, index: Tensor) -> Params:
    blocks = list(base["h"])
    blocks[layer] = {**blocks[layer], "attn": prune_conv1d_attention(blocks[layer]["attn"], index)}
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


def prune_init(base: Params, config: Any) -> Params:
    """Freshly initialised base params -> the shapes ``config.pruned_heads`` records."""
    return prune_recorded(base, config, _prune_layer) if config.pruned_heads else base


def prune_heads(
    model: Any, params: Params, heads_to_prune: Mapping[int, Iterable[int]]
) -> tuple[Any, Params]:
    """Remove heads ``{layer: [head indices of the unpruned model]}``.

    Returns:
        ``(model whose config records pruned_heads, new params)``; ``params`` is unchanged.
    """
    return prune_model_heads(model, params, heads_to_prune, width=_width, prune_layer=_prune_layer)


def mask_heads(model: Any, params: Params, heads: Mapping[int, Iterable[int]]) -> Params:
    """Params in which heads ``{layer: [current head indices]}`` contribute nothing: their
    value columns of ``c_attn`` are 0 (shapes kept; the cache holds zero values for them)."""
    return mask_model_heads(model, params, heads, width=_width, mask_layer=_mask_layer)


class ParamTransforms:
    """Mixin giving GPT/GPT-2 models a ``prune_heads`` method."""

    def prune_heads(self, params: Params, heads_to_prune: Mapping[int, Iterable[int]]):
        """See :func:`prune_heads`; returns ``(model, params)``."""
        return prune_heads(self, params, heads_to_prune)
