"""GPT-NeoX (Black et al., 2022) and the Pythia suite: a pre-LN decoder with partial rotary
positions, a fused per-head ``query_key_value`` projection and (by default) parallel residuals.

Params tree (the hub checkpoints' names)::

    embed_in.weight (V, d), final_layer_norm.{weight, bias}
    layers[i].input_layernorm, layers[i].post_attention_layernorm   (LayerNorms)
    layers[i].attention.query_key_value (d -> 3d), layers[i].attention.dense (d -> d)
    layers[i].mlp.dense_h_to_4h (d -> d_ff), layers[i].mlp.dense_4h_to_h (d_ff -> d)

under ``gpt_neox`` in the head models, with ``embed_out.weight`` (V, d) for the LM head (the
name of the Pythia files; transformers 5 calls it ``lm_head`` and either name loads).
``query_key_value``'s output is laid out per head, ``[q | k | v]`` of ``head_dim`` each.

The loop, the caches, masks and positions are the shared decoder's
(:func:`ptfunc.archs.decoder.model.decoder`, with :data:`NEOX` as its
:class:`~ptfunc.archs.decoder.model.StackSpec`): ``past``/``presents`` are one
``(2, b, heads, length, head_dim)`` tensor per layer, static with ``cache_position``.
"""

from __future__ import annotations

from torch import Tensor

from ...layers import activations, dropout, embedding, layer_norm, linear, rotary_attention
from ...random import Key, split, split_for_dropout
from ...tree import Params
from ..decoder.heads import DecoderForCausalLM, DecoderForSequenceClassification, DecoderModel
from ..decoder.model import StackSpec
from .config import GPTNeoXConfig

__all__ = [
    "GPTNeoXModel",
    "GPTNeoXForCausalLM",
    "GPTNeoXForSequenceClassification",
    "init_layer",
    "init_gpt_neox",
    "NEOX",
]


def init_layer(key: Key, c: GPTNeoXConfig) -> Params:
    """One block: two LayerNorms, attention (``query_key_value``, ``dense``), MLP."""
    kq, ko, ki, kd = split(key, 4)
    d, std, bias = c.hidden_size, c.initializer_range, c.attention_bias
    return {
        "input_layernorm": layer_norm.init(d),
        "post_attention_layernorm": layer_norm.init(d),
        "attention": {
            "query_key_value": linear.init(kq, d, 3 * d, bias=bias, std=std),
            "dense": linear.init(ko, d, d, bias=bias, std=std),
        },
        "mlp": {
            "dense_h_to_4h": linear.init(ki, d, c.intermediate_size, std=std),
            "dense_4h_to_h": linear.init(kd, c.intermediate_size, d, std=std),
        },
    }


def init_gpt_neox(key: Key, c: GPTNeoXConfig) -> Params:
    """``embed_in``, the layers, ``final_layer_norm``."""
    ke, kl = split(key)
    return {
        "embed_in": embedding.init(ke, c.vocab_size, c.hidden_size, std=c.initializer_range),
        "layers": [init_layer(k, c) for k in split(kl, c.num_hidden_layers)],
        "final_layer_norm": layer_norm.init(c.hidden_size),
    }


def _attention(c, p, x, cos, sin, layer_past, cache_position, bias, want_att, key, train):
    """Fused per-head q/k/v -> rotary attention -> ``dense``."""
    b, s, _ = x.shape
    qkv = linear.apply(p["query_key_value"], x).reshape(b, s, -1, 3 * c.head_dim)
    q, k, v = qkv.transpose(1, 2).chunk(3, dim=-1)
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
    return linear.apply(p["dense"], context), present, probs


def _layer(c, p, x, cos, sin, layer_past, cache_position, bias, want_att, key, train):
    """Parallel residual ``x + attn(ln1(x)) + mlp(ln2(x))``, or sequential when
    ``use_parallel_residual`` is False; ``hidden_dropout`` on both branches."""
    k_attn, k_a, k_m = split_for_dropout(key, 3, train)
    eps = c.layer_norm_eps
    a, present, probs = _attention(
        c,
        p["attention"],
        layer_norm.apply(p["input_layernorm"], x, eps=eps),
        cos,
        sin,
        layer_past,
        cache_position,
        bias,
        want_att,
        k_attn,
        train,
    )
    a = dropout.apply(a, c.hidden_dropout, key=k_a, train=train)
    mlp_in = x if c.use_parallel_residual else x + a
    m = layer_norm.apply(p["post_attention_layernorm"], mlp_in, eps=eps)
    act = activations.get(c.hidden_act)
    m = linear.apply(p["mlp"]["dense_4h_to_h"], act(linear.apply(p["mlp"]["dense_h_to_4h"], m)))
    m = dropout.apply(m, c.hidden_dropout, key=k_m, train=train)
    return (m + a + x if c.use_parallel_residual else m + mlp_in), present, probs


def _final_norm(c: GPTNeoXConfig, p: Params, x: Tensor) -> Tensor:
    return layer_norm.apply(p, x, eps=c.layer_norm_eps)


NEOX = StackSpec("embed_in", "final_layer_norm", _final_norm, _layer, "hidden_dropout")
"""GPT-NeoX's stack for the shared decoder loop."""


class _NeoX:
    """GPT-NeoX's names and stack (mixed into the shared decoder classes)."""

    config_class = GPTNeoXConfig
    base_model_prefix = "gpt_neox"
    token_embedding_path = ("embed_in", "weight")
    ignored_checkpoint_keys = ("attention.bias", "attention.masked_bias", "rotary_emb.inv_freq")
    stack = NEOX
    init_stack = staticmethod(init_gpt_neox)


class GPTNeoXModel(_NeoX, DecoderModel):
    __doc__ = DecoderModel.__doc__


class GPTNeoXForCausalLM(_NeoX, DecoderForCausalLM):
    __doc__ = DecoderForCausalLM.__doc__
    lm_head_name = "embed_out"
    checkpoint_aliases = {"lm_head.weight": "embed_out.weight"}


class GPTNeoXForSequenceClassification(_NeoX, DecoderForSequenceClassification):
    __doc__ = DecoderForSequenceClassification.__doc__
