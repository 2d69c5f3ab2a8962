"""Multi-head attention as free functions, plus the BERT-layout self-attention layer.

The core :func:`dot_product_attention` takes ``(batch, heads, seq, head_dim)``
tensors. It calls the fused ``scaled_dot_product_attention`` kernel whenever
nothing needs the probabilities themselves, and an explicit path (softmax,
keyed dropout, head mask) when they are returned, masked per head, or dropped
out in training: the fused kernel's dropout uses the global generator, which
would break reproducibility from an explicit key. Under eager ``vmap`` and
``jvp`` the explicit path is used too: the fused CPU kernels have no batching or
forward-mode rules there.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .._functorch import under_transform
from ..random import Key, split
from ..tree import Params
from . import dropout, linear

__all__ = [
    "additive_mask",
    "per_layer_head_masks",
    "split_heads",
    "merge_heads",
    "repeat_kv",
    "dot_product_attention",
    "init_self_attention",
    "apply_self_attention",
]

MASK_VALUE = -10000.0
"""Additive bias for masked keys, as in pytorch-transformers 1.0 (safe in float16)."""


def additive_mask(mask: Tensor, dtype: torch.dtype) -> Tensor:
    """Turn a keep-mask (batch, key_len), 1 = attend, into a bias (batch, 1, 1, key_len).

    Masked keys get ``-10000``, kept keys ``0``, in ``dtype``.
    """
    if mask.dim() != 2:
        raise ValueError(f"attention_mask must have shape (batch, seq), got {tuple(mask.shape)}")
    keep = mask[:, None, None, :].to(dtype)
    return (1.0 - keep) * MASK_VALUE


def per_layer_head_masks(head_mask: Tensor | None, num_layers: int, dtype: torch.dtype) -> list:
    """Split a head_mask of shape (heads,) or (layers, heads) into per-layer (heads, 1, 1)
    masks in ``dtype`` (1 keeps a head); ``[None] * num_layers`` when there is none."""
    if head_mask is None:
        return [None] * num_layers
    if head_mask.dim() == 1:
        head_mask = head_mask.expand(num_layers, -1)
    if head_mask.dim() != 2 or head_mask.shape[0] != num_layers:
        raise ValueError(
            f"head_mask must have shape (num_heads,) or ({num_layers}, num_heads), "
            f"got {tuple(head_mask.shape)}"
        )
    return list(head_mask.to(dtype)[:, :, None, None].unbind(0))


def split_heads(x: Tensor, head_dim: int) -> Tensor:
    """(batch, seq, heads*head_dim) -> (batch, heads, seq, head_dim).

    The head count follows from the width, so pruned layers need no bookkeeping.
    """
    b, s, d = x.shape
    return x.reshape(b, s, d // head_dim, head_dim).transpose(1, 2)


def merge_heads(x: Tensor) -> Tensor:
    """(batch, heads, seq, dim) -> (batch, seq, heads*dim)."""
    b, h, s, d = x.shape
    return x.transpose(1, 2).reshape(b, s, h * d)


def repeat_kv(x: Tensor, heads: int) -> Tensor:
    """(..., kv_heads, seq, head_dim) -> (..., heads, seq, head_dim), each key/value head
    repeated for the ``heads // kv_heads`` query heads of its group (x itself when equal).

    Raises:
        ValueError: ``heads`` is not a multiple of the key/value head count.
    """
    groups = _groups(x.shape[-3], heads)
    if groups == 1:
        return x
    return x.repeat_interleave(groups, dim=-3)


def _groups(kv_heads: int, heads: int) -> int:
    """Query heads per key/value head; ValueError unless ``kv_heads`` divides ``heads``
    (equal counts, zero included for a layer whose heads are all pruned, are one group)."""
    if kv_heads == heads:
        return 1
    if kv_heads == 0 or heads % kv_heads:
        raise ValueError(
            f"grouped-query attention needs the query heads ({heads}) to be a multiple of the "
            f"key/value heads ({kv_heads})"
        )
    return heads // kv_heads


def _fused_kernel_ok() -> bool:
    """False inside eager ``vmap``/``jvp``, where the fused CPU kernels lack batching
    and forward-mode rules and would fall back to a slow per-example loop or fail."""
    return not under_transform("Vmap", "Jvp")


def dot_product_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    bias: Tensor | None = None,
    is_causal: bool = False,
    scale: float | None = None,
    dropout_rate: float = 0.0,
    head_mask: Tensor | None = None,
    need_weights: bool = False,
    key: Key | None = None,
    train: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """Scaled dot-product attention.

    Args:
        q: (batch, heads, q_len, head_dim).
        k, v: (batch, heads, k_len, head_dim).
        bias: additive, broadcastable to (batch, heads, q_len, k_len).
        is_causal: mask keys after each query (q_len == k_len).
        scale: defaults to 1/sqrt(head_dim).
        dropout_rate: on the probabilities, in training only (needs ``key``).
        head_mask: broadcastable to (batch, heads, 1, 1); multiplies the
            probabilities after dropout (1 = keep), as in the seed.
        need_weights: also return the probabilities.

    Grouped-query attention: ``k`` and ``v`` may have fewer heads than ``q`` (a divisor of
    its head count, ``num_key_value_heads``); each key/value head then serves
    ``heads // kv_heads`` consecutive query heads, as in Llama and Mistral. The fused kernel
    reads the shared heads in place (``enable_gqa``: on 2 CPU cores, 8 x 256 tokens with 12
    query and 4 key/value heads, 34 ms against 50 ms with the heads repeated first); the
    explicit path repeats them.

    Returns:
        ``(context (batch, heads, q_len, head_dim), probs or None)``.
    """
    drop = train and dropout_rate > 0.0
    if not need_weights and head_mask is None and not drop and _fused_kernel_ok():
        grouped = {"enable_gqa": True} if _groups(k.shape[-3], q.shape[-3]) > 1 else {}
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=bias, is_causal=is_causal, scale=scale, **grouped
        )
        return out, None
    k, v = repeat_kv(k, q.shape[-3]), repeat_kv(v, q.shape[-3])
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    scores = torch.matmul(q, k.transpose(-1, -2)) * scale
    if is_causal:
        q_len, k_len = scores.shape[-2:]
        causal = torch.ones(q_len, k_len, dtype=torch.bool, device=q.device).tril(k_len - q_len)
        scores = scores.masked_fill(~causal, torch.finfo(scores.dtype).min)
    if bias is not None:
        scores = scores + bias
    probs = torch.softmax(
        scores, dim=-1, dtype=torch.promote_types(scores.dtype, torch.float32)
    ).to(q.dtype)
    probs = dropout.apply(probs, dropout_rate, key=key, train=train)
    if head_mask is not None:
        probs = probs * head_mask
    return torch.matmul(probs, v), probs


def init_self_attention(key: Key, dim: int, *, std: float = 0.02) -> Params:
    """``query``, ``key``, ``value`` dense layers (dim -> dim), BERT layout.

    Pruned layers keep this layout with fewer output rows (heads * head_dim).
    """
    kq, kk, kv = split(key, 3)
    return {
        "query": linear.init(kq, dim, dim, std=std),
        "key": linear.init(kk, dim, dim, std=std),
        "value": linear.init(kv, dim, dim, std=std),
    }


def apply_self_attention(
    params: Params,
    x: Tensor,
    *,
    head_dim: int,
    bias: Tensor | None = None,
    dropout_rate: float = 0.0,
    head_mask: Tensor | None = None,
    need_weights: bool = False,
    key: Key | None = None,
    train: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """Self-attention over x (batch, seq, dim) -> (context (batch, seq, dim), probs or None).

    The three projections run as three matmuls: concatenating the weights into one would
    copy them on every call (the params are a pure input), which costs more than it saves
    below a few thousand tokens (1x128: 7%, 8x128: 25% of the projection-and-attention time).
    """
    q, k, v = (
        split_heads(linear.apply(params[name], x), head_dim) for name in ("query", "key", "value")
    )
    context, probs = dot_product_attention(
        q,
        k,
        v,
        bias=bias,
        dropout_rate=dropout_rate,
        head_mask=head_mask,
        need_weights=need_weights,
        key=key,
        train=train,
    )
    return merge_heads(context), probs
