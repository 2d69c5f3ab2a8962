"""DistilBERT's base model: word and position embeddings and a post-LN encoder stack.

DistilBERT (Sanh et al., 2019) is BERT's layer with other names, no token types, no
pooler and no dropout after the attention's output projection. The block is composed
from the shared layers BERT uses (self-attention, feed-forward, post-norm residual).

Params tree (names of the transformers state dict)::

    embeddings.{word,position}_embeddings.weight, embeddings.LayerNorm
    transformer.layer[i].attention.{q_lin,k_lin,v_lin,out_lin}, .sa_layer_norm,
                        .ffn.{lin1,lin2}, .output_layer_norm
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ...layers import (
    activations,
    attention,
    dropout,
    embedding,
    feed_forward,
    layer_norm,
    linear,
    residual,
)
from ...layers.positions import interleaved_sinusoids
from ...layers.remat import checkpoint
from ...random import Key, split, split_for_dropout
from ...tree import Params
from .. import inputs
from ..bert.model import Encoded
from ..model import Model, make_output, output_types
from ..prune import PrunableHeads, layer_head_masks, linear_head_pruning
from .config import DistilBertConfig

__all__ = [
    "DistilBertModel",
    "BaseModelOutput",
    "HEAD_PRUNING",
    "HeadPruningMixin",
    "init_embeddings",
    "init_transformer",
    "encode",
]

HEAD_PRUNING = linear_head_pruning(
    layers=("transformer", "layer"),
    rows=(("attention", "q_lin"), ("attention", "k_lin"), ("attention", "v_lin")),
    cols=("attention", "out_lin"),
    value=("attention", "v_lin"),
)
"""DistilBERT's head pruning and masking (:mod:`ptfunc.archs.prune`): a head's rows of
``q_lin``/``k_lin``/``v_lin`` and its columns of ``out_lin``."""


class HeadPruningMixin(PrunableHeads):
    """``prune_heads`` / ``unprune_heads`` for the DistilBERT models (base and heads)."""

    head_pruning = HEAD_PRUNING


BaseModelOutput = output_types(
    "BaseModelOutput",
    "last_hidden_state hidden_states attentions",
    "last_hidden_state (b, s, d).",
)


def init_embeddings(key: Key, c: DistilBertConfig) -> Params:
    """Word and position tables (normal(0, initializer_range); sinusoids when
    ``sinusoidal_pos_embds``), the ``pad_token_id`` word row zero, and a LayerNorm."""
    kw, kp = split(key)
    std = c.initializer_range
    words = embedding.init(kw, c.vocab_size, c.dim, std=std)
    keep = (torch.arange(c.vocab_size) != c.pad_token_id).to(words["weight"].dtype)
    positions = embedding.init(kp, c.max_position_embeddings, c.dim, std=std)
    if c.sinusoidal_pos_embds:
        rows = torch.arange(c.max_position_embeddings)
        positions = {"weight": interleaved_sinusoids(rows, c.dim, dtype=torch.float32)}
    return {
        "word_embeddings": {"weight": words["weight"] * keep[:, None]},
        "position_embeddings": positions,
        "LayerNorm": layer_norm.init(c.dim),
    }


def init_block(key: Key, c: DistilBertConfig) -> Params:
    """One ``TransformerBlock``: q/k/v/out projections, two LayerNorms, ``ffn.lin1/lin2``."""
    kq, kk, kv, ko, k1, k2 = split(key, 6)
    std = c.initializer_range
    return {
        "attention": {
            name: linear.init(k, c.dim, c.dim, std=std)
            for name, k in (("q_lin", kq), ("k_lin", kk), ("v_lin", kv), ("out_lin", ko))
        },
        "sa_layer_norm": layer_norm.init(c.dim),
        "ffn": {
            "lin1": linear.init(k1, c.dim, c.hidden_dim, std=std),
            "lin2": linear.init(k2, c.hidden_dim, c.dim, std=std),
        },
        "output_layer_norm": layer_norm.init(c.dim),
    }


def init_transformer(key: Key, c: DistilBertConfig) -> Params:
    """``{"layer": [block params] * n_layers}``."""
    return {"layer": [init_block(k, c) for k in split(key, c.n_layers)]}


def apply_block(
    c: DistilBertConfig,
    p: Params,
    x: Tensor,
    bias: Tensor | None,
    head_mask: Tensor | None,
    key: Key | None,
    *,
    need_weights: bool,
    train: bool,
) -> tuple[Tensor, Tensor | None]:
    """x (b, s, d) -> (y (b, s, d), attention probs (b, heads, s, s) or None)::

    a = sa_layer_norm(x + out_lin(self_attention(x)))
    y = output_layer_norm(a + dropout(lin2(act(lin1(a)))))
    """
    k_attn, k_ff = split_for_dropout(key, 2, train)
    attn = p["attention"]
    qkv = {"query": attn["q_lin"], "key": attn["k_lin"], "value": attn["v_lin"]}
    context, probs = attention.apply_self_attention(
        qkv,
        x,
        head_dim=c.head_dim,
        bias=bias,
        dropout_rate=c.attention_dropout,
        head_mask=head_mask,
        need_weights=need_weights,
        key=k_attn,
        train=train,
    )
    eps = c.layer_norm_eps
    a = residual.post_norm(p["sa_layer_norm"], linear.apply(attn["out_lin"], context), x, eps=eps)
    act = activations.get(c.activation)
    h = feed_forward.apply(p["ffn"]["lin1"], p["ffn"]["lin2"], a, activation=act)
    y = residual.post_norm(
        p["output_layer_norm"], h, a, eps=eps, dropout_rate=c.dropout, key=k_ff, train=train
    )
    return y, probs


def check_inputs(
    c: DistilBertConfig,
    input_ids: Tensor,
    attention_mask: Tensor | None,
    position_ids: Tensor | None,
    head_mask: Tensor | None,
    validate: bool | None,
) -> None:
    """The shared input checks (:mod:`ptfunc.archs.inputs`) with DistilBERT's sizes."""
    validate = validate is not False
    n_pos = c.max_position_embeddings
    b, s = inputs.check_input_ids(
        input_ids,
        vocab_size=c.vocab_size,
        max_positions=n_pos,
        positions_name="max_position_embeddings",
        validate=validate,
    )
    inputs.check_per_token("attention_mask", attention_mask, b, s)
    pos_kw = dict(upper=n_pos, what="max_position_embeddings", validate=validate)
    inputs.check_per_token("position_ids", position_ids, b, s, broadcast_batch=True, **pos_kw)
    inputs.check_head_mask(head_mask, c.n_layers, c.n_heads, pruned=bool(c.pruned_heads))


def encode(
    c: DistilBertConfig,
    params: Params,
    input_ids: Tensor,
    *,
    attention_mask: Tensor | None = None,
    position_ids: Tensor | None = None,
    head_mask: Tensor | None = None,
    output_attentions: bool | None = None,
    output_hidden_states: bool | None = None,
    key: Key | None = None,
    train: bool = False,
    remat: bool = False,
    validate: bool | None = True,
) -> Encoded:
    """Embeddings and the layer stack: input_ids (b, s) -> (b, s, d), plus optional outputs.

    ``remat=True`` recomputes each layer in the backward pass; ``validate=False`` skips
    the value checks of the inputs.
    """
    dropout.require_key(train, key)
    check_inputs(c, input_ids, attention_mask, position_ids, head_mask, validate)
    want_att = c.output_attentions if output_attentions is None else output_attentions
    want_hidden = c.output_hidden_states if output_hidden_states is None else output_hidden_states
    keys = split_for_dropout(key, c.n_layers + 1, train)
    emb = params["embeddings"]
    dtype = emb["word_embeddings"]["weight"].dtype

    x = embedding.apply(emb["word_embeddings"], input_ids, padding_idx=c.pad_token_id)
    if position_ids is None:
        x = x + emb["position_embeddings"]["weight"][: input_ids.shape[1]]
    else:
        x = x + embedding.apply(emb["position_embeddings"], position_ids)
    x = layer_norm.apply(emb["LayerNorm"], x, eps=c.layer_norm_eps)
    x = dropout.apply(x, c.dropout, key=keys[0], train=train)
    bias = None if attention_mask is None else attention.additive_mask(attention_mask, dtype)

    def run(p: Params, x: Tensor, bias: Tensor | None, head: Tensor | None, k: Key | None):
        return apply_block(c, p, x, bias, head, k, need_weights=want_att, train=train)

    hidden, probs_all = [x], []
    for p, head, k in zip(
        params["transformer"]["layer"], layer_head_masks(head_mask, c, dtype), keys[1:]
    ):
        x, probs = checkpoint(run, p, x, bias, head, k, enabled=remat)
        hidden.append(x)
        probs_all.append(probs)
    return Encoded(x, tuple(hidden) if want_hidden else (), tuple(probs_all) if want_att else ())


class DistilBertModel(HeadPruningMixin, Model):
    """The bare DistilBERT encoder (``DistilBertModel`` of transformers).

    ``apply(params, input_ids, *, attention_mask=None, position_ids=None, head_mask=None,
    output_attentions=None, output_hidden_states=None, train=False, key=None,
    remat=False, validate=True)`` -> ``BaseModelOutput(last_hidden_state (b, s, d),
    hidden_states, attentions)``.

    ``attention_mask`` (b, s): 1 = attend, 0 = padding. ``head_mask`` (heads,) or
    (layers, heads): 1 keeps a head. ``train=True`` turns dropout on and needs ``key``.

    ``prune_heads(params, {layer: [heads]})`` removes heads (``(model, params)``, the
    config recording ``pruned_heads``); ``init`` builds the pruned shapes a config records.
    """

    config_class = DistilBertConfig
    base_model_prefix = "distilbert"
    is_base_model = True
    ignored_checkpoint_keys = ("embeddings.position_ids",)
    token_embedding_path = ("embeddings", "word_embeddings", "weight")

    def init(self, key: Key) -> Params:
        ke, kt = split(key)
        base = {
            "embeddings": init_embeddings(ke, self.config),
            "transformer": init_transformer(kt, self.config),
        }
        return HEAD_PRUNING.prune_init(base, self.config)

    def apply(self, params: Params, input_ids: Tensor, **options: Any) -> Any:
        enc = encode(self.config, params, input_ids, **options)
        return make_output(
            BaseModelOutput, None, enc.sequence_output, enc.hidden_states, enc.attentions
        )
