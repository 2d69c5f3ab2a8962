"""Self-attention with rotary positions, grouped key/value heads and a KV cache.

The part of today's decoder attention that does not depend on how a checkpoint lays out its
projections (Llama's separate ``q_proj``/``k_proj``/``v_proj``, GPT-NeoX's fused
``query_key_value``): rotate queries and keys (:mod:`ptfunc.layers.rotary`), write the keys and
values into the cache, attend (grouped-query when there are fewer key/value heads), merge heads.

The cache is one ``(2, batch, kv_heads, length, head_dim)`` tensor per layer (keys and values
stacked, GPT-2's layout in :mod:`ptfunc.layers.causal_attention`), holding *rotated* keys, so a
cached prefix is never rotated again. It grows (``past`` holds the positions so far) or is
static (``cache_position`` (s,) says which of a fixed number of slots the new entries fill).
"""

from __future__ import annotations

from torch import Tensor

from ..random import Key
from . import attention, causal_attention, rotary

__all__ = ["attend"]


def attend(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    cos: Tensor,
    sin: Tensor,
    *,
    past: Tensor | None = None,
    cache_position: Tensor | None = None,
    bias: Tensor | None = None,
    dropout_rate: float = 0.0,
    need_weights: bool = False,
    key: Key | None = None,
    train: bool = False,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Causal attention of rotated queries over rotated, cached keys.

    Args:
        q: (b, heads, s, head_dim) queries, not rotated yet.
        k, v: (b, kv_heads, s, head_dim); ``heads`` a multiple of ``kv_heads``.
        cos, sin: (b or 1, s, rotary_dim) from :func:`ptfunc.layers.rotary.cos_sin`.
        past: the layer's cache (2, b, kv_heads, P, head_dim), or None.
        cache_position: (s,) slots of a static ``past`` to write (see the module doc).
        bias: additive mask from :func:`ptfunc.layers.causal_attention.causal_bias` (or
            ``static_cache_bias``); None means plain causal attention over ``s`` keys.
        dropout_rate: on the probabilities, in training, with ``key``.
        need_weights: also return the probabilities (b, heads, s, keys).

    Returns:
        ``(context (b, s, heads * head_dim), present (2, b, kv_heads, keys, head_dim), probs)``.
    """
    q, k = rotary.apply(q, cos, sin), rotary.apply(k, cos, sin)
    k, v, present = causal_attention.update_cache(k, v, past, cache_position)
    context, probs = attention.dot_product_attention(
        q,
        k,
        v,
        bias=bias,
        is_causal=bias is None,
        dropout_rate=dropout_rate,
        need_weights=need_weights,
        key=key,
        train=train,
    )
    return attention.merge_heads(context), present, probs
