"""Head pruning and masking shared by the architectures (BERT, GPT, GPT-2, XLM).

Pruning removes a head's slice of the query/key/value projections' outputs and of
the output projection's inputs, so the layer keeps fewer heads of the same
``head_dim`` (the attention code reads the head count from the width). The config
records the removed heads (``pruned_heads``: ``{layer: original head indices}``), so
``init`` builds the same shapes and a saved model reloads. Head indices passed to
:func:`prune_model_heads` always refer to the unpruned model: pruning a head twice
is a no-op, and pruning in steps equals pruning at once.

Each architecture supplies small functions over its base params: the current width
(heads * head_dim) of a layer's attention, the slicing of that layer and the zeroing of
some of its heads' values, bundled as a :class:`HeadPruning`; models get their
``prune_heads`` method from :class:`PrunableHeads`.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..layers import attention
from ..tree import Params

__all__ = [
    "check_heads",
    "kept_index",
    "prune_model_heads",
    "mask_model_heads",
    "prune_recorded",
    "prune_conv1d_attention",
    "take_rows",
    "take_cols",
    "zero_heads",
    "layer_head_masks",
    "HeadPruning",
    "PrunableHeads",
]

LayerWidth = Callable[[Params, int], int]
"""``(base params, layer) -> width`` of that layer's attention (heads * head_dim)."""
PruneLayer = Callable[[Params, int, Tensor], Params]
"""``(base params, layer, kept feature index (long)) -> new base params``."""


def check_heads(
    heads: Mapping[int, Iterable[int]], n_layers: int, n_heads: int, *, what: str = "prune"
) -> dict[int, set[int]]:
    """Validate ``{layer: [heads]}``; returns ``{int layer: {int heads}}``.

    Raises:
        TypeError: not a mapping, or indices that are not integers.
        ValueError: a layer outside ``[0, n_layers)`` or a head outside ``[0, n_heads)``.
    """
    if not isinstance(heads, Mapping):
        raise TypeError(
            f"heads to {what} must be a mapping {{layer: [head indices]}}, "
            f"got {type(heads).__name__}"
        )
    out: dict[int, set[int]] = {}
    for layer, hs in heads.items():
        if isinstance(hs, (int, str, bytes)) or not isinstance(hs, Iterable):
            raise TypeError(f"heads of layer {layer} must be a list of indices, got {hs!r}")
        layer_i, hs_i = _as_int(layer, "layer index"), {_as_int(h, "head index") for h in hs}
        if not 0 <= layer_i < n_layers:
            raise ValueError(f"layer index {layer_i} out of range [0, {n_layers})")
        bad = sorted(h for h in hs_i if not 0 <= h < n_heads)
        if bad:
            raise ValueError(f"head indices {bad} out of range [0, {n_heads}) in layer {layer_i}")
        out.setdefault(layer_i, set()).update(hs_i)
    return out


def _as_int(x: Any, name: str) -> int:
    """An index as int: ints, numpy integers and integer 0-d tensors (not bools or floats)."""
    if not isinstance(x, bool):
        try:
            return operator.index(x)
        except TypeError:
            pass
    raise TypeError(f"{name} must be an int, got {x!r} ({type(x).__name__})")


def kept_index(
    n_heads: int, head_dim: int, remove: Iterable[int], already: Iterable[int]
) -> Tensor | None:
    """Feature index (long) of the heads a layer keeps, in its current (pruned) width.

    Args:
        n_heads: heads of the unpruned layer.
        head_dim: features per head.
        remove: original indices of heads to remove now.
        already: original indices removed earlier (absent from the current width).

    Returns:
        int64 (kept heads * head_dim,), or None when nothing new is removed.
    """
    already = set(already)
    remove = set(remove) - already
    if not remove:
        return None
    current = [h for h in range(n_heads) if h not in already]
    keep = [i for i, h in enumerate(current) if h not in remove]
    if not keep:
        return torch.zeros(0, dtype=torch.long)
    return torch.cat([torch.arange(i * head_dim, (i + 1) * head_dim) for i in keep])


def take_rows(p: Params, index: Tensor, *, bias: bool = True) -> Params:
    """Keep rows ``index`` of ``p["weight"]`` (and of ``p["bias"]`` when ``bias``)."""
    out = {**p, "weight": p["weight"][index.to(p["weight"].device)]}
    if bias and p.get("bias") is not None:
        out["bias"] = p["bias"][index.to(p["bias"].device)]
    return out


def take_cols(p: Params, index: Tensor, *, bias: bool = False) -> Params:
    """Keep columns ``index`` of ``p["weight"]`` (and entries of ``p["bias"]`` when ``bias``)."""
    out = {**p, "weight": p["weight"][:, index.to(p["weight"].device)]}
    if bias and p.get("bias") is not None:
        out["bias"] = p["bias"][index.to(p["bias"].device)]
    return out


def zero_heads(t: Tensor, heads: Iterable[int], head_dim: int, *, dim: int, offset: int = 0):
    """``t`` with the features of ``heads`` (current indices) zeroed along ``dim``.

    Features of head ``h`` are ``offset + h * head_dim ... + head_dim`` along ``dim``;
    ``width`` = heads * head_dim must fit in ``t.shape[dim] - offset``.
    """
    keep = torch.ones(t.shape[dim], dtype=t.dtype, device=t.device)
    for h in heads:
        keep[offset + h * head_dim : offset + (h + 1) * head_dim] = 0
    shape = [1] * t.dim()
    shape[dim] = -1
    return t * keep.reshape(shape)


def _base(model: Any, params: Params) -> tuple[Params, Callable[[Params], Params]]:
    prefix = model.params_prefix
    base = params[prefix] if prefix else params

    def put(new_base: Params) -> Params:
        return {**params, prefix: new_base} if prefix else new_base

    return base, put


def prune_model_heads(
    model: Any,
    params: Params,
    heads_to_prune: Mapping[int, Iterable[int]],
    *,
    width: LayerWidth,
    prune_layer: PruneLayer,
) -> tuple[Any, Params]:
    """Remove heads ``{layer: [head indices of the unpruned model]}``.

    Args:
        model: a ptfunc model whose config has ``num_hidden_layers``,
            ``num_attention_heads``, ``head_dim`` and ``pruned_heads``.
        params: its params (not modified).
        width, prune_layer: the architecture's accessors over the base params.

    Returns:
        ``(model of the same class whose config records pruned_heads, new params)``.

    Raises:
        ValueError: bad layer/head indices, or params whose attention widths do not
            match the config's ``pruned_heads`` (params pruned with another model).
    """
    c = model.config
    n_layers, n_heads, head_dim = c.num_hidden_layers, c.num_attention_heads, c.head_dim
    requested = check_heads(heads_to_prune, n_layers, n_heads)
    base, put = _base(model, params)
    pruned = {int(k): set(v) for k, v in c.pruned_heads.items()}
    for layer in sorted(requested):
        done = pruned.get(layer, set())
        got, want = width(base, layer), (n_heads - len(done)) * head_dim
        if got != want:
            raise ValueError(
                f"layer {layer} of the params has {got // head_dim} heads but "
                f"{type(model).__name__}'s config (pruned_heads={dict(c.pruned_heads)}) expects "
                f"{want // head_dim}: prune with the model returned by the previous prune_heads"
            )
        index = kept_index(n_heads, head_dim, requested[layer], done)
        if index is None:
            continue
        base = prune_layer(base, layer, index)
        pruned[layer] = done | requested[layer]
    record = {k: tuple(sorted(v)) for k, v in sorted(pruned.items()) if v}
    return type(model)(c.replace(pruned_heads=record)), put(base)


def prune_recorded(base: Params, config: Any, prune_layer: PruneLayer) -> Params:
    """Apply ``config.pruned_heads`` to freshly initialised (unpruned) base params, so
    ``init`` builds the shapes of a pruned checkpoint."""
    n_heads, head_dim = config.num_attention_heads, config.head_dim
    recorded = check_heads(config.pruned_heads, config.num_hidden_layers, n_heads)
    for layer, heads in sorted(recorded.items()):
        index = kept_index(n_heads, head_dim, heads, ())
        if index is not None:
            base = prune_layer(base, layer, index)
    return base


def prune_conv1d_attention(attn: Params, index: Tensor) -> Params:
    """Prune a GPT/GPT-2 attention (``c_attn`` (d, 3w) Conv1D, ``c_proj`` (w, d)):
    keep features ``index`` of each of the query, key and value blocks of ``c_attn``'s
    outputs and the same rows of ``c_proj``."""
    w = attn["c_proj"]["weight"].shape[0]
    qkv = torch.cat([index, index + w, index + 2 * w])
    return {
        **attn,
        "c_attn": take_cols(attn["c_attn"], qkv, bias=True),
        "c_proj": take_rows(attn["c_proj"], index, bias=False),
    }


MaskLayer = Callable[[Params, int, list[int], int], Params]
"""``(base params, layer, current head indices, head_dim) -> new base params`` with those
heads' value projections zeroed."""


def mask_model_heads(
    model: Any,
    params: Params,
    heads: Mapping[int, Iterable[int]],
    *,
    width: LayerWidth,
    mask_layer: MaskLayer,
) -> Params:
    """Params in which heads ``{layer: [current head indices]}`` contribute nothing.

    ``mask_layer`` zeroes the heads' value projection (weight and bias), so each such
    head's context is exactly 0, as with ``head_mask`` 0: shapes are kept.

    Raises:
        ValueError: a layer or head index out of range (heads: the layer's current count).
    """
    c = model.config
    head_dim = c.head_dim
    base, put = _base(model, params)
    requested = check_heads(heads, c.num_hidden_layers, c.num_attention_heads, what="mask")
    for layer in sorted(requested):
        n = width(base, layer) // head_dim
        bad = sorted(h for h in requested[layer] if h >= n)
        if bad:
            raise ValueError(
                f"head indices {bad} out of range [0, {n}) in layer {layer} (its current heads)"
            )
        base = mask_layer(base, layer, sorted(requested[layer]), head_dim)
    return put(base)


@dataclass(frozen=True)
class HeadPruning:
    """One architecture's head pruning and masking, from the three accessors of its layout.

    Its methods are the architecture's public ``prune_heads``, ``mask_heads`` and
    ``prune_init`` (each arch module binds them by those names).
    """

    width: LayerWidth
    prune_layer: PruneLayer
    mask_layer: MaskLayer

    def prune_heads(
        self, model: Any, params: Params, heads_to_prune: Mapping[int, Iterable[int]]
    ) -> tuple[Any, Params]:
        """Remove heads ``{layer: [head indices of the unpruned model]}``.

        Returns:
            ``(model whose config records pruned_heads, new params)``; ``params`` is
            unchanged. See :func:`prune_model_heads`.
        """
        return prune_model_heads(
            model, params, heads_to_prune, width=self.width, prune_layer=self.prune_layer
        )

    def mask_heads(self, model: Any, params: Params, heads: Mapping[int, Iterable[int]]) -> Params:
        """Params in which heads ``{layer: [current head indices]}`` contribute nothing: their
        value projections are 0 (shapes kept; a cache holds zero values for them). See
        :func:`mask_model_heads`."""
        return mask_model_heads(model, params, heads, width=self.width, mask_layer=self.mask_layer)

    def prune_init(self, base: Params, config: Any) -> Params:
        """Freshly initialised base params -> the shapes ``config.pruned_heads`` records."""
        return prune_recorded(base, config, self.prune_layer) if config.pruned_heads else base


class PrunableHeads:
    """Mixin giving a model class whose ``head_pruning`` is set a ``prune_heads`` method."""

    head_pruning: HeadPruning

    def prune_heads(self, params: Params, heads_to_prune: Mapping[int, Iterable[int]]):
        """See :meth:`HeadPruning.prune_heads`; returns ``(model, params)``."""
        return self.head_pruning.prune_heads(self, params, heads_to_prune)


def layer_head_masks(head_mask: Tensor | None, config: Any, dtype: torch.dtype) -> list:
    """Per-layer head masks for ``apply``, in the unpruned model's head indices.

    ``head_mask`` (heads,) or (layers, heads) counts the config's ``num_attention_heads``
    in every layer, pruned or not (so importance scores of a pruned model keep their
    shape); a pruned layer gets the rows of the heads it still has.

    Returns:
        per layer, None or (kept heads, 1, 1) in ``dtype``
        (:func:`ptfunc.layers.attention.per_layer_head_masks`).
    """
    n_layers, n_heads = config.num_hidden_layers, config.num_attention_heads
    masks = attention.per_layer_head_masks(head_mask, n_layers, dtype)
    if head_mask is None or not config.pruned_heads:
        return masks
    if masks[0].shape[0] != n_heads:
        raise ValueError(
            f"head_mask must count the unpruned model's {n_heads} heads per layer "
            f"(pruned heads are dropped from it), got {tuple(head_mask.shape)}"
        )
    out = []
    for i, m in enumerate(masks):
        gone = set(config.pruned_heads.get(i, ()))
        if gone:
            keep = [h for h in range(n_heads) if h not in gone]
            m = m.index_select(0, torch.tensor(keep, dtype=torch.long, device=m.device))
        out.append(m)
    return out
