"""ELECTRA's base model: BERT's embeddings at ``embedding_size``, an optional projection to
``hidden_size`` and BERT's post-LN encoder stack; no pooler.

Params tree (names of the transformers state dict)::

    embeddings.{word,position,token_type}_embeddings.weight, embeddings.LayerNorm
    embeddings_project                  (only when embedding_size != hidden_size)
    encoder.layer[i]                    (BERT's block: attention.self.{query,key,value}, ...)

The layer loop, BERT's :func:`ptfunc.archs.bert.model.run_layers`, takes the layer function
as an argument, so that ALBERT runs its shared layers through it too.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from torch import Tensor

from ...layers import activations, attention, dropout, linear
from ...layers import transformer_block as block
from ...random import Key, split, split_for_dropout
from ...tree import Params
from ..bert.heads import ENCODER_OPTIONS
from ..bert.model import (
    Encoded,
    LayerFn,
    _embed,
    check_inputs,
    init_embeddings,
    init_encoder,
    run_layers,
)
from ..bert.transforms import ParamTransforms
from ..model import Model, check_options, make_output, output_types
from ..prune import layer_head_masks
from .config import ElectraConfig

__all__ = [
    "ElectraModel",
    "BaseModelOutput",
    "init_base",
    "encode",
    "embed_and_run",
    "bert_layer",
    "run_layers",
]

BaseModelOutput = output_types(
    "BaseModelOutput", "last_hidden_state hidden_states attentions", "last_hidden_state (b, s, d)."
)


def init_narrow_embeddings(key: Key, c: Any) -> Params:
    """BERT's embedding tables and LayerNorm at width ``c.embedding_size`` (ELECTRA, ALBERT)."""
    width = types.SimpleNamespace(
        vocab_size=c.vocab_size,
        hidden_size=c.embedding_size,
        max_position_embeddings=c.max_position_embeddings,
        type_vocab_size=c.type_vocab_size,
        initializer_range=c.initializer_range,
    )
    return init_embeddings(key, width)


def init_base(key: Key, c: ElectraConfig) -> Params:
    """Embeddings of width ``embedding_size``, ``embeddings_project`` when it differs from
    ``hidden_size``, and BERT's encoder."""
    ke, kp, kl = split(key, 3)
    params = {"embeddings": init_narrow_embeddings(ke, c)}
    if c.embedding_size != c.hidden_size:
        std = c.initializer_range
        params["embeddings_project"] = linear.init(kp, c.embedding_size, c.hidden_size, std=std)
    params["encoder"] = init_encoder(kl, c)
    return params


def embed_and_run(
    c: Any,
    embeddings: Params,
    project: Params | None,
    layers: Sequence[Params],
    make_layer: Callable[[Any, bool, bool], LayerFn],
    input_ids: Tensor,
    *,
    key: Key | None,
    train: bool,
    **options: Any,
) -> Encoded:
    """BERT's embeddings, an optional projection (``project``: Linear params or None), then
    ``make_layer(c, want_attentions, train)`` over ``layers`` (:func:`run_layers`).

    ``options`` are the encoder options of :class:`ElectraModel` (missing ones: None).
    ``hidden_states[0]`` is the projected embedding output, as in transformers.
    """
    o = {name: options.get(name) for name in ENCODER_OPTIONS}
    dropout.require_key(train, key)
    masks = (o["attention_mask"], o["token_type_ids"], o["position_ids"], o["head_mask"])
    check_inputs(c, input_ids, *masks, o["validate"])
    want_att = c.output_attentions if o["output_attentions"] is None else o["output_attentions"]
    want_hidden = o["output_hidden_states"]
    want_hidden = c.output_hidden_states if want_hidden is None else want_hidden
    keys = split_for_dropout(key, len(layers) + 1, train)
    dtype = embeddings["word_embeddings"]["weight"].dtype
    x = _embed(c, embeddings, input_ids, o["token_type_ids"], o["position_ids"], keys[0], train)
    if project is not None:
        x = linear.apply(project, x)
    mask = o["attention_mask"]
    bias = None if mask is None else attention.additive_mask(mask, dtype)
    heads = [None] * len(layers)
    if o["head_mask"] is not None:  # a row per layer; ALBERT's inner layer calls share it
        rows = layer_head_masks(o["head_mask"], c, dtype)
        heads = [m for m in rows for _ in range(len(layers) // len(rows))]
    return run_layers(
        layers, x, make_layer(c, want_att, train), bias=bias, head_masks=heads, keys=keys[1:],
        want_hidden=want_hidden, want_att=want_att, remat=bool(o["remat"]),
    )  # fmt: skip


def bert_layer(c: Any, want_att: bool, train: bool) -> LayerFn:
    """BERT's block (:mod:`ptfunc.layers.transformer_block`) with ``c``'s sizes and rates."""
    act = activations.get(c.hidden_act)

    def layer_fn(layer: Params, x: Tensor, bias: Tensor | None, head: Tensor | None, k: Key):
        rates = dict(
            hidden_dropout=c.hidden_dropout_prob, attention_dropout=c.attention_probs_dropout_prob
        )
        return block.apply(
            layer, x, head_dim=c.head_dim, activation=act, eps=c.layer_norm_eps, **rates,
            bias=bias, head_mask=head, need_weights=want_att, key=k, train=train,
        )  # fmt: skip

    return layer_fn


def encode(
    c: ElectraConfig, params: Params, input_ids: Tensor, *, key: Key | None, train: bool, **options
) -> Encoded:
    """ELECTRA's encoder: input_ids (b, s) -> (b, s, hidden_size), plus optional outputs."""
    layers = params["encoder"]["layer"]
    project = params.get("embeddings_project")
    return embed_and_run(
        c, params["embeddings"], project, layers, bert_layer, input_ids, key=key, train=train,
        **options,
    )  # fmt: skip


class EncoderModel(Model):
    """A bare encoder of the BERT family: ``apply`` refuses unknown options, runs
    :attr:`encoder` and returns :meth:`output` (ELECTRA's and ALBERT's base models)."""

    is_base_model = True
    ignored_checkpoint_keys = ("embeddings.position_ids", "embeddings.token_type_ids")
    token_embedding_path = ("embeddings", "word_embeddings", "weight")
    options: ClassVar[frozenset[str]] = ENCODER_OPTIONS
    encoder: ClassVar[Callable[..., Encoded]]

    def apply(
        self,
        params: Params,
        input_ids: Tensor,
        *,
        train: bool = False,
        key: Key | None = None,
        **options: Any,
    ) -> Any:
        check_options(f"{type(self).__name__}.apply", options, self.options)
        run = type(self).encoder
        return self.output(
            params, run(self.config, params, input_ids, key=key, train=train, **options)
        )

    def output(self, params: Params, enc: Encoded) -> Any:
        """``BaseModelOutput`` of the encoder's result."""
        return make_output(
            BaseModelOutput, None, enc.sequence_output, enc.hidden_states, enc.attentions
        )


class ElectraModel(ParamTransforms, EncoderModel):
    """The bare ELECTRA encoder (``ElectraModel`` of transformers).

    ``apply(params, input_ids, *, attention_mask=None, token_type_ids=None,
    position_ids=None, head_mask=None, output_attentions=None,
    output_hidden_states=None, train=False, key=None, remat=False, validate=True)`` ->
    ``BaseModelOutput(last_hidden_state (b, s, hidden_size), hidden_states, attentions)``.

    The options mean what they mean for :class:`~ptfunc.archs.bert.BertModel` (an unknown
    one is a ``TypeError``); heads can be pruned and masked as BERT's (same layer layout).
    """

    config_class = ElectraConfig
    base_model_prefix = "electra"
    encoder = staticmethod(encode)

    def init(self, key: Key) -> Params:
        return init_base(key, self.config)
