"""Head pruning and masking shared by the architectures (BERT, GPT, GPT-2, XLM,
DistilBERT, DeBERTa-v2).

Pruning removes a head's slice of the query/key/value projections' outputs and of
the output projection's inputs, so the layer keeps fewer heads of the same
``head_dim`` (the attention code reads the head count from the width). The config
records the removed heads (``pruned_heads``: ``{layer: original head indices}``), so
``init`` builds the same shapes and a saved model reloads. Head indices passed to
:func:`prune_model_heads` always refer to the unpruned model: pruning a head twice
is a no-op, and pruning in steps equals pruning at once.

A pruned head is a full-size head whose contribution is exactly zero: :func:`unprune`
puts the kept heads back at their original indices of full-size tensors, with zeros
for the pruned heads (their query/key/value rows and biases and the output
projection's input columns), which is how a pruned model is saved for loaders that
cannot prune (``transformers`` 5, pytorch-transformers 1.0); pruning that again gives
the same params bit for bit.

Each architecture supplies small functions over its base params: the current width
(heads * head_dim) of a layer's attention, the edit of that layer's head features
along their axes (one function serves pruning and unpruning: it applies a
:data:`FeatureEdit` to each tensor) and the zeroing of some of its heads' values,
bundled as a :class:`HeadPruning` (:func:`linear_head_pruning` builds it for a layout of
plain ``Linear`` projections named by paths); models get their ``prune_heads`` and
``unprune_heads`` methods from :class:`PrunableHeads`.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..layers import attention
from ..tree import Params
from .resize import get_at, replace_at

__all__ = [
    "check_heads",
    "kept_index",
    "prune_model_heads",
    "mask_model_heads",
    "prune_recorded",
    "unprune",
    "unprune_model_heads",
    "FeatureEdit",
    "keep_features",
    "restore_features",
    "edit_rows",
    "edit_cols",
    "edit_conv1d_attention",
    "prune_conv1d_attention",
    "take_rows",
    "take_cols",
    "zero_heads",
    "layer_head_masks",
    "HeadPruning",
    "linear_head_pruning",
    "PrunableHeads",
]

LayerWidth = Callable[[Params, int], int]
"""``(base params, layer) -> width`` of that layer's attention (heads * head_dim)."""
PruneLayer = Callable[[Params, int, Tensor], Params]
"""``(base params, layer, kept feature index (long)) -> new base params``."""
FeatureEdit = Callable[[Tensor, int, int], Tensor]
"""``(tensor, dim, blocks) -> tensor`` with its head features along ``dim`` changed (kept or
restored); ``blocks`` counts the equal blocks sharing that axis (GPT's fused ``c_attn``
holds query, key and value: 3), each edited alike."""
EditLayer = Callable[[Params, int, FeatureEdit], Params]
"""``(base params, layer, edit) -> new base params``: ``edit`` applied to every tensor of that
layer's attention that has a head-feature axis (the architecture's layout)."""


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


def _block_index(index: Tensor, width: int, blocks: int, device: torch.device) -> Tensor:
    """``index`` repeated for each of ``blocks`` blocks of ``width`` features (int64)."""
    index = index.to(device)
    return torch.cat([index + b * width for b in range(blocks)]) if blocks > 1 else index


def keep_features(index: Tensor) -> FeatureEdit:
    """The edit that keeps features ``index`` (long, in the current width) of each block.

    A tensor of ``blocks * w`` features along ``dim`` becomes ``blocks * len(index)``.
    """

    def edit(t: Tensor, dim: int, blocks: int = 1) -> Tensor:
        width = t.shape[dim] // blocks
        return t.index_select(dim, _block_index(index, width, blocks, t.device))

    return edit


def restore_features(index: Tensor, width: int) -> FeatureEdit:
    """The inverse of :func:`keep_features`: features go back to positions ``index`` (long)
    of ``width`` per block, zeros elsewhere (same dtype and device).

    A tensor of ``blocks * len(index)`` features along ``dim`` becomes ``blocks * width``.
    """

    def edit(t: Tensor, dim: int, blocks: int = 1) -> Tensor:
        shape = list(t.shape)
        shape[dim] = blocks * width
        return t.new_zeros(shape).index_copy(dim, _block_index(index, width, blocks, t.device), t)

    return edit


def edit_rows(p: Params, edit: FeatureEdit, *, bias: bool = True, blocks: int = 1) -> Params:
    """``edit`` the rows (dim 0) of ``p["weight"]``, and ``p["bias"]`` when ``bias``: a
    projection (out, in) whose outputs are head features (a query/key/value Linear, or a
    GPT ``c_proj`` Conv1D (in, out) whose inputs are)."""
    out = {**p, "weight": edit(p["weight"], 0, blocks)}
    if bias and p.get("bias") is not None:
        out["bias"] = edit(p["bias"], 0, blocks)
    return out


def edit_cols(p: Params, edit: FeatureEdit, *, bias: bool = False, blocks: int = 1) -> Params:
    """``edit`` the columns (dim 1) of ``p["weight"]``, and ``p["bias"]`` when ``bias``: an
    output Linear (out, in) whose inputs are head features, or GPT's ``c_attn`` Conv1D
    (in, 3 * width) whose outputs are (``blocks=3``, ``bias=True``)."""
    out = {**p, "weight": edit(p["weight"], 1, blocks)}
    if bias and p.get("bias") is not None:
        out["bias"] = edit(p["bias"], 0, blocks)
    return out


def take_rows(p: Params, index: Tensor, *, bias: bool = True) -> Params:
    """Keep rows ``index`` of ``p["weight"]`` (and of ``p["bias"]`` when ``bias``)."""
    return edit_rows(p, keep_features(index), bias=bias)


def take_cols(p: Params, index: Tensor, *, bias: bool = False) -> Params:
    """Keep columns ``index`` of ``p["weight"]`` (and entries of ``p["bias"]`` when ``bias``)."""
    return edit_cols(p, keep_features(index), bias=bias)


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


def edit_conv1d_attention(attn: Params, edit: FeatureEdit) -> Params:
    """Edit a GPT/GPT-2 attention (``c_attn`` (d, 3w) Conv1D, ``c_proj`` (w, d)): the head
    features of each of the query, key and value blocks of ``c_attn``'s outputs (weight and
    bias) and the same rows of ``c_proj`` (its bias is per output, kept)."""
    return {
        **attn,
        "c_attn": edit_cols(attn["c_attn"], edit, bias=True, blocks=3),
        "c_proj": edit_rows(attn["c_proj"], edit, bias=False),
    }


def prune_conv1d_attention(attn: Params, index: Tensor) -> Params:
    """Prune a GPT/GPT-2 attention: keep features ``index`` of each of the query, key and
    value blocks of ``c_attn``'s outputs and the same rows of ``c_proj``."""
    return edit_conv1d_attention(attn, keep_features(index))


def unprune_model_heads(
    model: Any, params: Params, *, width: LayerWidth, edit_layer: EditLayer
) -> tuple[Any, Params]:
    """The full-size equivalent of a pruned model: see :func:`unprune`.

    Args:
        model: a ptfunc model whose config records ``pruned_heads``.
        params: its (pruned) params, not modified.
        width, edit_layer: the architecture's accessors over the base params.

    Returns:
        ``(model of the same class with pruned_heads={}, params)``: every attention has
        ``num_attention_heads`` heads; a pruned head's features are 0.

    Raises:
        ValueError: params whose attention widths do not match the config's ``pruned_heads``.
    """
    c = model.config
    n_layers, n_heads, head_dim = c.num_hidden_layers, c.num_attention_heads, c.head_dim
    base, put = _base(model, params)
    for layer, heads in sorted(check_heads(c.pruned_heads, n_layers, n_heads).items()):
        index = kept_index(n_heads, head_dim, heads, ())
        if index is None:
            continue
        got = width(base, layer)
        if got != index.numel():
            raise ValueError(
                f"layer {layer} of the params has {got // head_dim} heads but "
                f"{type(model).__name__}'s config (pruned_heads={dict(c.pruned_heads)}) expects "
                f"{index.numel() // head_dim}: unprune with the model that pruned them"
            )
        base = edit_layer(base, layer, restore_features(index, n_heads * head_dim))
    return type(model)(c.replace(pruned_heads={})), put(base)


def unprune(model: Any, params: Params) -> tuple[Any, Params]:
    """Expand a pruned model to the full number of heads, the pruned ones exactly zero.

    Each kept head goes back to its original index; a pruned head gets zeros in its
    query/key/value rows and biases and in the output projection's input columns, so it
    contributes exactly 0 (its context is 0): the outputs are those of the pruned model,
    in any loader that builds ``num_attention_heads`` heads per layer (``transformers`` 5,
    pytorch-transformers 1.0). ``prune_heads(full_params, model.config.pruned_heads)`` of
    the result gives ``params`` back bit for bit. The zero heads also stay zero under
    gradient steps (every gradient into them is 0).

    Args:
        model: a ptfunc model; one without pruned heads is returned as is.
        params: its params (not modified); dtype and device are kept.

    Returns:
        ``(full_model, full_params)``: ``full_model`` is ``model``'s class with
        ``pruned_heads={}``.

    Raises:
        TypeError: ``model`` records pruned heads but its class has no head pruning.
        ValueError: params whose shapes do not match the config's ``pruned_heads``.

    Example:
        >>> import ptfunc
        >>> from ptfunc.archs import gpt2
        >>> model = gpt2.GPT2Model(gpt2.GPT2Config(40, n_embd=8, n_layer=1, n_head=2))
        >>> small, params = model.prune_heads(model.init(ptfunc.random.key(0)), {0: [1]})
        >>> params["h"][0]["attn"]["c_proj"]["weight"].shape  # one head of 4 features
        torch.Size([4, 8])
        >>> full, full_params = unprune(small, params)
        >>> full_params["h"][0]["attn"]["c_proj"]["weight"].shape  # two, the second zero
        torch.Size([8, 8])
        >>> full_params["h"][0]["attn"]["c_proj"]["weight"][4:].abs().sum().item()
        0.0
    """
    if not model.config.pruned_heads:
        return model, params
    pruning = getattr(model, "head_pruning", None)
    if not isinstance(pruning, HeadPruning):
        raise TypeError(
            f"{type(model).__name__} records pruned_heads={dict(model.config.pruned_heads)} "
            "but has no head pruning to unprune them"
        )
    return pruning.unprune(model, params)


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
    ``prune_init`` (each arch module binds them by those names), and ``unprune``.
    """

    width: LayerWidth
    edit_layer: EditLayer
    mask_layer: MaskLayer

    def prune_layer(self, base: Params, layer: int, index: Tensor) -> Params:
        """Keep features ``index`` (long, in the current width) of ``layer``'s attention."""
        return self.edit_layer(base, layer, keep_features(index))

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

    def unprune(self, model: Any, params: Params) -> tuple[Any, Params]:
        """``(full-size model, params)`` with the pruned heads zero: see :func:`unprune`."""
        return unprune_model_heads(model, params, width=self.width, edit_layer=self.edit_layer)

    def mask_heads(self, model: Any, params: Params, heads: Mapping[int, Iterable[int]]) -> Params:
        """Params in which heads ``{layer: [current head indices]}`` contribute nothing: their
        value projections are 0 (shapes kept; a cache holds zero values for them). See
        :func:`mask_model_heads`."""
        return mask_model_heads(model, params, heads, width=self.width, mask_layer=self.mask_layer)

    def prune_init(self, base: Params, config: Any) -> Params:
        """Freshly initialised base params -> the shapes ``config.pruned_heads`` records."""
        return prune_recorded(base, config, self.prune_layer) if config.pruned_heads else base


TreePath = tuple[str, ...]
"""Keys from a params dict down to a subtree (``("attention", "self", "query")``)."""


def linear_head_pruning(
    *,
    layers: TreePath,
    rows: Sequence[TreePath],
    cols: TreePath,
    value: TreePath,
    optional_rows: Sequence[TreePath] = (),
) -> HeadPruning:
    """The :class:`HeadPruning` of an attention made of ``Linear`` params (weight (out, in),
    bias (out,)), each head's ``head_dim`` features contiguous.

    Args:
        layers: path from the base params to the list of layer params
            (``("encoder", "layer")``).
        rows: paths, inside one layer, of the projections whose outputs are head features
            (query, key, value); the first one gives the layer's width.
        cols: path of the output projection, whose inputs are head features (its bias,
            per output, is kept).
        value: path of the value projection, zeroed by ``mask_heads``.
        optional_rows: more such projections, edited where a layer has them (DeBERTa's
            ``pos_key_proj`` and ``pos_query_proj``, present or not by config).

    Example:
        >>> import torch
        >>> lin = lambda o, i: {"weight": torch.ones(o, i), "bias": torch.ones(o)}
        >>> layer = {"q": lin(4, 3), "k": lin(4, 3), "v": lin(4, 3), "o": lin(3, 4)}
        >>> hp = linear_head_pruning(layers=("layer",), rows=(("q",), ("k",), ("v",)),
        ...                          cols=("o",), value=("v",))
        >>> out = hp.prune_layer({"layer": [layer]}, 0, torch.tensor([2, 3]))["layer"][0]
        >>> out["q"]["weight"].shape, out["o"]["weight"].shape, hp.width({"layer": [out]}, 0)
        (torch.Size([2, 3]), torch.Size([3, 2]), 2)
    """
    rows, optional_rows = tuple(rows), tuple(optional_rows)

    def width(base: Params, layer: int) -> int:
        return get_at(get_at(base, layers)[layer], rows[0])["weight"].shape[0]

    def update(base: Params, layer: int, fn: Callable[[Params], Params]) -> Params:
        stack = list(get_at(base, layers))
        stack[layer] = fn(stack[layer])
        return replace_at(base, layers, stack)

    def edit_block(block: Params, edit: FeatureEdit) -> Params:
        for path in rows + optional_rows:
            try:
                p = get_at(block, path)
            except KeyError:
                if path in optional_rows:
                    continue
                raise
            block = replace_at(block, path, edit_rows(p, edit))
        return replace_at(block, cols, edit_cols(get_at(block, cols), edit))

    def edit_layer(base: Params, layer: int, edit: FeatureEdit) -> Params:
        return update(base, layer, lambda block: edit_block(block, edit))

    def mask_layer(base: Params, layer: int, heads: list[int], head_dim: int) -> Params:
        def zero(block: Params) -> Params:
            p = get_at(block, value)
            new = {k: zero_heads(t, heads, head_dim, dim=0) for k, t in p.items()}
            return replace_at(block, value, new)

        return update(base, layer, zero)

    return HeadPruning(width=width, edit_layer=edit_layer, mask_layer=mask_layer)


class PrunableHeads:
    """Mixin giving a model class whose ``head_pruning`` is set ``prune_heads`` and
    ``unprune_heads`` methods."""

    head_pruning: HeadPruning

    def prune_heads(self, params: Params, heads_to_prune: Mapping[int, Iterable[int]]):
        """See :meth:`HeadPruning.prune_heads`; returns ``(model, params)``."""
        return self.head_pruning.prune_heads(self, params, heads_to_prune)

    def unprune_heads(self, params: Params) -> tuple[Any, Params]:
        """See :func:`unprune`; returns ``(full-size model, params)`` (``self, params`` when
        nothing is pruned)."""
        return unprune(self, params)


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
