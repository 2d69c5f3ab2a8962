"""GPT-2: pre-LN causal transformer with a KV cache (``past`` in, ``presents`` out).

Params tree (names of the checkpoint; Conv1D weights are ``(in, out)``)::

    wte.weight, wpe.weight, ln_f
    h[i].ln_1, h[i].attn.c_attn (d -> 3d), h[i].attn.c_proj, h[i].ln_2,
    h[i].mlp.c_fc (d -> 4d), h[i].mlp.c_proj

``past``/``presents`` are tuples with one ``(2, batch, heads, length, head_dim)``
tensor per layer (stacked key and value, the seed's layout): a pytree that
``vmap`` and ``torch.compile`` accept. With ``cache_position`` the cache is static (fixed
length, written in place of slots; see ``layers.causal_attention``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from torch import Tensor

from ...layers import (
    activations,
    causal_attention,
    dropout,
    embedding,
    feed_forward,
    layer_norm,
    linear,
)
from ...layers.remat import checkpoint
from ...random import Key, split, split_for_dropout
from ...tree import Params
from .. import double_heads, inputs
from ..double_heads import DoubleHeadsOutput, DoubleHeadsOutputWithLoss, lm_loss
from ..model import Model, make_output, output_types
from ..prune import layer_head_masks
from .config import GPT2Config
from .prune import ParamTransforms, prune_init

__all__ = [
    "GPT2Model",
    "GPT2LMHeadModel",
    "GPT2DoubleHeadsModel",
    "GPT2ModelOutput",
    "CausalLMOutput",
    "DoubleHeadsOutput",
    "DoubleHeadsOutputWithLoss",
]

GPT2ModelOutput = output_types(
    "GPT2ModelOutput",
    "last_hidden_state presents hidden_states attentions",
    "last_hidden_state (b, s, d); presents: per layer (2, b, heads, past + s, head_dim).",
)
CausalLMOutput = output_types(
    "CausalLMOutput",
    "logits presents hidden_states attentions",
    "logits (b, s, V); presents as GPT2Model's.",
)


_BUFFERS = ("attn.bias", "attn.masked_bias")


def init_block(key: Key, c: GPT2Config) -> Params:
    """One block: two LayerNorms, attention (c_attn, c_proj), MLP (c_fc, c_proj)."""
    k1, k3, k4 = split(key, 3)
    d, std = c.n_embd, c.initializer_range
    return {
        "ln_1": layer_norm.init(d),
        "attn": causal_attention.init(k1, d, std=std),
        "ln_2": layer_norm.init(d),
        "mlp": {
            "c_fc": linear.init_conv1d(k3, d, 4 * d, std=std),
            "c_proj": linear.init_conv1d(k4, 4 * d, d, std=std),
        },
    }


def init_transformer(key: Key, c: GPT2Config) -> Params:
    kw, kp, kh = split(key, 3)
    base = {
        "wte": embedding.init(kw, c.vocab_size, c.n_embd, std=c.initializer_range),
        "wpe": embedding.init(kp, c.n_positions, c.n_embd, std=c.initializer_range),
        "h": [init_block(k, c) for k in split(kh, c.n_layer)],
        "ln_f": layer_norm.init(c.n_embd),
    }
    return prune_init(base, c)  # the shapes of config.pruned_heads


class _Encoded(NamedTuple):
    last_hidden_state: Tensor
    presents: tuple[Tensor, ...]
    hidden_states: tuple[Tensor, ...]
    attentions: tuple[Tensor, ...]


def transformer(
    c: GPT2Config,
    params: Params,
    input_ids: Tensor,
    *,
    past: tuple[Tensor, ...] | None = None,
    cache_position: Tensor | None = None,
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
) -> _Encoded:
    """input_ids (b, s) -> hidden states (b, s, d) after ``ln_f``, and the new cache.

    ``remat=True`` recomputes each block's activations in the backward pass. With
    ``cache_position`` (s,), ``past`` is a static cache of length L (see the module doc):
    ``attention_mask`` is then (b, L) and position ids default to ``cache_position``.
    ``validate=False`` skips the value checks of the inputs (:mod:`ptfunc.archs.inputs`).
    """
    dropout.require_key(train, key)
    inputs.check_past(past, c.n_layer, cache_position)
    static = cache_position is not None
    past_len = 0 if past is None or static else past[0].shape[-2]
    b, s = inputs.check_input_ids(
        input_ids,
        vocab_size=c.vocab_size,
        max_positions=c.n_positions,
        positions_name="n_positions",
        past_len=past_len,
        validate=validate,
    )
    if not static:  # a static cache's mask (b, L) is checked by causal_attention
        inputs.check_per_token(
            "attention_mask", attention_mask, b, past_len + s, length_name="past + seq"
        )
    inputs.check_per_token(
        "token_type_ids",
        token_type_ids,
        b,
        s,
        upper=c.vocab_size,
        what="the vocabulary size: token types are embedded with wte",
        validate=validate,
    )
    inputs.check_per_token(
        "position_ids",
        position_ids,
        b,
        s,
        broadcast_batch=True,
        upper=c.n_positions,
        what="n_positions",
        validate=validate,
    )
    inputs.check_head_mask(head_mask, c.n_layer, c.n_head, pruned=bool(c.pruned_heads))
    want_att = c.output_attentions if output_attentions is None else output_attentions
    want_hidden = c.output_hidden_states if output_hidden_states is None else output_hidden_states
    keys = split_for_dropout(key, c.n_layer + 1, train)
    wte = params["wte"]
    dtype = wte["weight"].dtype

    x = embedding.apply(wte, input_ids)
    if position_ids is None and static:
        x = x + embedding.apply(params["wpe"], cache_position)
    elif position_ids is None:
        x = x + params["wpe"]["weight"][past_len : past_len + s]
    else:
        x = x + embedding.apply(params["wpe"], position_ids)
    if token_type_ids is not None:
        x = x + embedding.apply(wte, token_type_ids)
    x = dropout.apply(x, c.embd_pdrop, key=keys[0], train=train)

    if static:
        cache_len = past[0].shape[-2]
        if cache_len > c.n_positions:
            raise ValueError(
                f"static cache length {cache_len} exceeds n_positions ({c.n_positions})"
            )
        bias = causal_attention.static_cache_bias(
            cache_position, cache_len, attention_mask, dtype, x.device
        )
    else:
        bias = causal_attention.causal_bias(s, past_len, attention_mask, dtype, x.device)
    heads = layer_head_masks(head_mask, c, dtype)
    presents, hidden, probs_all = [], [], []

    def run_block(p, x, layer_past, bias, head, k):
        return _block(c, p, x, layer_past, cache_position, bias, head, want_att, k, train)

    for i, (block, k) in enumerate(zip(params["h"], keys[1:])):
        if want_hidden:
            hidden.append(x)
        layer_past = None if past is None else past[i]
        x, present, probs = checkpoint(
            run_block, block, x, layer_past, bias, heads[i], k, enabled=remat
        )
        presents.append(present)
        if want_att:
            probs_all.append(probs)
    x = layer_norm.apply(params["ln_f"], x, eps=c.layer_norm_epsilon)
    if want_hidden:
        hidden.append(x)
    return _Encoded(x, tuple(presents), tuple(hidden), tuple(probs_all))


def _block(c, p, x, layer_past, cache_position, bias, head_mask, want_att, key, train):
    """Pre-LN block: x + attn(ln_1(x)), then + mlp(ln_2(x)). Returns (x, present, probs)."""
    k_attn, k_mlp = split_for_dropout(key, 2, train)
    a = layer_norm.apply(p["ln_1"], x, eps=c.layer_norm_epsilon)
    out, present, probs = causal_attention.apply(
        p["attn"],
        a,
        head_dim=c.head_dim,
        past=layer_past,
        cache_position=cache_position,
        bias=bias,
        attention_dropout=c.attn_pdrop,
        residual_dropout=c.resid_pdrop,
        head_mask=head_mask,
        need_weights=want_att,
        key=k_attn,
        train=train,
    )
    x = x + out
    m = layer_norm.apply(p["ln_2"], x, eps=c.layer_norm_epsilon)
    h = feed_forward.apply_conv1d(p["mlp"], m, activation=activations.gelu_new)
    return x + dropout.apply(h, c.resid_pdrop, key=k_mlp, train=train), present, probs


class GPT2Model(ParamTransforms, Model):
    """The bare GPT-2 transformer (``GPT2Model`` of pytorch-transformers).

    ``apply(params, input_ids, *, past=None, attention_mask=None, token_type_ids=None,
    position_ids=None, head_mask=None, output_attentions=None, output_hidden_states=None,
    train=False, key=None, remat=False, validate=True)`` -> ``GPT2ModelOutput(last_hidden_state,
    presents, hidden_states, attentions)``. Position ids continue after ``past``. ``attention_mask``
    (b, past + s), 1 = attend, is new in ptfunc (1.0 had none): left-padded batches work.
    ``remat=True`` recomputes each block in the backward pass (activation checkpointing).
    ``cache_position`` (s,) makes ``past`` a static cache (fixed length L, ``attention_mask``
    (b, L)): the shapes stay the same at every decoding step, for ``torch.compile``.
    ``validate=False`` skips the value checks of the inputs (ids, token types and positions
    in range; see :mod:`ptfunc.archs.inputs`); shapes and dtypes are always checked.
    """

    config_class = GPT2Config
    base_model_prefix = "transformer"
    token_embedding_path = ("wte", "weight")
    is_base_model = True
    ignored_checkpoint_keys = _BUFFERS

    def init(self, key: Key) -> Params:
        return init_transformer(key, self.config)

    def apply(
        self,
        params: Params,
        input_ids: Tensor,
        *,
        train: bool = False,
        key: Key | None = None,
        **options: Any,
    ) -> Any:
        enc = transformer(self.config, params, input_ids, train=train, key=key, **options)
        return make_output(GPT2ModelOutput, None, *enc)


class GPT2LMHeadModel(ParamTransforms, Model):
    """GPT-2 with the language-model head tied to ``transformer.wte`` (one leaf).

    Labels: ``labels`` (b, s), shifted inside (predict token t+1 at t); negative = ignored.
    Returns ``CausalLMOutput(logits (b, s, V), presents, hidden_states, attentions)``.
    """

    config_class = GPT2Config
    base_model_prefix = "transformer"
    token_embedding_path = ("wte", "weight")
    ignored_checkpoint_keys = _BUFFERS
    tied = {"lm_head.weight": "transformer.wte.weight"}
    supports_static_cache = True  # apply(..., past=buffers, cache_position=...)

    def init(self, key: Key) -> Params:
        return {"transformer": init_transformer(key, self.config)}

    def apply(
        self,
        params: Params,
        input_ids: Tensor,
        *,
        labels: Tensor | None = None,
        train: bool = False,
        key: Key | None = None,
        **options: Any,
    ) -> Any:
        enc = transformer(
            self.config, params["transformer"], input_ids, train=train, key=key, **options
        )
        logits = embedding.attend(params["transformer"]["wte"], enc.last_hidden_state)
        loss = None if labels is None else lm_loss(logits, labels)
        return make_output(CausalLMOutput, loss, logits, *enc[1:])


class GPT2DoubleHeadsModel(ParamTransforms, Model):
    """Language-model and multiple-choice heads over inputs (b, n_choices, s).

    ``mc_token_ids`` (b, n_choices): the token whose state scores each choice
    (default: the last). Labels: ``lm_labels`` (alias ``labels``) (b, n_choices, s),
    shifted inside; ``mc_labels`` (b,). ``past`` is per flattened (b * n_choices) row.
    """

    config_class = GPT2Config
    base_model_prefix = "transformer"
    token_embedding_path = ("wte", "weight")
    ignored_checkpoint_keys = _BUFFERS
    tied = GPT2LMHeadModel.tied

    def init(self, key: Key) -> Params:
        kt, ks = split(key)
        return {
            "transformer": init_transformer(kt, self.config),
            "multiple_choice_head": double_heads.init_head(ks, self.config),
        }

    def apply(
        self,
        params: Params,
        input_ids: Tensor,
        *,
        mc_token_ids: Tensor | None = None,
        lm_labels: Tensor | None = None,
        labels: Tensor | None = None,
        mc_labels: Tensor | None = None,
        train: bool = False,
        key: Key | None = None,
        **options: Any,
    ) -> Any:
        def run(p, ids, **kw):
            return tuple(transformer(self.config, p, ids, **kw))

        return double_heads.apply(
            self.config,
            params,
            input_ids,
            run=run,
            embed="wte",
            mc_token_ids=mc_token_ids,
            lm_labels=lm_labels,
            labels=labels,
            mc_labels=mc_labels,
            train=train,
            key=key,
            options=options,
            choice_attentions=True,
        )
