"""Causal multi-head self-attention with Conv1D projections and a KV cache (GPT, GPT-2).

Params (checkpoint names): ``c_attn`` (d -> 3d) and ``c_proj`` (d -> d), Conv1D
layout (weight ``(in, out)``). The cache is one ``(2, batch, heads, length,
head_dim)`` tensor per layer (stacked key and value, pytorch-transformers' layout).

Two ways to use it:

* growing (the seed's): ``past`` holds the positions so far and the new keys and values are
  appended, so every step has a new shape;
* static: ``past`` is a buffer of a fixed length ``L`` and ``cache_position`` (s,) says
  where the new keys and values go; :func:`static_cache_bias` masks the slots not written
  yet. Every decoding step then has the same shapes, so one ``torch.compile``'d step
  serves the whole generation (``ptfunc.generate(..., compile=True)``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..random import Key, split, split_for_dropout
from ..tree import Params
from . import attention, dropout, linear

__all__ = ["init", "apply", "causal_bias", "static_cache_bias", "update_cache"]


def init(key: Key, dim: int, *, std: float = 0.02) -> Params:
    """``c_attn`` (dim -> 3 dim) and ``c_proj`` (dim -> dim)."""
    k1, k2 = split(key)
    return {
        "c_attn": linear.init_conv1d(k1, dim, 3 * dim, std=std),
        "c_proj": linear.init_conv1d(k2, dim, dim, std=std),
    }


def causal_bias(
    q_len: int,
    past_len: int,
    attention_mask: Tensor | None,
    dtype: torch.dtype,
    device: torch.device,
    *,
    window: int | None = None,
) -> Tensor | None:
    """Additive causal (and padding) bias (b or 1, 1, q_len, past_len + q_len).

    None when the fused kernel's ``is_causal`` alone is right (no past, no mask, no window
    shorter than the sequence). ``attention_mask`` (b, past_len + q_len): 1 = attend.
    A query whose own slot is masked (left padding) sees no key: its output is the uniform
    average of the values, as in ``transformers`` (whose losses read it when a padding
    position's label is the first token). Gradients through such a row depend on the kernel
    (the fused one and the explicit path of vmap/jvp differ), in ``transformers`` too.
    ``window`` (sliding-window attention, Mistral): a query at index i sees the keys at
    indices j with ``i - window < j <= i``.
    """
    sliding = window is not None and past_len + q_len > window
    if past_len == 0 and attention_mask is None and not sliding:
        return None
    k_len = past_len + q_len
    keep = torch.ones(q_len, k_len, dtype=torch.bool, device=device).tril(past_len)
    if sliding:
        keep = keep & ~torch.ones_like(keep).tril(past_len - window)
    keep = keep[None, None]
    if attention_mask is not None:
        if attention_mask.dim() != 2 or attention_mask.shape[1] != k_len:
            raise ValueError(
                f"attention_mask must have shape (batch, past + seq) = (batch, {k_len}), "
                f"got {tuple(attention_mask.shape)}"
            )
        keep = keep & (attention_mask[:, None, None, :] != 0)
    return torch.where(
        keep,
        torch.zeros((), dtype=dtype, device=device),
        torch.full((), torch.finfo(dtype).min, dtype=dtype, device=device),
    )


def static_cache_bias(
    cache_position: Tensor,
    cache_len: int,
    attention_mask: Tensor | None,
    dtype: torch.dtype,
    device: torch.device,
    *,
    window: int | None = None,
) -> Tensor:
    """Additive bias (b or 1, 1, s, cache_len) for queries at ``cache_position`` (s,) over a
    static cache: slot j is visible to the query at position p when j <= p and
    ``attention_mask[:, j]`` (b, cache_len) is 1 (slots not written yet may hold anything);
    with a sliding ``window``, also ``p - window < j``."""
    if attention_mask is not None and (
        attention_mask.dim() != 2 or attention_mask.shape[1] != cache_len
    ):
        raise ValueError(
            f"with a static cache attention_mask must have shape (batch, cache length) = "
            f"(batch, {cache_len}), got {tuple(attention_mask.shape)}"
        )
    slots = torch.arange(cache_len, device=device)
    keep = slots[None, :] <= cache_position[:, None]
    if window is not None:
        keep = keep & (slots[None, :] > cache_position[:, None] - window)
    keep = keep[None, None]
    if attention_mask is not None:
        keep = keep & (attention_mask[:, None, None, :] != 0)
    return torch.where(
        keep,
        torch.zeros((), dtype=dtype, device=device),
        torch.full((), torch.finfo(dtype).min, dtype=dtype, device=device),
    )


def update_cache(
    k: Tensor, v: Tensor, past: Tensor | None, cache_position: Tensor | None
) -> tuple[Tensor, Tensor, Tensor]:
    """New keys and values (b, heads, s, head_dim) into a layer's cache -> ``(keys, values,
    present)``, the keys and values to attend over and the cache to return.

    Growing cache: ``past`` (2, b, heads, P, head_dim) or None, the new entries appended
    (P + s keys). Static cache: with ``cache_position`` (s,), ``past`` (2, b, heads, L,
    head_dim) gets them at those slots, out of place (L keys).
    """
    if cache_position is not None:
        if past is None:
            raise ValueError("cache_position needs past: the static cache to write into")
        present = past.index_copy(-2, cache_position, torch.stack([k, v]))
        return present[0], present[1], present
    if past is not None:
        k = torch.cat([past[0], k], dim=-2)
        v = torch.cat([past[1], v], dim=-2)
    return k, v, torch.stack([k, v])


def apply(
    params: Params,
    x: Tensor,
    *,
    head_dim: int,
    past: Tensor | None = None,
    cache_position: Tensor | None = None,
    bias: Tensor | None = None,
    attention_dropout: float = 0.0,
    residual_dropout: float = 0.0,
    head_mask: Tensor | None = None,
    need_weights: bool = False,
    key: Key | None = None,
    train: bool = False,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """x (b, s, d) -> (output (b, s, d) after c_proj and dropout, present, probs or None).

    ``bias`` comes from :func:`causal_bias` (or :func:`static_cache_bias`); None means plain
    causal attention. With ``cache_position`` (s,), ``past`` is a static cache
    (2, b, heads, L, head_dim): the new keys and values are written at those slots (out of
    place) and attention runs over all L slots, masked by ``bias``; ``present`` is the
    updated cache.
    """
    k_attn, k_out = split_for_dropout(key, 2, train)
    q, k, v = linear.apply_conv1d(params["c_attn"], x).chunk(3, dim=-1)
    q, k, v = (attention.split_heads(t, head_dim) for t in (q, k, v))
    k, v, present = update_cache(k, v, past, cache_position)
    context, probs = attention.dot_product_attention(
        q,
        k,
        v,
        bias=bias,
        is_causal=bias is None,
        dropout_rate=attention_dropout,
        head_mask=head_mask,
        need_weights=need_weights,
        key=k_attn,
        train=train,
    )
    out = linear.apply_conv1d(params["c_proj"], attention.merge_heads(context))
    return dropout.apply(out, residual_dropout, key=k_out, train=train), present, probs
