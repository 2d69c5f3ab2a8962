"""One Transformer-XL layer: relative multi-head attention over [memory; segment], then FFN.

Params of a layer (names of pytorch-transformers 1.0's
``RelPartialLearnableDecoderLayer``; no biases in the attention projections)::

    dec_attn.qkv_net.weight (3 * n_head * d_head, d_model)
    dec_attn.r_net.weight   (n_head * d_head, d_model)
    dec_attn.o_net.weight   (d_model, n_head * d_head)
    dec_attn.layer_norm, dec_attn.r_w_bias / r_r_bias (n_head, d_head) when untie_r
    pos_ff.CoreNet.0 (d_model -> d_inner), pos_ff.CoreNet.3 (d_inner -> d_model), pos_ff.layer_norm

Scores (paper's terms, scaled by 1/sqrt(d_head)): content ``(q + r_w_bias) . k``
and position ``(q + r_r_bias) . r`` against the sinusoid table of distances
``klen-1 .. 0``, moved onto the keys by ``relative_position.rel_shift``. The
position term and the causal mask go to ``attention.dot_product_attention`` as
one additive bias, so the fused kernel runs whenever no probabilities are needed.

Tensors are batch-first inside ptfunc: x (b, s, d_model), memory (b, m, d_model).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor

from ...layers import (
    attention,
    dropout,
    feed_forward,
    initializers,
    layer_norm,
    linear,
    relative_position,
)
from ...layers.adaptive_embedding import Initializer
from ...random import Key, split, split_for_dropout
from ...tree import Params
from .config import TransfoXLConfig

__all__ = ["seed_initializers", "init_layer", "apply_layer", "attention_mask", "position_table"]


def seed_initializers(c: TransfoXLConfig) -> tuple[Initializer, Initializer]:
    """(weights, projections) initialisers of the seed: weights N(0, init_std), or
    U(-init_range, init_range) when ``init="uniform"``; projections N(0, proj_init_std)."""
    if c.init == "uniform":
        weight = functools.partial(initializers.uniform, low=-c.init_range, high=c.init_range)
    else:
        weight = functools.partial(initializers.normal, std=c.init_std)
    return weight, functools.partial(initializers.normal, std=c.proj_init_std)


def _layer_norm(key: Key, c: TransfoXLConfig) -> Params:
    """LayerNorm initialised as the seed does: weight ~ N(1, init_std), bias 0."""
    return {
        "weight": initializers.normal(key, (c.d_model,), mean=1.0, std=c.init_std),
        "bias": initializers.zeros((c.d_model,)),
    }


def init_layer(key: Key, c: TransfoXLConfig, init_weight: Initializer) -> Params:
    """A layer's params, initialised like the seed (see the module docstring for names)."""
    ks = split(key, 9)
    hd, d = c.n_head * c.d_head, c.d_model
    attn: Params = {
        "qkv_net": {"weight": init_weight(ks[0], (3 * hd, d))},
        "o_net": {"weight": init_weight(ks[1], (d, hd))},
        "r_net": {"weight": init_weight(ks[2], (hd, d))},
        "layer_norm": _layer_norm(ks[3], c),
    }
    if c.untie_r:
        attn["r_w_bias"] = init_weight(ks[4], (c.n_head, c.d_head))
        attn["r_r_bias"] = init_weight(ks[5], (c.n_head, c.d_head))
    core = {
        "0": {
            "weight": init_weight(ks[6], (c.d_inner, d)),
            "bias": initializers.zeros((c.d_inner,)),
        },
        "3": {"weight": init_weight(ks[7], (d, c.d_inner)), "bias": initializers.zeros((d,))},
    }
    return {"dec_attn": attn, "pos_ff": {"CoreNet": core, "layer_norm": _layer_norm(ks[8], c)}}


def attention_mask(
    c: TransfoXLConfig, q_len: int, mem_len: int, device: torch.device | None = None
) -> Tensor:
    """Bool (q_len, mem_len + q_len), True = masked: future keys, and with ``same_length``
    keys so far back that every query would see more than ``c.mem_len + 1`` of them."""
    k_len = mem_len + q_len
    i = torch.arange(q_len, device=device)[:, None]
    j = torch.arange(k_len, device=device)[None, :]
    mask = j > i + mem_len
    if c.same_length:
        excess = k_len - c.mem_len
        shift = q_len - excess if excess > 0 else q_len
        mask = mask | (j <= i - shift)
    return mask


def position_table(
    c: TransfoXLConfig, k_len: int, dtype: torch.dtype, device: torch.device | None = None
) -> Tensor:
    """Sinusoid embeddings (k_len, d_model) of distances ``k_len-1 .. 0``, clamped at clamp_len."""
    distances = torch.arange(k_len - 1, -1, -1.0, device=device, dtype=dtype)
    if c.clamp_len > 0:
        distances = distances.clamp(max=c.clamp_len)
    return relative_position.sinusoid_table(distances, c.d_model)


def _mask_value(dtype: torch.dtype) -> float:
    """-1e30 as in the seed, or the most negative finite value of a narrower dtype."""
    return max(-1e30, torch.finfo(dtype).min)


def _attention(
    c: TransfoXLConfig,
    p: Params,
    x: Tensor,
    memory: Tensor | None,
    pos: Tensor,
    *,
    mask: Tensor,
    r_biases: tuple[Tensor, Tensor],
    head_mask: Tensor | None,
    need_weights: bool,
    keys: list,
    train: bool,
) -> tuple[Tensor, Tensor | None]:
    """x (b, s, d), memory (b, m, d) or None -> (output (b, s, d), probs (b, H, s, m+s) or None)."""
    r_w_bias, r_r_bias = r_biases
    b, s, _ = x.shape
    cat = x if memory is None else torch.cat([memory, x], dim=1)
    k_len = cat.shape[1]
    if c.pre_lnorm:
        cat = layer_norm.apply(p["layer_norm"], cat, eps=c.layer_norm_epsilon)
    q, k, v = linear.apply(p["qkv_net"], cat).chunk(3, dim=-1)
    q, k, v = (attention.split_heads(t, c.d_head) for t in (q[:, -s:], k, v))
    r = linear.apply(p["r_net"], pos).reshape(k_len, c.n_head, c.d_head).permute(1, 2, 0)
    scale = c.d_head**-0.5
    position = torch.matmul(q + r_r_bias[:, None, :], r)  # (b, H, s, distances)
    position = relative_position.rel_shift(position, k_len, s - 1) * scale
    bias = torch.where(mask, _mask_value(position.dtype), position)
    context, probs = attention.dot_product_attention(
        q + r_w_bias[:, None, :],
        k,
        v,
        bias=bias,
        scale=scale,
        dropout_rate=c.dropatt,
        head_mask=head_mask,
        need_weights=need_weights,
        key=keys[0],
        train=train,
    )
    out = linear.apply(p["o_net"], attention.merge_heads(context))
    out = dropout.apply(out, c.dropout, key=keys[1], train=train)
    if c.pre_lnorm:
        return x + out, probs
    return layer_norm.apply(p["layer_norm"], x + out, eps=c.layer_norm_epsilon), probs


def _feed_forward(c: TransfoXLConfig, p: Params, x: Tensor, keys: list, train: bool) -> Tensor:
    """CoreNet (Linear, ReLU, Dropout, Linear, Dropout) with a pre- or post-LN residual."""
    h = layer_norm.apply(p["layer_norm"], x, eps=c.layer_norm_epsilon) if c.pre_lnorm else x
    core = p["CoreNet"]
    h = feed_forward.apply(
        core["0"],
        core["3"],
        h,
        activation=F.relu,
        inner_dropout=c.dropout,
        key=keys[0],
        train=train,
    )
    h = dropout.apply(h, c.dropout, key=keys[1], train=train)
    if c.pre_lnorm:
        return x + h
    return layer_norm.apply(p["layer_norm"], x + h, eps=c.layer_norm_epsilon)


def apply_layer(
    c: TransfoXLConfig,
    p: Params,
    x: Tensor,
    *,
    memory: Tensor | None,
    pos: Tensor,
    mask: Tensor,
    r_w_bias: Tensor,
    r_r_bias: Tensor,
    head_mask: Tensor | None = None,
    need_weights: bool = False,
    key: Key | None = None,
    train: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """One layer over x (b, s, d_model) with ``memory`` (b, m, d_model) or None.

    Args:
        pos: (m + s, d_model) position table (after dropout).
        mask: bool (s, m + s), True = masked (:func:`attention_mask`).
        r_w_bias, r_r_bias: (n_head, d_head), the layer's own or the shared pair.
        head_mask: (n_head, 1, 1), multiplies the probabilities after dropout.

    Returns:
        ``(x (b, s, d_model), probs (b, n_head, s, m + s) or None)``.
    """
    keys = split_for_dropout(key, 4, train)
    x, probs = _attention(
        c,
        p["dec_attn"],
        x,
        memory,
        pos,
        mask=mask,
        r_biases=(r_w_bias, r_r_bias),
        head_mask=head_mask,
        need_weights=need_weights,
        keys=keys[:2],
        train=train,
    )
    return _feed_forward(c, p["pos_ff"], x, keys[2:], train), probs
