"""Head pruning and masking for XLM.

Pruning removes the heads' rows of ``q_lin``, ``k_lin`` and ``v_lin`` (weights and
biases) and the same columns of ``out_lin`` (its bias is kept); the config records
``pruned_heads``. See :mod:`ptfunc.archs.prune`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from torch import Tensor

from ...tree import Params
from ..prune import (
    mask_model_heads,
    prune_model_heads,
    prune_recorded,
    take_cols,
    take_rows,
    zero_heads,
)

__all__ = ["prune_heads", "mask_heads", "prune_init", "ParamTransforms"]


def _width(base: Params, layer: int) -> int:
    return base["attentions"][layer]["q_lin"]["weight"].shape[0]


def _prune_layer(base: Params, layer: int, index: Tensor) -> Params:
    att = list(base["attentions"])
    p = att[layer]
    att[layer] = {
        **p,
        **{name: take_rows(p[name], index) for name in ("q_lin", "k_lin", "v_lin")},
        "out_lin": take_cols(p["out_lin"], index),
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
    ``v_lin`` rows are 0 (shapes kept; the cache holds zero values for them)."""
    return mask_model_heads(model, params, heads, width=_width, mask_layer=_mask_layer)


class ParamTransforms:
    """Mixin giving XLM models a ``prune_heads`` method."""

    def prune_heads(self, params: Params, heads_to_prune: Mapping[int, Iterable[int]]):
        """See :func:`prune_heads`; returns ``(model, params)``."""
        return prune_heads(self, params, heads_to_prune)
