"""OpenAI GPT: post-LN causal transformer with Conv1D layers and no final LayerNorm.

Params tree (checkpoint names)::

    tokens_embed.weight, positions_embed.weight
    h[i].attn.c_attn, h[i].attn.c_proj, h[i].ln_1, h[i].mlp.c_fc, h[i].mlp.c_proj, h[i].ln_2

Token types are embedded with ``tokens_embed`` (the seed's choice). ``attention_mask``
(b, s), 1 = attend, is accepted as today's ``transformers`` does (1.0 had none).
"""

from __future__ import annotations

from typing import Any

import torch
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
from ...layers.initializers import normal
from ...layers.remat import checkpoint
from ...random import Key, split, split_for_dropout
from ...tree import Params
from .. import double_heads, inputs
from ..double_heads import lm_loss
from ..model import Model, make_output, output_types
from ..prune import layer_head_masks
from ..resize import replace_at
from .config import OpenAIGPTConfig
from .prune import ParamTransforms, prune_init

__all__ = ["OpenAIGPTModel", "OpenAIGPTLMHeadModel", "OpenAIGPTDoubleHeadsModel"]

BaseOutput = output_types(
    "OpenAIGPTModelOutput",
    "last_hidden_state hidden_states attentions",
    "last_hidden_state (b, s, d).",
)
LMOutput = output_types("OpenAIGPTLMOutput", "logits hidden_states attentions", "logits (b, s, V).")
_BUFFERS = ("attn.bias", "position_ids")
_ACT = {
    "gelu": activations.gelu_new,
    "relu": activations.relu,
    "swish": activations.swish,
    "silu": activations.swish,
}


def init_transformer(key: Key, c: OpenAIGPTConfig) -> Params:
    kt, kp, kh = split(key, 3)
    std, d = c.initializer_range, c.n_embd
    layers = []
    for k in split(kh, c.n_layer):
        k1, k2, k3 = split(k, 3)
        layers.append(
            {
                "attn": causal_attention.init(k1, d, std=std),
                "ln_1": layer_norm.init(d),
                "mlp": {
                    "c_fc": linear.init_conv1d(k2, d, 4 * d, std=std),
                    "c_proj": linear.init_conv1d(k3, 4 * d, d, std=std),
                },
                "ln_2": layer_norm.init(d),
            }
        )
    base = {
        "tokens_embed": embedding.init(kt, c.total_tokens_embeddings, d, std=std),
        "positions_embed": embedding.init(kp, c.n_positions, d, std=std),
        "h": layers,
    }
    return prune_init(base, c)  # the shapes of config.pruned_heads


def transformer(
    c: OpenAIGPTConfig,
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
):
    """input_ids (b, s) -> (hidden (b, s, d), hidden_states, attentions).

    ``remat=True`` recomputes each block's activations in the backward pass.
    ``validate=False`` skips the value checks of the inputs (:mod:`ptfunc.archs.inputs`).
    """
    dropout.require_key(train, key)
    b, s = inputs.check_input_ids(
        input_ids,
        vocab_size=c.total_tokens_embeddings,
        max_positions=c.n_positions,
        positions_name="n_positions",
        validate=validate,
    )
    inputs.check_per_token("attention_mask", attention_mask, b, s)
    inputs.check_per_token(
        "token_type_ids",
        token_type_ids,
        b,
        s,
        upper=c.total_tokens_embeddings,
        what="the vocabulary size: token types are embedded with tokens_embed",
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
    tokens = params["tokens_embed"]
    dtype = tokens["weight"].dtype
    x = embedding.apply(tokens, input_ids)
    if position_ids is None:
        x = x + params["positions_embed"]["weight"][:s]
    else:
        x = x + embedding.apply(params["positions_embed"], position_ids)
    if token_type_ids is not None:
        x = x + embedding.apply(tokens, token_type_ids)
    x = dropout.apply(x, c.embd_pdrop, key=keys[0], train=train)
    bias = causal_attention.causal_bias(s, 0, attention_mask, dtype, x.device)
    heads = layer_head_masks(head_mask, c, dtype)
    act = _ACT[c.afn]
    hidden, probs_all = [], []

    def run_block(block: Params, x: Tensor, bias: Tensor, head: Tensor | None, k: Key | None):
        """Post-LN block: x (b, s, d) -> (x, attention probs or None)."""
        k_attn, k_mlp = split_for_dropout(k, 2, train)
        a, _, probs = causal_attention.apply(
            block["attn"],
            x,
            head_dim=c.head_dim,
            bias=bias,
            attention_dropout=c.attn_pdrop,
            residual_dropout=c.resid_pdrop,
            head_mask=head,
            need_weights=want_att,
            key=k_attn,
            train=train,
        )
        n = layer_norm.apply(block["ln_1"], x + a, eps=c.layer_norm_epsilon)
        m = feed_forward.apply_conv1d(block["mlp"], n, activation=act)
        m = dropout.apply(m, c.resid_pdrop, key=k_mlp, train=train)
        return layer_norm.apply(block["ln_2"], n + m, eps=c.layer_norm_epsilon), probs

    for block, head, k in zip(params["h"], heads, keys[1:]):
        if want_hidden:
            hidden.append(x)
        x, probs = checkpoint(run_block, block, x, bias, head, k, enabled=remat)
        if want_att:
            probs_all.append(probs)
    if want_hidden:
        hidden.append(x)
    return x, tuple(hidden), tuple(probs_all)


class _SpecialTokens:
    """``set_num_special_tokens``: 0.6's way to add learned special tokens, as a pure transform."""

    def set_num_special_tokens(self, params: Params, num_special_tokens: int, *, key: Key):
        """Resize ``tokens_embed`` to ``vocab_size + num_special_tokens`` rows: the first
        ``vocab_size`` rows are kept, the special rows drawn fresh (as 0.6.2 does).

        Returns:
            ``(model whose config.n_special is num_special_tokens, new params)``.
        """
        if not isinstance(num_special_tokens, int) or num_special_tokens < 0:
            raise ValueError(f"num_special_tokens must be an int >= 0, got {num_special_tokens!r}")
        c = self.config
        if c.n_special == num_special_tokens:
            return self, params
        path = (("transformer",) if self.params_prefix else ()) + ("tokens_embed", "weight")
        old = (
            params["transformer"]["tokens_embed"]["weight"]
            if self.params_prefix
            else params["tokens_embed"]["weight"]
        )
        fresh = normal(
            key,
            (c.vocab_size + num_special_tokens, old.shape[1]),
            std=c.initializer_range,
            dtype=old.dtype,
        ).to(old.device)
        weight = torch.cat([old[: c.vocab_size], fresh[c.vocab_size :]])
        return type(self)(c.replace(n_special=num_special_tokens)), replace_at(params, path, weight)


class OpenAIGPTModel(ParamTransforms, _SpecialTokens, Model):
    """The bare OpenAI GPT: ``(last_hidden_state (b, s, d), hidden_states, attentions)``.

    Options as the seed's forward, plus ``remat=True``: recompute each block in the
    backward pass (activation checkpointing), and ``validate=False``: skip the value
    checks of the inputs (ids in range; see :mod:`ptfunc.archs.inputs`).
    """

    config_class = OpenAIGPTConfig
    base_model_prefix = "transformer"
    token_embedding_path = ("tokens_embed", "weight")
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
        return make_output(
            BaseOutput,
            None,
            *transformer(self.config, params, input_ids, train=train, key=key, **options),
        )


class OpenAIGPTLMHeadModel(ParamTransforms, _SpecialTokens, Model):
    """OpenAI GPT with the LM head tied to ``tokens_embed``; ``labels`` shifted inside."""

    config_class = OpenAIGPTConfig
    base_model_prefix = "transformer"
    token_embedding_path = ("tokens_embed", "weight")
    ignored_checkpoint_keys = _BUFFERS
    tied = {"lm_head.weight": "transformer.tokens_embed.weight"}

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
        h, hidden, att = transformer(
            self.config, params["transformer"], input_ids, train=train, key=key, **options
        )
        logits = embedding.attend(params["transformer"]["tokens_embed"], h)
        loss = None if labels is None else lm_loss(logits, labels)
        return make_output(LMOutput, loss, logits, hidden, att)


class OpenAIGPTDoubleHeadsModel(ParamTransforms, _SpecialTokens, Model):
    """LM and multiple-choice heads over (b, n_choices, s), as GPT-2's (``presents`` is ``()``)."""

    config_class = OpenAIGPTConfig
    base_model_prefix = "transformer"
    token_embedding_path = ("tokens_embed", "weight")
    ignored_checkpoint_keys = _BUFFERS
    tied = OpenAIGPTLMHeadModel.tied

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
            h, hidden, att = transformer(self.config, p, ids, **kw)
            return h, (), hidden, att

        return double_heads.apply(
            self.config,
            params,
            input_ids,
            run=run,
            embed="tokens_embed",
            mc_token_ids=mc_token_ids,
            lm_labels=lm_labels,
            labels=labels,
            mc_labels=mc_labels,
            train=train,
            key=key,
            options=options,
        )
