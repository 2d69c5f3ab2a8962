"""DeBERTa-v2's base model: embeddings and the post-LN encoder of disentangled attention.

Params tree (names of the transformers state dict)::

    embeddings.word_embeddings, .position_embeddings (position_biased_input),
              .token_type_embeddings (type_vocab_size > 0), .embed_proj (embedding_size
              != hidden_size), .LayerNorm
    encoder.layer[i].attention.self.{query,key,value}_proj, .pos_key_proj, .pos_query_proj,
                    .attention.output.{dense,LayerNorm}, .intermediate.dense,
                    .output.{dense,LayerNorm}
    encoder.rel_embeddings (relative_attention), encoder.LayerNorm (norm_rel_ebd)

There is no pooler in the base model: the classification heads own a ``pooler``
(transformers' ``ContextPooler``).

Heads: ``head_mask`` (heads,) or (layers, heads) multiplies each head's attention
probabilities (1 keeps a head), as BERT's does; ``prune_heads`` removes a head's rows of
every projection of ``attention.self`` (query, key, value, and ``pos_key_proj`` /
``pos_query_proj`` when present: each head projects the relative-position table with its
own rows, shared with the content projections under ``share_att_key``) and its columns of
``attention.output.dense``. Every score term is per head and the scale depends on
``head_dim`` only, so the kept heads compute what they computed before.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor

from ...layers import activations, dropout, embedding, feed_forward, layer_norm, linear, residual
from ...layers import disentangled_attention as rel
from ...layers.remat import checkpoint
from ...random import Key, split, split_for_dropout
from ...tree import Params
from .. import inputs
from ..bert.model import Encoded
from ..model import Model, check_options, make_output, output_types
from ..prune import PrunableHeads, layer_head_masks, linear_head_pruning
from .config import DebertaV2Config

__all__ = [
    "DebertaV2Model",
    "HEAD_PRUNING",
    "HeadPruningMixin",
    "BaseModelOutput",
    "init_embeddings",
    "init_encoder",
    "encode",
]

_SELF = ("attention", "self")
HEAD_PRUNING = linear_head_pruning(
    layers=("encoder", "layer"),
    rows=tuple((*_SELF, n) for n in ("query_proj", "key_proj", "value_proj")),
    optional_rows=((*_SELF, "pos_key_proj"), (*_SELF, "pos_query_proj")),
    cols=("attention", "output", "dense"),
    value=(*_SELF, "value_proj"),
)
"""DeBERTa-v2's head pruning and masking (:mod:`ptfunc.archs.prune`)."""


class HeadPruningMixin(PrunableHeads):
    """``prune_heads`` / ``unprune_heads`` for the DeBERTa-v2 models (base and heads)."""

    head_pruning = HEAD_PRUNING


BaseModelOutput = output_types(
    "BaseModelOutput",
    "last_hidden_state hidden_states attentions",
    "last_hidden_state (b, s, d).",
)


def init_embeddings(key: Key, c: DebertaV2Config) -> Params:
    """Word (and position, token-type) tables ~ N(0, initializer_range), a projection
    when ``embedding_size != hidden_size``, and a LayerNorm."""
    kw, kp, kt, kproj = split(key, 4)
    std, e = c.initializer_range, c.embedding_width
    p: Params = {"word_embeddings": embedding.init(kw, c.vocab_size, e, std=std)}
    if c.position_biased_input:
        p["position_embeddings"] = embedding.init(kp, c.max_position_embeddings, e, std=std)
    if c.type_vocab_size > 0:
        p["token_type_embeddings"] = embedding.init(kt, c.type_vocab_size, e, std=std)
    if e != c.hidden_size:
        p["embed_proj"] = linear.init(kproj, e, c.hidden_size, bias=False, std=std)
    p["LayerNorm"] = layer_norm.init(c.hidden_size)
    return p


def _init_layer(key: Key, c: DebertaV2Config) -> Params:
    k_attn, k_out, k_in, k_ff = split(key, 4)
    d, std = c.hidden_size, c.initializer_range
    return {
        "attention": {
            "self": rel.init(
                k_attn,
                d,
                c.all_head_size,
                pos_att_type=c.kinds,
                share_att_key=c.share_att_key,
                relative_attention=c.relative_attention,
                std=std,
            ),
            "output": {
                "dense": linear.init(k_out, c.all_head_size, d, std=std),
                "LayerNorm": layer_norm.init(d),
            },
        },
        "intermediate": {"dense": linear.init(k_in, d, c.intermediate_size, std=std)},
        "output": {
            "dense": linear.init(k_ff, c.intermediate_size, d, std=std),
            "LayerNorm": layer_norm.init(d),
        },
    }


def init_encoder(key: Key, c: DebertaV2Config) -> Params:
    """``{"layer": [...], "rel_embeddings": ..., "LayerNorm": ...}`` (the last two when the
    config has relative attention and ``norm_rel_ebd="layer_norm"``); the layers have the
    shapes ``config.pruned_heads`` records."""
    kl, kr = split(key)
    p: Params = {"layer": [_init_layer(k, c) for k in split(kl, c.num_hidden_layers)]}
    if c.relative_attention:
        std = c.initializer_range
        p["rel_embeddings"] = embedding.init(kr, 2 * c.span, c.hidden_size, std=std)
    if c.norm_rel_ebd == "layer_norm":
        p["LayerNorm"] = layer_norm.init(c.hidden_size)
    return HEAD_PRUNING.prune_init({"encoder": p}, c)["encoder"]


def _embed(
    c: DebertaV2Config,
    p: Params,
    input_ids: Tensor,
    token_type_ids: Tensor | None,
    position_ids: Tensor | None,
    mask: Tensor | None,
    key: Key | None,
    train: bool,
) -> Tensor:
    """input_ids (b, s) -> embeddings (b, s, d), zero at padded positions."""
    x = embedding.apply(p["word_embeddings"], input_ids)
    if c.position_biased_input:
        if position_ids is None:
            x = x + p["position_embeddings"]["weight"][: input_ids.shape[1]]
        else:
            x = x + embedding.apply(p["position_embeddings"], position_ids)
    if c.type_vocab_size > 0:
        if token_type_ids is None:
            x = x + p["token_type_embeddings"]["weight"][0]
        else:
            x = x + embedding.apply(p["token_type_embeddings"], token_type_ids)
    if "embed_proj" in p:
        x = linear.apply(p["embed_proj"], x)
    x = layer_norm.apply(p["LayerNorm"], x, eps=c.layer_norm_eps)
    if mask is not None:
        x = x * mask[..., None].to(x.dtype)
    return dropout.apply(x, c.hidden_dropout_prob, key=key, train=train)


def check_inputs(
    c: DebertaV2Config,
    input_ids: Tensor,
    attention_mask: Tensor | None,
    token_type_ids: Tensor | None,
    position_ids: Tensor | None,
    validate: bool | None,
    head_mask: Tensor | None = None,
) -> None:
    """The shared input checks (:mod:`ptfunc.archs.inputs`) with DeBERTa's sizes.

    Learned positions bound the length only with ``position_biased_input``; token types
    are read only when ``type_vocab_size > 0`` (otherwise their values are ignored, as
    transformers ignores them).
    """
    check = {"validate": validate is not False}
    positions = c.max_position_embeddings if c.position_biased_input else None
    sizes = {"vocab_size": c.vocab_size, "max_positions": positions}
    b, s = inputs.check_input_ids(
        input_ids, **sizes, positions_name="max_position_embeddings", **check
    )
    inputs.check_per_token("attention_mask", attention_mask, b, s)
    types = c.type_vocab_size or None
    for name, t, upper, what, broadcast in (
        ("token_type_ids", token_type_ids, types, "type_vocab_size", False),
        ("position_ids", position_ids, positions, "max_position_embeddings", True),
    ):
        inputs.check_per_token(
            name, t, b, s, broadcast_batch=broadcast, upper=upper, what=what, **check
        )
    n_layers, n_heads = c.num_hidden_layers, c.num_attention_heads
    inputs.check_head_mask(head_mask, n_layers, n_heads, pruned=bool(c.pruned_heads))


def _layer(
    c: DebertaV2Config,
    p: Params,
    x: Tensor,
    mask: Tensor | None,
    table: Tensor | None,
    relative_pos: Tensor | None,
    head_mask: Tensor | None = None,
    *,
    need_weights: bool,
    key: Key | None,
    train: bool,
) -> tuple[Tensor, Tensor | None]:
    """One DeBERTa layer: x (b, s, d) -> (y (b, s, d), probs or None); ``head_mask``
    (heads, 1, 1) or None multiplies the attention probabilities."""
    k_attn, k_attn_out, k_ff = split_for_dropout(key, 3, train)
    attn = p["attention"]
    context, probs = rel.apply(
        attn["self"],
        x,
        head_dim=c.head_dim,
        pos_att_type=c.kinds,
        rel_embeddings=table,
        relative_pos=relative_pos,
        span=c.span,
        share_att_key=c.share_att_key,
        mask=mask,
        head_mask=head_mask,
        attention_dropout=c.attention_probs_dropout_prob,
        position_dropout=c.hidden_dropout_prob,
        need_weights=need_weights,
        key=k_attn,
        train=train,
    )
    norm = {"eps": c.layer_norm_eps, "dropout_rate": c.hidden_dropout_prob, "train": train}
    dense = linear.apply(attn["output"]["dense"], context)
    a = residual.post_norm(attn["output"]["LayerNorm"], dense, x, key=k_attn_out, **norm)
    act = activations.get(c.hidden_act)
    h = feed_forward.apply(p["intermediate"]["dense"], p["output"]["dense"], a, activation=act)
    y = residual.post_norm(p["output"]["LayerNorm"], h, a, key=k_ff, **norm)
    return y, probs


_ENCODER_OPTIONS = (
    "attention_mask",
    "token_type_ids",
    "position_ids",
    "output_attentions",
    "output_hidden_states",
    "remat",
    "validate",
    "head_mask",
)
"""The call options of the encoder, in the order :func:`encode` reads them."""


def encode(
    c: DebertaV2Config,
    params: Params,
    input_ids: Tensor,
    options: Mapping[str, Any],
    *,
    key: Key | None,
    train: bool,
) -> Encoded:
    """Embeddings and encoder stack: input_ids (b, s) -> (b, s, d), plus optional outputs.

    ``options`` holds the encoder options of :class:`DebertaV2Model` (absent ones take
    their defaults). ``attention_mask`` (b, s), 1 = attend: a pair (i, j) is kept when
    both are kept, as in transformers (a padded query attends uniformly). ``head_mask``
    (heads,) or (layers, heads), counting the unpruned model's heads: 1 keeps a head. ``remat=True``
    recomputes each layer in the backward pass; ``validate=False`` skips the value checks
    of the inputs.
    """
    attention_mask, token_type_ids, position_ids, output_attentions, output_hidden_states = (
        options.get(name) for name in _ENCODER_OPTIONS[:5]
    )
    remat, validate = options.get("remat", False), options.get("validate", True)
    head_mask = options.get("head_mask")
    dropout.require_key(train, key)
    check_inputs(c, input_ids, attention_mask, token_type_ids, position_ids, validate, head_mask)
    want_att = c.output_attentions if output_attentions is None else output_attentions
    want_hidden = c.output_hidden_states if output_hidden_states is None else output_hidden_states
    keys = split_for_dropout(key, c.num_hidden_layers + 1, train)
    emb, enc = params["embeddings"], params["encoder"]
    x = _embed(c, emb, input_ids, token_type_ids, position_ids, attention_mask, keys[0], train)

    pair = None
    if attention_mask is not None:
        keep = attention_mask != 0
        pair = keep[:, None, :, None] & keep[:, None, None, :]
    table = relative_pos = None
    if c.relative_attention:
        table = enc["rel_embeddings"]["weight"]
        if c.norm_rel_ebd == "layer_norm":
            table = layer_norm.apply(enc["LayerNorm"], table, eps=c.layer_norm_eps)
        s = input_ids.shape[1]
        relative_pos = rel.build_relative_position(
            s, s, bucket_size=c.position_buckets, max_position=c.max_relative, device=x.device
        )

    def run_layer(layer: Params, x: Tensor, pair: Any, table: Any, rpos: Any, head: Any, k: Any):
        kw = {"need_weights": want_att, "key": k, "train": train}
        return _layer(c, layer, x, pair, table, rpos, head, **kw)

    hidden: list[Tensor] = [x]
    probs_all: list[Tensor] = []
    heads = layer_head_masks(head_mask, c, x.dtype)
    for layer, head, k in zip(enc["layer"], heads, keys[1:]):
        args = (layer, x, pair, table, relative_pos, head, k)
        x, probs = checkpoint(run_layer, *args, enabled=remat)
        hidden.append(x)
        if want_att:
            probs_all.append(probs)
    return Encoded(x, tuple(hidden) if want_hidden else (), tuple(probs_all))


class DebertaV2Model(HeadPruningMixin, Model):
    """The bare DeBERTa-v2 encoder (``DebertaV2Model`` of transformers).

    ``apply(params, input_ids, *, attention_mask=None, token_type_ids=None,
    position_ids=None, head_mask=None, output_attentions=None, output_hidden_states=None,
    train=False, key=None, remat=False, validate=True)`` -> ``BaseModelOutput(
    last_hidden_state (b, s, d), hidden_states, attentions)``.

    ``attention_mask`` (b, s): 1 = attend, 0 = padding. ``head_mask`` (heads,) or
    (layers, heads): 1 keeps a head (transformers 5 has no such option for DeBERTa).
    ``prune_heads(params, {layer: [heads]})`` removes heads. ``train=True`` turns dropout on
    (every dropout of transformers, ``StableDropout`` included, as inverted dropout) and
    needs ``key``. ``remat=True`` recomputes each layer in the backward pass.
    """

    config_class = DebertaV2Config
    base_model_prefix = "deberta"
    is_base_model = True
    token_embedding_path = ("embeddings", "word_embeddings", "weight")

    @property
    def ignored_checkpoint_keys(self) -> tuple[str, ...]:  # type: ignore[override]
        """Buffers, and position tables a model without absolute positions leaves unused."""
        return ignored_keys(self.config)

    def init(self, key: Key) -> Params:
        ke, kl = split(key)
        return {
            "embeddings": init_embeddings(ke, self.config),
            "encoder": init_encoder(kl, self.config),
        }

    def apply(
        self,
        params: Params,
        input_ids: Tensor,
        *,
        train: bool = False,
        key: Key | None = None,
        **options: Any,
    ) -> Any:
        check_options(f"{type(self).__name__}.apply", options, _ENCODER_OPTIONS)
        enc = encode(self.config, params, input_ids, options, key=key, train=train)
        return make_output(
            BaseModelOutput, None, enc.sequence_output, enc.hidden_states, enc.attentions
        )


def ignored_keys(c: DebertaV2Config) -> tuple[str, ...]:
    """Checkpoint names that carry no parameter of a model with config ``c``."""
    keys = ["embeddings.position_ids"]
    if not c.position_biased_input:
        keys.append("embeddings.position_embeddings.weight")
    return tuple(keys)
