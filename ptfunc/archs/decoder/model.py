"""The Llama-style decoder stack shared by Llama, Mistral, Qwen2 and Qwen3.

Params tree (the checkpoints' names)::

    embed_tokens.weight (V, d), norm.weight (d,)
    layers[i].input_layernorm.weight, layers[i].post_attention_layernorm.weight
    layers[i].self_attn.{q_proj, k_proj, v_proj, o_proj}.{weight, bias?}
    layers[i].self_attn.{q_norm, k_norm}.weight       (Qwen3: RMSNorm per head)
    layers[i].mlp.{gate_proj, up_proj, down_proj}.{weight, bias?}

A block is pre-norm: ``x + attn(rms(x))``, then ``+ gated_mlp(rms(x))``. What differs
between the architectures is read from the config (:class:`~.config.DecoderConfig`): the
projection biases, QK-norm, the sliding window of each layer, the rotary scaling.

``past``/``presents``: one ``(2, b, kv_heads, length, head_dim)`` tensor per layer, GPT-2's
layout with the key/value head count, holding rotated keys; with ``cache_position`` (s,) the
cache is static (fixed length, slots written in place of; see
:mod:`ptfunc.layers.rotary_attention`).

Position ids default to ``past_len + arange(s)`` (``cache_position`` with a static cache) for
every row, padding or not, as in ``transformers``; pass ``position_ids`` for left-padded
batches (``ptfunc.generate`` does).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor

from ...layers import (
    activations,
    attention,
    causal_attention,
    dropout,
    embedding,
    gated_mlp,
    linear,
    rms_norm,
    rotary,
    rotary_attention,
)
from ...layers.remat import checkpoint
from ...random import Key, split, split_for_dropout
from ...tree import Params
from .. import inputs
from .config import DecoderConfig

__all__ = [
    "LLAMA",
    "StackSpec",
    "init_attention",
    "init_layer",
    "init_decoder",
    "decoder",
    "DecoderStack",
    "attention_biases",
]


def init_attention(key: Key, c: DecoderConfig) -> Params:
    """``q_proj`` (d -> heads * head_dim), ``k_proj``/``v_proj`` (d -> kv_heads * head_dim),
    ``o_proj`` (heads * head_dim -> d), biases as the config says; ``q_norm``/``k_norm``
    (head_dim,) with QK-norm."""
    kq, kk, kv, ko = split(key, 4)
    qkv_bias, o_bias = c.attention_biases()
    d, hd, std = c.hidden_size, c.head_dim, c.initializer_range
    q_out, kv_out = c.num_attention_heads * hd, c.num_key_value_heads * hd
    params = {
        "q_proj": linear.init(kq, d, q_out, bias=qkv_bias, std=std),
        "k_proj": linear.init(kk, d, kv_out, bias=qkv_bias, std=std),
        "v_proj": linear.init(kv, d, kv_out, bias=qkv_bias, std=std),
        "o_proj": linear.init(ko, q_out, d, bias=o_bias, std=std),
    }
    if c.qk_norm:
        params["q_norm"] = rms_norm.init(hd)
        params["k_norm"] = rms_norm.init(hd)
    return params


def init_layer(key: Key, c: DecoderConfig) -> Params:
    """One block: two RMSNorms, attention, gated MLP."""
    ka, km = split(key)
    d = c.hidden_size
    return {
        "input_layernorm": rms_norm.init(d),
        "self_attn": init_attention(ka, c),
        "post_attention_layernorm": rms_norm.init(d),
        "mlp": gated_mlp.init(
            km, d, c.intermediate_size, bias=c.has_mlp_bias, std=c.initializer_range
        ),
    }


def init_decoder(key: Key, c: DecoderConfig) -> Params:
    """``embed_tokens`` (the ``pad_token_id`` row zero, as ``transformers`` initialises it),
    the layers, the final ``norm``."""
    ke, kl = split(key)
    table = embedding.init(ke, c.vocab_size, c.hidden_size, std=c.initializer_range)
    if c.pad_token_id is not None:
        weight = table["weight"]
        table = {"weight": weight.index_fill(0, torch.tensor([c.pad_token_id]), 0.0)}
    return {
        "embed_tokens": table,
        "layers": [init_layer(k, c) for k in split(kl, c.num_hidden_layers)],
        "norm": rms_norm.init(c.hidden_size),
    }


class StackSpec(NamedTuple):
    """How an architecture's stack differs from Llama's around the shared loop of
    :func:`decoder`: the names of its embedding table and final norm, the norm itself, one
    layer's function, and the config field of the dropout on the embeddings (None: none).

    ``layer(c, p, x, cos, sin, layer_past, cache_position, bias, want_att, key, train)`` ->
    ``(x, present, probs)``; ``norm(c, p, x)`` -> x.
    """

    embed_name: str
    norm_name: str
    norm: Callable[..., Tensor]
    layer: Callable[..., tuple[Tensor, Tensor, Tensor | None]]
    embed_dropout: str | None = None


class DecoderStack(NamedTuple):
    """What :func:`decoder` returns: the final states (after ``norm``) and the per-layer
    caches, hidden states and attention probabilities (empty tuples unless asked for)."""

    last_hidden_state: Tensor
    presents: tuple[Tensor, ...]
    hidden_states: tuple[Tensor, ...]
    attentions: tuple[Tensor, ...]


def attention_biases(
    windows: tuple[int | None, ...],
    *,
    q_len: int,
    past: Any,
    cache_position: Tensor | None,
    attention_mask: Tensor | None,
    dtype: torch.dtype,
    device: torch.device,
) -> dict[int | None, Tensor | None]:
    """``{window: additive bias}`` for each distinct sliding window among ``windows`` (None:
    full causal attention), over a growing or a static cache (see
    :mod:`ptfunc.layers.causal_attention`)."""
    biases: dict[int | None, Tensor | None] = {}
    for window in dict.fromkeys(windows):
        if cache_position is not None:
            biases[window] = causal_attention.static_cache_bias(
                cache_position, past[0].shape[-2], attention_mask, dtype, device, window=window
            )
        else:
            past_len = 0 if past is None else past[0].shape[-2]
            biases[window] = causal_attention.causal_bias(
                q_len, past_len, attention_mask, dtype, device, window=window
            )
    return biases


def decoder(
    c: DecoderConfig,
    params: Params,
    input_ids: Tensor | None = None,
    *,
    inputs_embeds: Tensor | None = None,
    past: tuple[Tensor, ...] | None = None,
    cache_position: Tensor | None = None,
    attention_mask: Tensor | None = None,
    position_ids: Tensor | None = None,
    output_attentions: bool | None = None,
    output_hidden_states: bool | None = None,
    train: bool = False,
    key: Key | None = None,
    remat: bool = False,
    validate: bool = True,
    spec: StackSpec | None = None,
) -> DecoderStack:
    """input_ids (b, s) int64, or inputs_embeds (b, s, d) -> states (b, s, d) after ``norm``.

    ``attention_mask`` (b, past + s), 1 = attend (b, L with a static cache of L slots).
    ``position_ids`` (b or 1, s) override the default positions (see the module doc).
    ``remat=True`` recomputes each block's activations in the backward pass; ``train=True``
    applies the attention dropout with ``key``; ``validate=False`` skips the value checks of
    the inputs (:mod:`ptfunc.archs.inputs`). ``spec``: another architecture's names, norm
    and layer around the same loop (default: Llama's, :data:`LLAMA`).
    """
    spec = LLAMA if spec is None else spec
    dropout.require_key(train, key)
    inputs.check_past(past, c.num_hidden_layers, cache_position)
    static = cache_position is not None
    past_len = 0 if past is None or static else past[0].shape[-2]
    if (input_ids is None) == (inputs_embeds is None):
        raise ValueError("pass exactly one of input_ids (b, s) and inputs_embeds (b, s, d)")
    if input_ids is not None:
        b, s = inputs.check_input_ids(
            input_ids, vocab_size=c.vocab_size, past_len=past_len, validate=validate
        )
        x = embedding.apply(params[spec.embed_name], input_ids)
    else:
        if inputs_embeds.dim() != 3 or inputs_embeds.shape[-1] != c.hidden_size:
            raise ValueError(
                f"inputs_embeds must have shape (batch, seq, hidden_size={c.hidden_size}), "
                f"got {tuple(inputs_embeds.shape)}"
            )
        (b, s), x = inputs_embeds.shape[:2], inputs_embeds
    if not static:  # a static cache's mask (b, L) is checked by static_cache_bias
        inputs.check_per_token(
            "attention_mask", attention_mask, b, past_len + s, length_name="past + seq"
        )
    inputs.check_per_token("position_ids", position_ids, b, s, broadcast_batch=True)
    if position_ids is None:
        position_ids = (
            cache_position[None]
            if static
            else torch.arange(past_len, past_len + s, device=x.device)[None]
        )
    want_att = c.output_attentions if output_attentions is None else output_attentions
    want_hidden = c.output_hidden_states if output_hidden_states is None else output_hidden_states
    cos, sin = rotary.cos_sin(c.rotary(), position_ids, x.dtype)
    windows = c.sliding_windows()
    biases = attention_biases(
        windows,
        q_len=s,
        past=past,
        cache_position=cache_position,
        attention_mask=attention_mask,
        dtype=x.dtype,
        device=x.device,
    )
    keys = split_for_dropout(key, c.num_hidden_layers + 1, train)
    if spec.embed_dropout is not None:
        x = dropout.apply(x, getattr(c, spec.embed_dropout), key=keys[0], train=train)
    presents, hidden, probs_all = [], [], []

    def run_layer(p, x, layer_past, bias, cos, sin, k):
        return spec.layer(c, p, x, cos, sin, layer_past, cache_position, bias, want_att, k, train)

    for i, (layer, k) in enumerate(zip(params["layers"], keys[1:])):
        if want_hidden:
            hidden.append(x)
        layer_past = None if past is None else past[i]
        x, present, probs = checkpoint(
            run_layer, layer, x, layer_past, biases[windows[i]], cos, sin, k, enabled=remat
        )
        presents.append(present)
        if want_att:
            probs_all.append(probs)
    x = spec.norm(c, params[spec.norm_name], x)
    if want_hidden:
        hidden.append(x)
    return DecoderStack(x, tuple(presents), tuple(hidden), tuple(probs_all))


def _layer(c, p, x, cos, sin, layer_past, cache_position, bias, want_att, key, train):
    """Pre-norm block -> (x, present, probs)."""
    h = rms_norm.apply(p["input_layernorm"], x, eps=c.rms_norm_eps)
    out, present, probs = _self_attention(
        c, p["self_attn"], h, cos, sin, layer_past, cache_position, bias, want_att, key, train
    )
    x = x + out
    h = rms_norm.apply(p["post_attention_layernorm"], x, eps=c.rms_norm_eps)
    x = x + gated_mlp.apply(p["mlp"], h, activation=activations.get(c.hidden_act))
    return x, present, probs


def _self_attention(c, p, x, cos, sin, layer_past, cache_position, bias, want_att, key, train):
    """Projections (and QK-norm) around :func:`ptfunc.layers.rotary_attention.attend`."""
    hd = c.head_dim
    q = attention.split_heads(linear.apply(p["q_proj"], x), hd)
    k = attention.split_heads(linear.apply(p["k_proj"], x), hd)
    v = attention.split_heads(linear.apply(p["v_proj"], x), hd)
    if c.qk_norm:
        q = rms_norm.apply(p["q_norm"], q, eps=c.rms_norm_eps)
        k = rms_norm.apply(p["k_norm"], k, eps=c.rms_norm_eps)
    context, present, probs = rotary_attention.attend(
        q,
        k,
        v,
        cos,
        sin,
        past=layer_past,
        cache_position=cache_position,
        bias=bias,
        dropout_rate=c.attention_dropout,
        need_weights=want_att,
        key=key,
        train=train,
    )
    return linear.apply(p["o_proj"], context), present, probs


def _final_norm(c: DecoderConfig, p: Params, x: Tensor) -> Tensor:
    return rms_norm.apply(p, x, eps=c.rms_norm_eps)


LLAMA = StackSpec("embed_tokens", "norm", _final_norm, _layer)
"""Llama's stack: ``embed_tokens``, pre-norm blocks of :func:`_layer`, RMSNorm ``norm``."""
