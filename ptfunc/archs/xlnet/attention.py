"""XLNet's two-stream relative attention and its masks, batch-first.

A score between query ``i`` and key ``j`` is
``((q_i + r_w_bias)·k_j + (q_i + r_r_bias)·r_{i-j} + (q_i + r_s_bias)·s_{ij}) / sqrt(d_head)``:
content, relative position (a sinusoid of the distance, through ``r``) and
relative segment (``seg_embed[0]`` for keys in the query's segment, ``[1]``
otherwise). The content term runs through
:func:`ptfunc.layers.attention.dot_product_attention` (the fused kernel when
no probabilities are needed); the position and segment terms and the mask
enter it as one additive bias.

Masked scores get ``-1e30`` as in the seed, so a fully masked row (a query-stream
position that may see nothing) is uniform over its keys, as there. In float16,
where 1e30 overflows, the mask is ``-65500`` (today's ``transformers``); such a
row is then only close to uniform.

Params of one layer (the seed's names)::

    rel_attn.{q,k,v,o,r}           (d_model, n_head, d_head), no bias
    rel_attn.{r_w,r_r,r_s}_bias    (n_head, d_head)
    rel_attn.seg_embed             (2, n_head, d_head)
    rel_attn.layer_norm
    ff.layer_1 (d_model -> d_inner), ff.layer_2, ff.layer_norm
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ...layers import (
    attention,
    feed_forward,
    layer_norm,
    linear,
    question_answering,
    residual,
)
from ...layers.initializers import normal
from ...layers.relative_position import rel_shift, sinusoid_table
from ...random import Key, split, split_for_dropout
from ...tree import Params
from .config import XLNetConfig

__all__ = [
    "init_layer",
    "apply_layer",
    "attention_masks",
    "positional_encoding",
    "segment_differs",
]


def init_layer(key: Key, c: XLNetConfig) -> Params:
    """One layer's ``rel_attn`` and ``ff`` params: weights normal(0, initializer_range),
    biases of the dense layers zero, LayerNorms ones/zeros (float32)."""
    keys = split(key, 11)
    std, d, n, dh = c.initializer_range, c.d_model, c.n_head, c.d_head
    proj = {name: normal(k, (d, n, dh), std=std) for name, k in zip("qkvor", keys[:5])}
    rel_attn = {
        **proj,
        "r_r_bias": normal(keys[5], (n, dh), std=std),
        "r_s_bias": normal(keys[6], (n, dh), std=std),
        "r_w_bias": normal(keys[7], (n, dh), std=std),
        "seg_embed": normal(keys[8], (2, n, dh), std=std),
        "layer_norm": layer_norm.init(d),
    }
    ff = {
        "layer_norm": layer_norm.init(d),
        "layer_1": linear.init(keys[9], d, c.d_inner, std=std),
        "layer_2": linear.init(keys[10], c.d_inner, d, std=std),
    }
    return {"rel_attn": rel_attn, "ff": ff}


# -- encodings and masks (computed once per call, shared by the layers) -------------------------


def positional_encoding(
    c: XLNetConfig, q_len: int, k_len: int, batch: int, dtype: torch.dtype, device: torch.device
) -> Tensor:
    """Sinusoid embeddings of the relative distances ``k_len, k_len - 1, ...`` down to
    ``-q_len + 1`` (``attn_type="bi"``) or 0 (``"uni"``), clamped to ``±clamp_len``.

    Returns:
        (n_dist, d_model) in ``dtype``; with ``bi_data`` (batch, n_dist, d_model):
        forward distances for the first half of the batch, negated ones for the second.
    """
    end = -q_len if c.attn_type == "bi" else -1
    fwd = torch.arange(k_len, end, -1.0, device=device)
    tables = [fwd, -fwd] if c.bi_data else [fwd]
    if c.clamp_len > 0:
        tables = [t.clamp(-c.clamp_len, c.clamp_len) for t in tables]
    tables = [sinusoid_table(t, c.d_model).to(dtype) for t in tables]
    if not c.bi_data:
        return tables[0]
    if batch % 2:
        raise ValueError(f"bi_data needs an even batch size (two halves), got {batch}")
    half = batch // 2
    return torch.cat([t.expand(half, -1, -1) for t in tables])


def segment_differs(token_type_ids: Tensor | None, mem_len: int) -> Tensor | None:
    """(b, q) segment ids -> (b, 1, q, mem_len + q) bool: key j is in another segment
    than query i (memories count as segment 0)."""
    if token_type_ids is None:
        return None
    keys = token_type_ids
    if mem_len:
        keys = torch.cat([token_type_ids.new_zeros(token_type_ids.shape[0], mem_len), keys], 1)
    return (token_type_ids[:, :, None] != keys[:, None, :])[:, None]


def attention_masks(
    c: XLNetConfig,
    q_len: int,
    mem_len: int,
    input_mask: Tensor | None,
    perm_mask: Tensor | None,
    dtype: torch.dtype,
    device: torch.device,
) -> tuple[Tensor | None, Tensor | None]:
    """Additive masks of the content stream and the query stream, (b or 1, 1, q, mem + q).

    A key is masked for the query stream when the causal mask (``"uni"``, with
    ``same_length``), ``input_mask`` (b, q) (1 = padding) or ``perm_mask`` (b, q, q)
    (1 = i may not see j) says so (their sum > 0, as in the seed); memories are
    always visible. The content stream may also see its own token. Masked
    entries hold ``-1e30`` (``-65500`` in float16), others 0. ``(None, None)``
    when nothing is masked.
    """
    k_len = mem_len + q_len
    total: Tensor | None = None
    if c.attn_type == "uni":
        i = torch.arange(q_len, device=device)[:, None]
        j = torch.arange(k_len, device=device)[None, :]
        causal = j > i + mem_len
        if c.same_length:
            causal = causal | (j < i)
        total = causal.to(torch.float32)[None]
    data = None
    if input_mask is not None:
        data = input_mask[:, None, :].to(torch.float32)
    if perm_mask is not None:
        pm = perm_mask.to(torch.float32)
        data = pm if data is None else data + pm
    if data is not None:
        data = torch.nn.functional.pad(data, (mem_len, 0))
        total = data if total is None else total + data
    if total is None:
        return None, None
    masked_g = total > 0
    own = torch.arange(q_len, device=device)[:, None] + mem_len == torch.arange(
        k_len, device=device
    )
    masked_h = masked_g & ~own
    big = question_answering.large_value(dtype)
    return _additive(masked_h, big, dtype), _additive(masked_g, big, dtype)


def _additive(masked: Tensor, big: float, dtype: torch.dtype) -> Tensor:
    """(b, i, j) bool -> (b, 1, i, j) additive mask in ``dtype``."""
    return (masked.to(dtype) * -big)[:, None]


# -- the layer ----------------------------------------------------------------------------------


def _heads(x: Tensor, w: Tensor) -> Tensor:
    """x (b, s, d_model) through w (d_model, n, dh) -> (b, n, s, dh)."""
    d, n, dh = w.shape
    return attention.split_heads(x @ w.reshape(d, n * dh), dh)


def _core(
    p: Params,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    k_r: Tensor,
    seg: Tensor | None,
    mask: Tensor | None,
    *,
    head_mask: Tensor | None,
    need_weights: bool,
    rate: float,
    key: Key | None,
    train: bool,
) -> tuple[Tensor, Tensor | None]:
    """Relative attention of q (b, n, i, dh) over k, v (b, n, j, dh).

    k_r: (n, n_dist, dh) or (b, n, n_dist, dh) position keys; seg: (b, 1, i, j) bool;
    mask: additive (b or 1, 1, i, j). Returns context (b, n, i, dh) and probs.
    """
    q_len, k_len = q.shape[-2], k.shape[-2]
    scale = q.shape[-1] ** -0.5
    position = rel_shift((q + p["r_r_bias"][:, None]) @ k_r.transpose(-1, -2), k_len, q_len)
    bias = position
    if seg is not None:
        both = torch.einsum("bnid,snd->bnis", q + p["r_s_bias"][:, None], p["seg_embed"])
        bias = bias + torch.where(seg, both[..., 1:], both[..., :1])
    bias = bias * scale
    if mask is not None:
        bias = bias + mask
    return attention.dot_product_attention(
        q + p["r_w_bias"][:, None],
        k,
        v,
        bias=bias,
        scale=scale,
        dropout_rate=rate,
        head_mask=head_mask,
        need_weights=need_weights,
        key=key,
        train=train,
    )


def _post_attention(
    p: Params, x: Tensor, context: Tensor, c: XLNetConfig, key: Key | None, train: bool
) -> Tensor:
    """LayerNorm(x + dropout(o-projection of the context (b, n, s, dh))) -> (b, s, d)."""
    w = p["o"]
    out = attention.merge_heads(context) @ w.reshape(w.shape[0], -1).t()
    return residual.post_norm(
        p["layer_norm"], out, x, eps=c.layer_norm_eps, dropout_rate=c.dropout, key=key, train=train
    )


def _feed_forward(
    p: Params,
    x: Tensor,
    c: XLNetConfig,
    act: Callable[[Tensor], Tensor],
    keys: list[Key | None],
    train: bool,
) -> Tensor:
    """LayerNorm(x + dropout(layer_2(dropout(act(layer_1(x))))))."""
    h = feed_forward.apply(
        p["layer_1"],
        p["layer_2"],
        x,
        activation=act,
        inner_dropout=c.dropout,
        key=keys[0],
        train=train,
    )
    return residual.post_norm(
        p["layer_norm"],
        h,
        x,
        eps=c.layer_norm_eps,
        dropout_rate=c.dropout,
        key=keys[1],
        train=train,
    )


def apply_layer(
    params: Params,
    c: XLNetConfig,
    h: Tensor,
    g: Tensor | None,
    *,
    mem: Tensor | None,
    pos_emb: Tensor,
    seg: Tensor | None,
    mask_h: Tensor | None,
    mask_g: Tensor | None,
    target_mapping: Tensor | None,
    head_mask: Tensor | None,
    act: Callable[[Tensor], Tensor],
    need_weights: bool,
    key: Key | None,
    train: bool,
) -> tuple[Tensor, Tensor | None, tuple[Tensor, ...]]:
    """One XLNet layer over the content stream h (b, q, d) and query stream g (b, m, d).

    Args:
        mem: (b, mem_len, d) memory, batch-first, or None.
        pos_emb: (n_dist, d) or (b, n_dist, d) from :func:`positional_encoding`.
        seg: from :func:`segment_differs`; mask_h, mask_g: from :func:`attention_masks`.
        target_mapping: (b, m, q) float: query-stream position m predicts token
            ``sum_l target_mapping[m, l] * l``; None when g has one row per token.
        head_mask: (n_head, 1, 1) or None, multiplies both streams' probabilities.

    Returns:
        ``(h, g or None, probs)``: probs is ``(h_probs,)`` or ``(h_probs, g_probs)``
        (each (b, n, q, mem_len + q)) when ``need_weights``, else ``()``.
    """
    p = params["rel_attn"]
    keys = split_for_dropout(key, 8, train)
    cat = h if mem is None else torch.cat([mem, h], dim=1)
    d, n, dh = p["k"].shape
    kv = cat @ torch.cat([p["k"].reshape(d, n * dh), p["v"].reshape(d, n * dh)], dim=1)
    k, v = (attention.split_heads(t, dh) for t in kv.chunk(2, dim=-1))
    k_r = pos_emb @ p["r"].reshape(d, n * dh)
    k_r = k_r.unflatten(-1, (n, dh)).transpose(-3, -2)  # (..., n, n_dist, dh)
    common = dict(head_mask=head_mask, need_weights=need_weights, rate=c.dropout, train=train)

    ctx_h, probs_h = _core(p, _heads(h, p["q"]), k, v, k_r, seg, mask_h, key=keys[0], **common)
    out_h = _post_attention(p, h, ctx_h, c, keys[1], train)
    out_h = _feed_forward(params["ff"], out_h, c, act, keys[2:4], train)
    probs: tuple[Tensor, ...] = (probs_h,) if need_weights else ()
    if g is None:
        return out_h, None, probs

    q_g = _heads(g, p["q"])
    if target_mapping is not None:
        q_g = torch.einsum("bml,bnmd->bnld", target_mapping.to(q_g.dtype), q_g)
    ctx_g, probs_g = _core(p, q_g, k, v, k_r, seg, mask_g, key=keys[4], **common)
    if target_mapping is not None:
        ctx_g = torch.einsum("bml,bnld->bnmd", target_mapping.to(ctx_g.dtype), ctx_g)
    out_g = _post_attention(p, g, ctx_g, c, keys[5], train)
    out_g = _feed_forward(params["ff"], out_g, c, act, keys[6:8], train)
    if need_weights:
        probs = (probs_h, probs_g)
    return out_h, out_g, probs
