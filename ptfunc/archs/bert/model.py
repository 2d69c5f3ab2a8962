"""BERT's base model: embeddings, the post-LN encoder stack and the pooler.

Params tree (names of the pytorch-transformers state dict)::

    embeddings.{word,position,token_type}_embeddings.weight, embeddings.LayerNorm
    encoder.layer[i].attention.self.{query,key,value}, .attention.output.{dense,LayerNorm},
                    .intermediate.dense, .output.{dense,LayerNorm}
    pooler.dense
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from ...layers import activations, attention, dropout, embedding, layer_norm, linear
from ...layers import transformer_block as block
from ...layers.remat import checkpoint
from ...random import Key, split, split_for_dropout
from ...tree import Params
from .. import inputs
from ..model import Model, make_output
from ..outputs import BaseModelOutputWithPooling
from ..prune import layer_head_masks
from .config import BertConfig
from .transforms import ParamTransforms, prune_layer_heads

__all__ = [
    "BertModel",
    "init_embeddings",
    "init_encoder",
    "init_pooler",
    "encode",
    "Encoded",
    "LayerFn",
    "run_layers",
]


def init_embeddings(key: Key, c: BertConfig) -> Params:
    """Word, position and token-type tables (normal(0, initializer_range)) and a LayerNorm."""
    kw, kp, kt = split(key, 3)
    std = c.initializer_range
    return {
        "word_embeddings": embedding.init(kw, c.vocab_size, c.hidden_size, std=std),
        "position_embeddings": embedding.init(
            kp, c.max_position_embeddings, c.hidden_size, std=std
        ),
        "token_type_embeddings": embedding.init(kt, c.type_vocab_size, c.hidden_size, std=std),
        "LayerNorm": layer_norm.init(c.hidden_size),
    }


def init_encoder(key: Key, c: BertConfig) -> Params:
    """``{"layer": [block params] * num_hidden_layers}``."""
    keys = split(key, c.num_hidden_layers)
    layers = [
        block.init(k, c.hidden_size, c.intermediate_size, std=c.initializer_range) for k in keys
    ]
    return {"layer": _prune_init(layers, c)}


def _prune_init(layers: list[Params], c: BertConfig) -> list[Params]:
    """Drop the heads that ``config.pruned_heads`` records, so shapes match a pruned checkpoint."""
    if not c.pruned_heads:
        return layers
    return [
        prune_layer_heads(p, c.pruned_heads.get(i, ()), (), c.head_dim)
        for i, p in enumerate(layers)
    ]


def init_pooler(key: Key, c: BertConfig) -> Params:
    """``{"dense": Linear(hidden, hidden)}``; applied with tanh to the first token."""
    return {"dense": linear.init(key, c.hidden_size, c.hidden_size, std=c.initializer_range)}


def _embed(
    c: BertConfig,
    p: Params,
    input_ids: Tensor,
    token_type_ids: Tensor | None,
    position_ids: Tensor | None,
    key: Key | None,
    train: bool,
) -> Tensor:
    """input_ids (b, s) -> embeddings (b, s, d)."""
    seq_len = input_ids.shape[1]
    x = embedding.apply(p["word_embeddings"], input_ids, padding_idx=c.pad_token_id)
    if position_ids is None:
        x = x + p["position_embeddings"]["weight"][:seq_len]
    else:
        x = x + embedding.apply(p["position_embeddings"], position_ids)
    if token_type_ids is None:
        x = x + p["token_type_embeddings"]["weight"][0]
    else:
        x = x + embedding.apply(p["token_type_embeddings"], token_type_ids)
    x = layer_norm.apply(p["LayerNorm"], x, eps=c.layer_norm_eps)
    return dropout.apply(x, c.hidden_dropout_prob, key=key, train=train)


def check_inputs(
    c: BertConfig,
    input_ids: Tensor,
    attention_mask: Tensor | None,
    token_type_ids: Tensor | None,
    position_ids: Tensor | None,
    head_mask: Tensor | None,
    validate: bool | None,
) -> None:
    """The shared input checks (:mod:`ptfunc.archs.inputs`) with BERT's sizes."""
    validate = validate is not False
    positions = c.max_position_embeddings
    b, s = inputs.check_input_ids(
        input_ids,
        vocab_size=c.vocab_size,
        max_positions=positions,
        positions_name="max_position_embeddings",
        validate=validate,
    )
    inputs.check_per_token("attention_mask", attention_mask, b, s)
    inputs.check_per_token(
        "token_type_ids",
        token_type_ids,
        b,
        s,
        upper=c.type_vocab_size,
        what="type_vocab_size",
        validate=validate,
    )
    inputs.check_per_token(
        "position_ids",
        position_ids,
        b,
        s,
        broadcast_batch=True,
        upper=positions,
        what="max_position_embeddings",
        validate=validate,
    )
    inputs.check_head_mask(
        head_mask, c.num_hidden_layers, c.num_attention_heads, pruned=bool(c.pruned_heads)
    )


class Encoded(NamedTuple):
    """What the encoder returns to the heads."""

    sequence_output: Tensor
    hidden_states: tuple[Tensor, ...]
    attentions: tuple[Tensor, ...]


def encode(
    c: BertConfig,
    params: Params,
    input_ids: Tensor,
    *,
    attention_mask: Tensor | None,
    token_type_ids: Tensor | None,
    position_ids: Tensor | None,
    head_mask: Tensor | None,
    output_attentions: bool | None,
    output_hidden_states: bool | None,
    key: Key | None,
    train: bool,
    remat: bool = False,
    validate: bool | None = True,
) -> Encoded:
    """Embeddings and encoder stack: input_ids (b, s) -> (b, s, d), plus optional outputs.

    ``remat=True`` recomputes each layer's activations in the backward pass
    (:func:`ptfunc.layers.remat.checkpoint`): same values and gradients, less memory.
    ``validate=False`` skips the value checks of the inputs (:mod:`ptfunc.archs.inputs`).
    """
    dropout.require_key(train, key)
    check_inputs(c, input_ids, attention_mask, token_type_ids, position_ids, head_mask, validate)
    want_att = c.output_attentions if output_attentions is None else output_attentions
    want_hidden = c.output_hidden_states if output_hidden_states is None else output_hidden_states
    n = c.num_hidden_layers
    keys = split_for_dropout(key, n + 1, train)
    dtype = params["embeddings"]["word_embeddings"]["weight"].dtype

    x = _embed(c, params["embeddings"], input_ids, token_type_ids, position_ids, keys[0], train)
    bias = None if attention_mask is None else attention.additive_mask(attention_mask, dtype)
    act = activations.get(c.hidden_act)

    def run_layer(layer: Params, x: Tensor, bias: Tensor | None, head: Tensor | None, k: Key):
        return block.apply(
            layer,
            x,
            head_dim=c.head_dim,
            activation=act,
            eps=c.layer_norm_eps,
            hidden_dropout=c.hidden_dropout_prob,
            attention_dropout=c.attention_probs_dropout_prob,
            bias=bias,
            head_mask=head,
            need_weights=want_att,
            key=k,
            train=train,
        )

    return run_layers(
        params["encoder"]["layer"],
        x,
        run_layer,
        bias=bias,
        head_masks=layer_head_masks(head_mask, c, dtype),
        keys=keys[1:],
        want_hidden=want_hidden,
        want_att=want_att,
        remat=remat,
    )


LayerFn = Callable[[Params, Tensor, "Tensor | None", "Tensor | None", "Key | None"], tuple]
"""``layer_fn(layer_params, x, bias, head_mask, key) -> (x, probs)``: one encoder layer."""


def run_layers(
    layers: Sequence[Params],
    x: Tensor,
    layer_fn: LayerFn,
    *,
    bias: Tensor | None,
    head_masks: Sequence[Tensor | None],
    keys: Sequence[Key | None],
    want_hidden: bool,
    want_att: bool,
    remat: bool,
) -> Encoded:
    """``x = layer_fn(layer, x, bias, head_mask, key)[0]`` for each layer, collecting the
    hidden states (the input of every layer, then the last output) and attention probs.

    ``remat=True`` wraps every call in :func:`ptfunc.layers.remat.checkpoint`. A layer's
    params may appear several times in ``layers`` (ALBERT's sharing): its gradient is then
    the sum over its uses.
    """
    hidden: list[Tensor] = []
    probs_all: list[Tensor] = []
    for layer, head, k in zip(layers, head_masks, keys, strict=True):
        if want_hidden:
            hidden.append(x)
        x, probs = checkpoint(layer_fn, layer, x, bias, head, k, enabled=remat)
        if want_att:
            probs_all.append(probs)
    if want_hidden:
        hidden.append(x)
    return Encoded(x, tuple(hidden), tuple(probs_all))


def pool(params: Params, sequence_output: Tensor) -> Tensor:
    """tanh(dense(first token)): (b, s, d) -> (b, d)."""
    return torch.tanh(linear.apply(params["dense"], sequence_output[:, 0]))


class BertModel(ParamTransforms, Model):
    """The bare BERT encoder with pooler (``BertModel`` of pytorch-transformers).

    ``apply(params, input_ids, *, attention_mask=None, token_type_ids=None,
    position_ids=None, head_mask=None, output_attentions=None,
    output_hidden_states=None, train=False, key=None, remat=False, validate=True)`` ->
    ``BaseModelOutputWithPooling(last_hidden_state (b, s, d), pooler_output (b, d),
    hidden_states, attentions)``.

    ``attention_mask`` (b, s): 1 = attend, 0 = padding. ``head_mask`` (heads,) or
    (layers, heads): 1 keeps a head. ``train=True`` turns dropout on and needs ``key``.
    ``remat=True`` recomputes each layer in the backward pass (activation checkpointing).
    ``validate=False`` skips the value checks of the inputs (ids in range; see
    :mod:`ptfunc.archs.inputs`); shapes and dtypes are always checked.
    """

    config_class = BertConfig
    base_model_prefix = "bert"
    is_base_model = True
    ignored_checkpoint_keys = ("embeddings.position_ids",)
    token_embedding_path = ("embeddings", "word_embeddings", "weight")

    def init(self, key: Key) -> Params:
        ke, kl, kp = split(key, 3)
        return {
            "embeddings": init_embeddings(ke, self.config),
            "encoder": init_encoder(kl, self.config),
            "pooler": init_pooler(kp, self.config),
        }

    def apply(
        self,
        params: Params,
        input_ids: Tensor,
        *,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        position_ids: Tensor | None = None,
        head_mask: Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        train: bool = False,
        key: Key | None = None,
        remat: bool = False,
        validate: bool = True,
    ) -> Any:
        enc = encode(
            self.config,
            params,
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            head_mask=head_mask,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            key=key,
            train=train,
            remat=remat,
            validate=validate,
        )
        pooled = pool(params["pooler"], enc.sequence_output)
        return make_output(
            BaseModelOutputWithPooling,
            None,
            enc.sequence_output,
            pooled,
            enc.hidden_states,
            enc.attentions,
        )
