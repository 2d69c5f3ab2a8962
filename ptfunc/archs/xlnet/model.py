"""XLNet's base model: word embeddings, two-stream relative attention layers, memories.

Params tree (names of the pytorch-transformers state dict)::

    word_embedding.weight (vocab, d), mask_emb (1, 1, d)
    layer[i].rel_attn.{q,k,v,o,r,r_r_bias,r_s_bias,r_w_bias,seg_embed,layer_norm}
    layer[i].ff.{layer_1,layer_2,layer_norm}

Memories (``mems`` in, ``mems`` out) keep the seed's time-major layout: a tuple
with one ``(mem_len, batch, d_model)`` tensor per layer, so they pass to and
from code written for pytorch-transformers or ``transformers`` unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from ...layers import activations, attention, dropout, embedding
from ...layers.initializers import normal
from ...layers.remat import checkpoint
from ...random import Key, split, split_for_dropout
from ...tree import Params
from .. import inputs
from ..model import Model, make_output, output_types
from . import attention as rel
from .config import XLNetConfig

__all__ = ["XLNetModel", "XLNetModelOutput", "init_transformer", "transformer", "Encoded"]

XLNetModelOutput = output_types(
    "XLNetModelOutput",
    "last_hidden_state mems hidden_states attentions",
    "last_hidden_state (b, s, d), or (b, num_predict, d) with target_mapping (the query "
    "stream); mems: per layer (mem_len, b, d) (time-major), or () without use_mems; "
    "hidden_states: n_layer + 1 tensors (b, s, d), interleaved (h, g) pairs with "
    "target_mapping; attentions: per layer (b, heads, s, mem_len + s), or an "
    "(h, g) pair per layer with target_mapping.",
)


def init_transformer(key: Key, c: XLNetConfig) -> Params:
    """``word_embedding``, ``mask_emb``, ``layer`` (list) params; normal(0, initializer_range)."""
    kw, km, kl = split(key, 3)
    return {
        "word_embedding": embedding.init(kw, c.vocab_size, c.d_model, std=c.initializer_range),
        "mask_emb": normal(km, (1, 1, c.d_model), std=c.initializer_range),
        "layer": [rel.init_layer(k, c) for k in split(kl, c.n_layer)],
    }


def feed_forward_activation(c: XLNetConfig) -> Any:
    """``ff_activation``, with ``"gelu"`` read as the tanh approximation (the seed's)."""
    return activations.gelu_new if c.ff_activation == "gelu" else activations.get(c.ff_activation)


class Encoded(NamedTuple):
    """What the transformer returns to the heads."""

    output: Tensor
    mems: tuple[Tensor, ...]
    hidden_states: tuple[Tensor, ...]
    attentions: tuple[Any, ...]


def _shape_error(name: str, expected: str, got: Tensor | Any) -> ValueError:
    shape = tuple(got.shape) if isinstance(got, Tensor) else type(got).__name__
    return ValueError(f"{name} must have shape {expected}, got {shape}")


def _check_inputs(
    c: XLNetConfig,
    input_ids: Tensor,
    mems: Sequence[Tensor] | None,
    perm_mask: Tensor | None,
    target_mapping: Tensor | None,
    token_type_ids: Tensor | None,
    input_mask: Tensor | None,
    head_mask: Tensor | None,
    validate: bool,
) -> int:
    """Validate shapes (and, with ``validate``, ids in eager mode); returns the memory length.

    Positions are relative: any length is accepted. Token types may be any integers (only
    "same segment or not" matters), so only their dtype and shape are checked.
    """
    b, s = inputs.check_input_ids(input_ids, vocab_size=c.vocab_size, validate=validate)
    mem_len = 0
    if mems is not None and not (isinstance(mems, (tuple, list)) and len(mems) == 0):
        if not isinstance(mems, (tuple, list)) or len(mems) != c.n_layer:
            got = f"{len(mems)} tensors" if isinstance(mems, (tuple, list)) else type(mems).__name__
            raise ValueError(
                f"mems must hold one (mem_len, batch, d_model) tensor per layer "
                f"({c.n_layer}), got {got}"
            )
        mem_len = mems[0].shape[0] if isinstance(mems[0], Tensor) else -1
        for i, m in enumerate(mems):
            if not isinstance(m, Tensor) or tuple(m.shape) != (mem_len, b, c.d_model):
                raise _shape_error(
                    f"mems[{i}]", f"(mem_len, batch, d_model) = ({mem_len}, {b}, {c.d_model})", m
                )
    if perm_mask is not None:
        inputs.check_shape("perm_mask", perm_mask, [(b, s, s)], ["(batch, seq, seq)"])
    if target_mapping is not None:
        tm = target_mapping
        if not isinstance(tm, Tensor) or tm.dim() != 3 or (tm.shape[0], tm.shape[2]) != (b, s):
            expected = f"(batch, num_predict, seq) = ({b}, num_predict, {s})"
            raise _shape_error("target_mapping", expected, tm)
        if perm_mask is None:
            raise ValueError(
                "target_mapping needs a perm_mask: without one every query-stream position "
                "sees its own target token (pytorch-transformers allowed this and leaked the "
                "label). Mask the targets with perm_mask[b, i, j] = 1 for target tokens j, "
                "or pass torch.zeros(batch, seq, seq) to opt in to the leak explicitly."
            )
    inputs.check_per_token("token_type_ids", token_type_ids, b, s)
    if token_type_ids is not None:
        inputs.check_index_tensor("token_type_ids", token_type_ids)
    inputs.check_per_token("input_mask/attention_mask", input_mask, b, s)
    inputs.check_head_mask(head_mask, c.n_layer, c.n_head)
    return mem_len


def _cache(c: XLNetConfig, h: Tensor, prev: Tensor | None) -> Tensor:
    """New memory from a layer's input h (b, s, d) and the previous memory (m, b, d):
    the first ``reuse_len`` tokens appended, the last ``mem_len`` kept (all when
    ``mem_len`` is None or 0), detached; time-major (m', b, d)."""
    new = h.transpose(0, 1)
    if c.reuse_len:
        new = new[: c.reuse_len]
    if prev is not None:
        new = torch.cat([prev.to(new.dtype), new], dim=0)
    if c.mem_len:
        new = new[-c.mem_len :]
    return new.detach()


def transformer(
    c: XLNetConfig,
    params: Params,
    input_ids: Tensor,
    *,
    mems: Sequence[Tensor] | None = None,
    perm_mask: Tensor | None = None,
    target_mapping: Tensor | None = None,
    token_type_ids: Tensor | None = None,
    input_mask: Tensor | None = None,
    attention_mask: Tensor | None = None,
    head_mask: Tensor | None = None,
    use_mems: bool | None = None,
    output_attentions: bool | None = None,
    output_hidden_states: bool | None = None,
    train: bool = False,
    key: Key | None = None,
    remat: bool = False,
    validate: bool = True,
) -> Encoded:
    """input_ids (b, s) -> the last layer's content stream (b, s, d), or its query
    stream (b, num_predict, d) with ``target_mapping``; see :class:`XLNetModel`.

    ``remat=True`` recomputes each layer's activations in the backward pass.
    ``validate=False`` skips the value checks of the inputs (:mod:`ptfunc.archs.inputs`).
    """
    dropout.require_key(train, key)
    if input_mask is not None and attention_mask is not None:
        raise ValueError(
            "pass either input_mask (1 = padding, the original XLNet's) or attention_mask "
            "(1 = token, BERT's), not both"
        )
    mask = input_mask if attention_mask is None else attention_mask
    mem_len = _check_inputs(
        c, input_ids, mems, perm_mask, target_mapping, token_type_ids, mask, head_mask, validate
    )
    if attention_mask is not None:
        input_mask = 1.0 - attention_mask.to(torch.float32)
    want_att = c.output_attentions if output_attentions is None else output_attentions
    want_hidden = c.output_hidden_states if output_hidden_states is None else output_hidden_states
    use_mems = (c.use_mems_train if train else c.use_mems_eval) if use_mems is None else use_mems
    b, s = input_ids.shape
    dtype, device = params["word_embedding"]["weight"].dtype, input_ids.device
    keys = split_for_dropout(key, c.n_layer + 2, train)
    k_h, k_g, k_pos = split_for_dropout(keys[0], 3, train)

    h = dropout.apply(
        embedding.apply(params["word_embedding"], input_ids), c.dropout, key=k_h, train=train
    )
    g = None
    if target_mapping is not None:
        g = params["mask_emb"].expand(b, target_mapping.shape[1], -1)
        g = dropout.apply(g, c.dropout, key=k_g, train=train)
    mask_h, mask_g = rel.attention_masks(c, s, mem_len, input_mask, perm_mask, dtype, device)
    seg = rel.segment_differs(token_type_ids, mem_len)
    pos_emb = rel.positional_encoding(c, s, mem_len + s, b, dtype, device)
    if train and c.dropout > 0:  # the seed drops out a (positions, batch, d) copy
        pos_emb = dropout.apply(pos_emb.expand(b, -1, -1), c.dropout, key=k_pos, train=train)
    head_masks = attention.per_layer_head_masks(head_mask, c.n_layer, dtype)
    act = feed_forward_activation(c)

    new_mems: list[Tensor] = []
    hidden: list[Tensor] = []
    probs: list[Any] = []

    def run_layer(layer, h, g, mem, pos_emb, seg, mask_h, mask_g, target_mapping, head, k):
        return rel.apply_layer(
            layer,
            c,
            h,
            g,
            mem=mem,
            pos_emb=pos_emb,
            seg=seg,
            mask_h=mask_h,
            mask_g=mask_g,
            target_mapping=target_mapping,
            head_mask=head,
            act=act,
            need_weights=want_att,
            key=k,
            train=train,
        )

    for i, (layer, k) in enumerate(zip(params["layer"], keys[1:-1])):
        mem = mems[i] if mem_len else None
        if use_mems:
            new_mems.append(_cache(c, h, mem))
        if want_hidden:
            hidden.extend((h,) if g is None else (h, g))
        mem = None if mem is None else mem.transpose(0, 1).to(h.dtype)
        h, g, layer_probs = checkpoint(
            run_layer,
            layer,
            h,
            g,
            mem,
            pos_emb,
            seg,
            mask_h,
            mask_g,
            target_mapping,
            head_masks[i],
            k,
            enabled=remat,
        )
        if want_att:
            probs.append(layer_probs if g is not None else layer_probs[0])
    if want_hidden:
        hidden.extend((h,) if g is None else (h, g))
    out = dropout.apply(h if g is None else g, c.dropout, key=keys[-1], train=train)
    return Encoded(out, tuple(new_mems), tuple(hidden), tuple(probs))


class XLNetModel(Model):
    """The bare XLNet transformer (``XLNetModel`` of pytorch-transformers).

    ``apply(params, input_ids, *, mems=None, perm_mask=None, target_mapping=None,
    token_type_ids=None, input_mask=None, attention_mask=None, head_mask=None,
    use_mems=None, output_attentions=None, output_hidden_states=None, train=False,
    key=None, remat=False, validate=True)`` -> ``XLNetModelOutput(last_hidden_state, mems,
    hidden_states, attentions)``. ``remat=True`` recomputes each layer in the backward pass
    (activation checkpointing). ``validate=False`` skips the value checks of the inputs
    (ids in range; see :mod:`ptfunc.archs.inputs`); shapes and dtypes are always checked.

    Inputs (b batch, s tokens, all optional but ``input_ids``):
        input_ids: (b, s) int64/int32 in [0, vocab_size).
        mems: per layer (mem_len, b, d_model), a previous call's ``mems``.
        perm_mask: (b, s, s) float/int, 1 = token i may not see token j.
        target_mapping: (b, num_predict, s) float, one-hot rows choosing the tokens the
            query stream predicts. Needs ``perm_mask`` (a clear error otherwise: without
            it the query stream sees its own target, which the seed silently allowed).
        token_type_ids: (b, s) any integers; only "same segment or not" matters.
        input_mask: (b, s), 1 = padding (the original XLNet's), or
        attention_mask: (b, s), 1 = token (BERT's); not both.
        head_mask: (n_head,) or (n_layer, n_head), 1 keeps a head (both streams).
        use_mems: return memories; default ``config.use_mems_eval`` (True), or
            ``config.use_mems_train`` (False) when ``train``. Given ``mems`` are used
            either way.

    Memories are the layers' inputs: the first ``reuse_len`` tokens of this segment
    after the previous memory, the last ``mem_len`` kept, detached (no gradient flows
    into earlier segments). With ``mem_len`` None or 0 every state is kept, as today's
    ``transformers`` does (pytorch-transformers 1.0 returned Nones there). Without
    ``use_mems`` the field is ``()``.

    Outputs are in the params' dtype (float32, bfloat16 or float16); memories are
    cast to it on the way in. ``train=True`` turns dropout on (embeddings, positions,
    attention, residuals, output) and needs ``key``.
    """

    config_class = XLNetConfig
    base_model_prefix = "transformer"
    is_base_model = True
    token_embedding_path = ("word_embedding", "weight")

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
        return make_output(XLNetModelOutput, None, *enc)
