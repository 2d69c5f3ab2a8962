"""ALBERT's base model: factorised embeddings, one params subtree per layer group reused
at every step of the stack, and the pooler.

Params tree (names of the transformers state dict)::

    embeddings.{word,position,token_type}_embeddings.weight, embeddings.LayerNorm   (width E)
    encoder.embedding_hidden_mapping_in                                            (E -> H)
    encoder.albert_layer_groups[g].albert_layers[i]
        .attention.{query,key,value,dense,LayerNorm}, .ffn, .ffn_output, .full_layer_layer_norm
    pooler                                                                         (H -> H)

Step ``l`` of ``num_hidden_layers`` runs every inner layer of group
``config.group_of_layer(l)``: the same tensors appear several times in the list of layer
calls, so ``grad`` sums each shared tensor's gradient over its uses, ``vmap`` over params
maps the one subtree, and ``remat=True`` recomputes each call from its own input.

``head_mask`` (heads,) or (num_hidden_layers, heads) is per step, not per params group:
row ``l`` multiplies the attention probabilities of step ``l``'s calls (each of its
``inner_group_num`` inner layers), so a head can be silenced at one step while its shared
weights still serve the others. Heads cannot be pruned (the weights are shared).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from ...layers import activations, attention, feed_forward, layer_norm, linear, residual
from ...random import Key, split, split_for_dropout
from ...tree import Params
from .. import outputs
from ..bert.model import Encoded, init_pooler
from ..bert.model import pool as bert_pool
from ..electra.model import (
    ENCODER_OPTIONS,
    EncoderModel,
    LayerFn,
    embed_and_run,
    init_narrow_embeddings,
)
from ..model import make_output
from .config import AlbertConfig

__all__ = ["AlbertModel", "ALBERT_OPTIONS", "init_base", "init_layer", "encode", "layer_calls"]

ALBERT_OPTIONS = ENCODER_OPTIONS
"""The encoder options ALBERT takes: BERT's, ``head_mask`` included (transformers 5 has
none for ALBERT; ptfunc's is per step, see :func:`encode`)."""


def init_layer(key: Key, c: AlbertConfig) -> Params:
    """One ``AlbertLayer``: attention (with its output dense and LayerNorm) and the FFN."""
    ka, kd, kf, ko = split(key, 4)
    h, std = c.hidden_size, c.initializer_range
    return {
        "full_layer_layer_norm": layer_norm.init(h),
        "attention": {
            **attention.init_self_attention(ka, h, std=std),
            "dense": linear.init(kd, h, h, std=std),
            "LayerNorm": layer_norm.init(h),
        },
        "ffn": linear.init(kf, h, c.intermediate_size, std=std),
        "ffn_output": linear.init(ko, c.intermediate_size, h, std=std),
    }


def init_base(key: Key, c: AlbertConfig, *, pooler: bool = True) -> Params:
    """Embeddings, the mapping to ``hidden_size``, ``num_hidden_groups`` groups of
    ``inner_group_num`` layers, and (``pooler=True``) the pooler."""
    if c.pruned_heads:
        raise ValueError("ALBERT models do not support pruned heads (config.pruned_heads)")
    ke, km, kl, kp = split(key, 4)
    embeddings = init_narrow_embeddings(ke, c)
    mapping = linear.init(km, c.embedding_size, c.hidden_size, std=c.initializer_range)
    group_keys = split(kl, c.num_hidden_groups)
    groups = [
        {"albert_layers": [init_layer(k, c) for k in split(kg, c.inner_group_num)]}
        for kg in group_keys
    ]
    params = {
        "embeddings": embeddings,
        "encoder": {"embedding_hidden_mapping_in": mapping, "albert_layer_groups": groups},
    }
    if pooler:
        params["pooler"] = init_pooler(kp, c)["dense"]
    return params


def albert_layer(c: AlbertConfig, want_att: bool, train: bool) -> LayerFn:
    """``AlbertLayer``: LayerNorm(x + dropout(dense(attention(x)))) -> a, then
    full_layer_layer_norm(a + ffn_output(act(ffn(a)))) (no dropout on the FFN, as
    transformers)."""
    act = activations.get(c.hidden_act)

    def layer_fn(p: Params, x: Tensor, bias: Tensor | None, head: Tensor | None, k: Key):
        k_attn, k_out = split_for_dropout(k, 2, train)
        attn = p["attention"]
        context, probs = attention.apply_self_attention(
            attn, x, head_dim=c.head_dim, bias=bias, dropout_rate=c.attention_probs_dropout_prob,
            head_mask=head, need_weights=want_att, key=k_attn, train=train,
        )  # fmt: skip
        a = residual.post_norm(
            attn["LayerNorm"], linear.apply(attn["dense"], context), x, eps=c.layer_norm_eps,
            dropout_rate=c.hidden_dropout_prob, key=k_out, train=train,
        )  # fmt: skip
        h = feed_forward.apply(p["ffn"], p["ffn_output"], a, activation=act)
        return layer_norm.apply(p["full_layer_layer_norm"], h + a, eps=c.layer_norm_eps), probs

    return layer_fn


def layer_calls(c: AlbertConfig, encoder: Params) -> list[Params]:
    """The layer params of every call, in order: ``num_hidden_layers * inner_group_num``
    entries, each one of the shared subtrees (not a copy)."""
    groups = encoder["albert_layer_groups"]
    return [
        layer
        for step in range(c.num_hidden_layers)
        for layer in groups[c.group_of_layer(step)]["albert_layers"]
    ]


def encode(
    c: AlbertConfig, params: Params, input_ids: Tensor, *, key: Key | None, train: bool, **options
) -> Encoded:
    """input_ids (b, s) -> (b, s, hidden_size); ``hidden_states`` holds the mapped
    embeddings and the output of every layer call (``num_hidden_layers * inner_group_num``
    of them, as transformers records them), ``attentions`` one tensor per call.
    ``options["head_mask"]`` (heads,) or (num_hidden_layers, heads): row ``l`` multiplies
    the attention probabilities of every inner layer call of step ``l``."""
    encoder = params["encoder"]
    return embed_and_run(
        c, params["embeddings"], encoder["embedding_hidden_mapping_in"], layer_calls(c, encoder),
        albert_layer, input_ids, key=key, train=train, **options,
    )  # fmt: skip


def pool(pooler: Params, sequence_output: Tensor) -> Tensor:
    """tanh(pooler(first token)): (b, s, d) -> (b, d) (BERT's pooler, stored as one Linear)."""
    return bert_pool({"dense": pooler}, sequence_output)


class AlbertModel(EncoderModel):
    """The bare ALBERT encoder with pooler (``AlbertModel`` of transformers).

    ``apply(params, input_ids, *, attention_mask=None, token_type_ids=None,
    position_ids=None, head_mask=None, output_attentions=None, output_hidden_states=None,
    train=False, key=None, remat=False, validate=True)`` -> ``BaseModelOutputWithPooling(
    last_hidden_state (b, s, d), pooler_output (b, d), hidden_states, attentions)``.

    The options mean what they mean for :class:`~ptfunc.archs.bert.BertModel`;
    ``head_mask`` (heads,) or (num_hidden_layers, heads) masks each step's calls (see
    :func:`encode`). Heads cannot be pruned (the layer groups share their weights).
    """

    config_class = AlbertConfig
    base_model_prefix = "albert"
    options = ALBERT_OPTIONS
    encoder = staticmethod(encode)

    def init(self, key: Key) -> Params:
        return init_base(key, self.config)

    def output(self, params: Params, enc: Encoded) -> Any:
        pooled = pool(params["pooler"], enc.sequence_output)
        out = outputs.BaseModelOutputWithPooling
        return make_output(
            out, None, enc.sequence_output, pooled, enc.hidden_states, enc.attentions
        )
