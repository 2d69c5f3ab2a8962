"""XLM's base model: token, position and language embeddings, then a post-LN
transformer whose padded positions are zeroed after every layer.

Params tree (names of the pytorch-transformers / ``transformers`` state dict)::

    position_embeddings.weight          (learned positions only; sinusoids are computed)
    lang_embeddings.weight              (only when n_langs > 1 and use_lang_emb)
    embeddings.weight, layer_norm_emb
    attentions[i].{q_lin,k_lin,v_lin,out_lin}, layer_norm1[i],
    ffns[i].{lin1,lin2}, layer_norm2[i]

The incremental-decoding ``cache`` (causal models only) is a tuple with one
``(2, batch, heads, length, head_dim)`` tensor per layer (stacked keys and
values, GPT-2's ``presents`` layout); ``length``, the number of tokens already
processed, is its shape. ``apply`` never mutates it: the extended cache comes
back in the output. Unlike the seed, whose ``input_ids`` with a cache held the
whole sequence (the first ``cache['slen']`` tokens were skipped), ptfunc takes
only the new tokens, as GPT-2's ``past`` does.
"""

from __future__ import annotations

from typing import Any, NamedTuple

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
    positions,
)
from ...layers.remat import checkpoint
from ...random import Key, split, split_for_dropout
from ...tree import Params
from .. import inputs
from ..model import Model, check_options, make_output, output_types
from ..prune import layer_head_masks
from .config import XLMConfig
from .prune import ParamTransforms, prune_init

__all__ = ["XLMModel", "XLMModelOutput", "init_transformer", "transformer", "Encoded"]

XLMModelOutput = output_types(
    "XLMModelOutput",
    "last_hidden_state cache? hidden_states attentions",
    "last_hidden_state (b, s, emb_dim); cache: per layer (2, b, heads, past + s, head_dim) "
    "when a cache was given or use_cache=True, else (); hidden_states: n_layers + 1 tensors "
    "(b, s, emb_dim) when asked; attentions: per layer (b, heads, s, past + s) when asked.",
)

BASE_OPTIONS = frozenset(
    {
        "lengths",
        "position_ids",
        "langs",
        "token_type_ids",
        "attention_mask",
        "cache",
        "use_cache",
        "head_mask",
        "output_attentions",
        "output_hidden_states",
        "remat",
        "validate",
    }
)


def check_config(c: XLMConfig) -> None:
    """Refuse what the seed refused: XLM as a decoder."""
    if not c.is_encoder:
        raise NotImplementedError("XLM can only be used as an encoder (is_encoder=True), as in 1.0")


def init_transformer(key: Key, c: XLMConfig) -> Params:
    """Params of the base model, initialised as the seed: embeddings N(0, embed_init_std),
    dense weights N(0, init_std) with zero biases, LayerNorms ones/zeros."""
    kp, kl, ke, kt = split(key, 4)
    d = c.emb_dim
    p: Params = {}
    if not c.sinusoidal_embeddings:
        p["position_embeddings"] = embedding.init(
            kp, c.max_position_embeddings, d, std=c.embed_init_std
        )
    if c.has_lang_embeddings:
        p["lang_embeddings"] = embedding.init(kl, c.n_langs, d, std=c.embed_init_std)
    p["embeddings"] = embedding.init(ke, c.vocab_size, d, std=c.embed_init_std)
    p["layer_norm_emb"] = layer_norm.init(d)
    att, ln1, ffn, ln2 = [], [], [], []
    for k in split(kt, c.n_layers):
        kq, kk, kv, ko, k1, k2 = split(k, 6)
        att.append(
            {
                name: linear.init(kx, d, d, std=c.init_std)
                for name, kx in zip(("q_lin", "k_lin", "v_lin", "out_lin"), (kq, kk, kv, ko))
            }
        )
        ln1.append(layer_norm.init(d))
        ffn.append(
            {
                "lin1": linear.init(k1, d, 4 * d, std=c.init_std),
                "lin2": linear.init(k2, 4 * d, d, std=c.init_std),
            }
        )
        ln2.append(layer_norm.init(d))
    p.update(attentions=att, layer_norm1=ln1, ffns=ffn, layer_norm2=ln2)
    return prune_init(p, c)  # the shapes of config.pruned_heads


class Encoded(NamedTuple):
    """What the transformer returns to the heads."""

    last_hidden_state: Tensor
    cache: tuple[Tensor, ...]
    hidden_states: tuple[Tensor, ...]
    attentions: tuple[Tensor, ...]


def _check_cache(c: XLMConfig, cache: Any, batch: int) -> int:
    """Validate a cache; returns the number of tokens it holds."""
    if not c.causal:
        raise ValueError(
            "cache needs a causal XLM (config.causal=True): a bidirectional model's earlier "
            "states change when tokens are added, so they cannot be cached"
        )
    if not isinstance(cache, (tuple, list)) or len(cache) != c.n_layers:
        got = (
            f"{type(cache).__name__} of length {len(cache)}"
            if isinstance(cache, (tuple, list))
            else type(cache).__name__
        )
        raise ValueError(
            f"cache must be a tuple of {c.n_layers} tensors (one per layer), got {got}"
        )
    length = None
    for i, t in enumerate(cache):
        heads = c.n_heads - len(c.pruned_heads.get(i, ()))  # pruned layers have fewer
        want = (2, batch, heads, None, c.head_dim)
        ok = isinstance(t, Tensor) and t.dim() == 5
        ok = ok and all(w is None or w == s for w, s in zip(want, t.shape))
        if ok and length is not None:
            ok = t.shape[3] == length
        if not ok:
            got = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
            raise ValueError(
                f"cache[{i}] must have shape (2, {batch}, {heads}, length, {c.head_dim}) "
                f"with the same length in every layer, got {got}"
            )
        length = t.shape[3]
    return int(length)


def _last(
    x: Tensor | None,
    s: int,
    past: int,
    name: str,
    batch: int,
    *,
    upper: int | None = None,
    what: str = "",
    validate: bool = True,
) -> Tensor | None:
    """Accept (b, s) or, with a cache, the seed's whole-sequence (b, past + s); keep the last s.

    With ``upper``, ``x`` holds ids in ``[0, upper)`` (see :mod:`ptfunc.archs.inputs`)."""
    if x is None:
        return None
    allowed, described = [(batch, s)], ["(batch, seq)"]
    if past:
        allowed.append((batch, past + s))
        described.append("(batch, past + seq)")
    inputs.check_shape(name, x, allowed, described)
    x = x[:, x.shape[1] - s :]
    if upper is not None:
        inputs.check_index_tensor(name, x)
        inputs.check_range(name, x, upper, what, validate=validate)
    return x


def _padding_mask(
    c: XLMConfig,
    input_ids: Tensor,
    lengths: Tensor | None,
    attention_mask: Tensor | None,
    past: int,
    validate: bool,
) -> Tensor:
    """Keep-mask (b, s) of the new positions: from ``attention_mask``, else ``lengths``
    (counted from the start of the sequence, cached tokens included), else the number
    of non-padding tokens (the seed's default: a prefix of that length is kept)."""
    b, s = input_ids.shape
    if attention_mask is not None:
        return _last(attention_mask, s, past, "attention_mask", b) != 0
    if lengths is None:
        lengths = (input_ids != c.pad_index).sum(dim=1) + past
    else:
        if not isinstance(lengths, Tensor) or lengths.shape != (b,):
            got = tuple(lengths.shape) if isinstance(lengths, Tensor) else type(lengths).__name__
            raise ValueError(f"lengths must have shape ({b},), got {got}")
        inputs.check_index_tensor("lengths", lengths)
        if validate and lengths.numel() and inputs.values_readable(lengths):
            lo, hi = torch.stack([lengths.min(), lengths.max()]).tolist()
            if lo < 0 or hi > past + s:
                raise ValueError(
                    f"lengths must lie in [0, {past + s}] (the sequence length"
                    f"{' with the cache' if past else ''}), got values in [{lo}, {hi}]"
                )
    pos = torch.arange(past, past + s, device=input_ids.device)
    return pos[None, :] < lengths[:, None]


def _attention_bias(c: XLMConfig, mask: Tensor, s: int, past: int, dtype: torch.dtype) -> Tensor:
    """Additive bias: causal (b-independent (1, 1, s, past + s)) or padding keys (b, 1, 1, s).

    As in the seed, a causal model does not hide padded keys (their states are zeroed)."""
    low = torch.finfo(dtype).min
    if c.causal:
        q = torch.arange(past, past + s, device=mask.device)
        k = torch.arange(past + s, device=mask.device)
        keep = k[None, :] <= q[:, None]
        return torch.zeros((), dtype=dtype, device=mask.device).masked_fill(~keep, low)[None, None]
    return torch.zeros((), dtype=dtype, device=mask.device).masked_fill(~mask, low)[:, None, None]


def _embed(c, p, input_ids, position_ids, langs, token_type_ids, past, dtype):
    """Word, position, language (and token-type) embeddings; ids checked by :func:`_ids`."""
    b, s = input_ids.shape
    x = embedding.apply(p["embeddings"], input_ids, padding_idx=c.pad_index)
    if position_ids is None:
        position_ids = torch.arange(past, past + s, device=input_ids.device)[None]
    if c.sinusoidal_embeddings:
        x = x + positions.interleaved_sinusoids(position_ids, c.emb_dim, dtype=dtype)
    else:
        x = x + embedding.apply(p["position_embeddings"], position_ids)
    if langs is not None and c.has_lang_embeddings:
        x = x + embedding.apply(p["lang_embeddings"], langs)
    if token_type_ids is not None:
        x = x + embedding.apply(p["embeddings"], token_type_ids, padding_idx=c.pad_index)
    return layer_norm.apply(p["layer_norm_emb"], x, eps=c.layer_norm_eps)


def _ids(c, b, s, past, position_ids, langs, token_type_ids, validate):
    """The per-token id inputs, checked and cut to the new positions."""
    return (
        _last(
            position_ids,
            s,
            past,
            "position_ids",
            b,
            upper=c.max_position_embeddings,
            what="max_position_embeddings",
            validate=validate,
        ),
        _last(langs, s, past, "langs", b, upper=c.n_langs, what="n_langs", validate=validate),
        _last(
            token_type_ids,
            s,
            past,
            "token_type_ids",
            b,
            upper=c.vocab_size,
            what="the vocabulary size: token types are embedded with the word embeddings",
            validate=validate,
        ),
    )


def transformer(
    c: XLMConfig,
    params: Params,
    input_ids: Tensor,
    *,
    lengths: Tensor | None = None,
    position_ids: Tensor | None = None,
    langs: Tensor | None = None,
    token_type_ids: Tensor | None = None,
    attention_mask: Tensor | None = None,
    cache: tuple[Tensor, ...] | None = None,
    use_cache: bool = False,
    head_mask: Tensor | None = None,
    output_attentions: bool | None = None,
    output_hidden_states: bool | None = None,
    key: Key | None = None,
    train: bool = False,
    remat: bool = False,
    validate: bool = True,
) -> Encoded:
    """input_ids (b, s) -> hidden states (b, s, emb_dim), the new cache and optional outputs.

    ``remat=True`` recomputes each layer's activations in the backward pass.
    ``validate=False`` skips the value checks of the inputs (:mod:`ptfunc.archs.inputs`).
    """
    check_config(c)
    dropout.require_key(train, key)
    b, s = inputs.check_input_ids(input_ids, vocab_size=c.vocab_size, validate=validate)
    past = 0 if cache is None else _check_cache(c, cache, b)
    inputs.check_positions(s, past, c.max_position_embeddings, "max_position_embeddings")
    position_ids, langs, token_type_ids = _ids(
        c, b, s, past, position_ids, langs, token_type_ids, validate
    )
    inputs.check_head_mask(head_mask, c.n_layers, c.n_heads, pruned=bool(c.pruned_heads))
    want_att = c.output_attentions if output_attentions is None else output_attentions
    want_hidden = c.output_hidden_states if output_hidden_states is None else output_hidden_states
    keep_cache = use_cache or cache is not None
    if keep_cache and not c.causal:
        _check_cache(c, cache, b)  # raises: only causal models cache
    dtype = params["embeddings"]["weight"].dtype
    keys = split_for_dropout(key, 2 * c.n_layers + 1, train)

    mask = _padding_mask(c, input_ids, lengths, attention_mask, past, validate)
    keep = mask[..., None].to(dtype)
    x = _embed(c, params, input_ids, position_ids, langs, token_type_ids, past, dtype)
    x = dropout.apply(x, c.dropout, key=keys[0], train=train) * keep

    bias = _attention_bias(c, mask, s, past, dtype)
    heads = layer_head_masks(head_mask, c, dtype)
    act = activations.gelu if c.gelu_activation else activations.relu
    new_cache, hidden, probs_all = [], [], []

    def run_layer(pa, ln1, pf, ln2, x, layer_cache, bias, keep, head, k_layer, k_ff):
        """One post-LN layer: x (b, s, d) -> (x, stacked key/value or None, probs or None)."""
        q = attention.split_heads(linear.apply(pa["q_lin"], x), c.head_dim)
        k = attention.split_heads(linear.apply(pa["k_lin"], x), c.head_dim)
        v = attention.split_heads(linear.apply(pa["v_lin"], x), c.head_dim)
        if layer_cache is not None:
            k = torch.cat([layer_cache[0], k], dim=2)
            v = torch.cat([layer_cache[1], v], dim=2)
        kv = torch.stack([k, v]) if keep_cache else None
        k_att, k_res = split_for_dropout(k_layer, 2, train)
        context, probs = attention.dot_product_attention(
            q,
            k,
            v,
            bias=bias,
            dropout_rate=c.attention_dropout,
            head_mask=head,
            need_weights=want_att,
            key=k_att,
            train=train,
        )
        a = linear.apply(pa["out_lin"], attention.merge_heads(context))
        x = x + dropout.apply(a, c.dropout, key=k_res, train=train)
        x = layer_norm.apply(ln1, x, eps=c.layer_norm_eps)
        h = feed_forward.apply(pf["lin1"], pf["lin2"], x, activation=act)
        x = x + dropout.apply(h, c.dropout, key=k_ff, train=train)
        return layer_norm.apply(ln2, x, eps=c.layer_norm_eps) * keep, kv, probs

    for i in range(c.n_layers):
        if want_hidden:
            hidden.append(x)
        x, kv, probs = checkpoint(
            run_layer,
            params["attentions"][i],
            params["layer_norm1"][i],
            params["ffns"][i],
            params["layer_norm2"][i],
            x,
            None if cache is None else cache[i],
            bias,
            keep,
            heads[i],
            keys[1 + 2 * i],
            keys[2 + 2 * i],
            enabled=remat,
        )
        if keep_cache:
            new_cache.append(kv)
        if want_att:
            probs_all.append(probs)
    if want_hidden:
        hidden.append(x)
    return Encoded(x, tuple(new_cache), tuple(hidden), tuple(probs_all))


class XLMModel(ParamTransforms, Model):
    """The bare XLM transformer (``XLMModel`` of pytorch-transformers).

    ``apply(params, input_ids, *, lengths=None, position_ids=None, langs=None,
    token_type_ids=None, attention_mask=None, cache=None, use_cache=False,
    head_mask=None, output_attentions=None, output_hidden_states=None, train=False,
    key=None, remat=False)`` -> ``XLMModelOutput(last_hidden_state, cache, hidden_states,
    attentions)``.

    - ``lengths`` (b,): tokens kept per sequence (a prefix); default: the number of
      tokens that are not ``pad_index``, as in the seed. ``attention_mask`` (b, s),
      1 = keep, replaces it. Padded positions are zeroed after every layer; in a
      bidirectional model they are also hidden as keys (a causal model only
      masks the future, as in the seed).
    - ``langs`` (b, s) in ``[0, n_langs)``: added through ``lang_embeddings`` when
      the model has them (``n_langs > 1 and use_lang_emb``), ignored otherwise.
    - ``token_type_ids`` (b, s) are embedded with the word embeddings (the seed's choice).
    - ``cache`` (causal models): see the module docstring; ``use_cache=True`` starts one.
      With a cache, ``input_ids`` are the new tokens only; ``lengths`` counts from
      the start of the sequence; positions continue after the cached ones.
    - ``head_mask`` (heads,) or (layers, heads): 1 keeps a head.
    - ``remat=True`` recomputes each layer in the backward pass (activation checkpointing).
    - ``validate=False`` skips the value checks of the inputs (ids, positions, langs,
      lengths in range; see :mod:`ptfunc.archs.inputs`); shapes and dtypes are always checked.
    """

    config_class = XLMConfig
    base_model_prefix = "transformer"
    is_base_model = True
    token_embedding_path = ("embeddings", "weight")

    def __init__(self, config: XLMConfig) -> None:
        super().__init__(config)
        check_config(config)

    @property
    def ignored_checkpoint_keys(self) -> tuple[str, ...]:  # type: ignore[override]
        """``position_ids`` (a buffer) and, for sinusoidal models, the fixed position table:
        ptfunc computes it in ``apply`` rather than loading it."""
        fixed = ("position_embeddings.weight",) if self.config.sinusoidal_embeddings else ()
        return ("position_ids", *fixed)

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
        check_options(f"{type(self).__name__}.apply", options, BASE_OPTIONS)
        enc = transformer(self.config, params, input_ids, key=key, train=train, **options)
        return make_output(XLMModelOutput, None, *enc)
