"""Transformer-XL (Dai et al., 2019): base model and LM head with segment-level memory.

Params tree (names of pytorch-transformers 1.0's state dict)::

    word_emb.emb_layers[i].weight, word_emb.emb_projs[i]      (ptfunc.layers.adaptive_embedding)
    layers[i].dec_attn.{qkv_net,o_net,r_net,layer_norm,r_w_bias,r_r_bias}, layers[i].pos_ff...
    r_w_bias, r_r_bias                  (n_head, d_head), shared by all layers when untie_r=False
    crit.cluster_weight, crit.cluster_bias, crit.out_layers[i], crit.out_projs[i]   (LM head)

The LM head stores tied weights once: with ``tie_weight`` its ``out_layers[i]``
hold only the bias and read the embedding table; projections flagged in
``tie_projs`` are read from ``word_emb.emb_projs``. :attr:`TransfoXLLMHeadModel.tied`
names the checkpoint copies (config-dependent), so 1.0 state dicts load by table.

Memories (``mems``): a list or tuple of ``n_layer`` tensors of shape
``(mem_len, batch, d_model)``, **time-major as in pytorch-transformers and
transformers 4.x**, so memories move between ptfunc and Hugging Face code
unchanged. Layer ``i``'s memory holds the inputs of layer ``i`` at the previous
positions. Outputs carry the new memories: the last ``mem_len`` of
``[mems; this segment's layer inputs]``, leaving out the last ``ext_len``
positions of the segment.

Decisions on the seed's quirks (each is tested against pytorch-transformers 1.0.0):

* **mems=None is 1.0's first segment**: with ``mem_len > 0`` the segment attends
  to ``mem_len`` zero memories (what ``model.init_mems(batch)`` returns), so
  ``apply(params, ids)`` equals 1.0's ``model(ids)`` (and transformers 4.x's).
  With ``mem_len == 0`` there is no memory and the output's ``mems`` is ``None``,
  as in 1.0. **mems=() (or [])** starts from empty memories instead, as the
  paper's code does (its ``init_mems`` makes length-0 tensors); 1.0 has no
  spelling for that (it crashes on an empty list).
* **Labels are 1.0's**: ``labels`` (b, s) int64 is the token each position
  predicts, **not shifted** (1.0's docstring says shifted; its code does not shift),
  negative labels (1.0's -1, today's -100) ignored with loss 0. With labels the
  output is 1.0's tuple ``(losses (b, s), None, mems, [hidden_states],
  [attentions])``: per-token NLL first, ``None`` where ``prediction_scores`` would
  be (not computed), then the memories. ``out.loss`` (read by name, not in the
  tuple) is the mean of the nonzero per-token losses, as transformers 4.46.3
  computes it (ignored positions are 0; ptfunc gives 0 when nothing is counted,
  where 4.46.3 overwrites a label with ``eos_token_id``).
  ``shift_labels=True`` gives transformers 4.46.3's meaning: position t predicts
  ``labels[:, t + 1]``, ``losses`` (b, s-1), the same tuple.
* **Per-token losses are in token order**: ``losses[i, j]`` is token (i, j)'s
  loss. 1.0 (``ProjectedAdaptiveLogSoftmax`` with ``keep_order=False``, and
  transformers 4.46.3) returns them grouped by cluster whenever ``cutoffs`` are
  set, so its ``losses[i, j]`` is some other token's; the values (and their sum
  and mean) are the same.
* **Memory update with ext_len > 0**: 1.0 calls ``_update_mems`` with the query
  and memory lengths swapped (issue #2970); ptfunc keeps positions
  ``[mlen + qlen - ext_len - mem_len, mlen + qlen - ext_len)``, the paper's rule
  (transformers 4.x fixed the argument order and dropped ``ext_len``; the two
  agree when ``ext_len == 0``).
* **Memories are detached** (``detach_mems=True``, the seed's behaviour): a
  training step's gradient stops at the segment boundary. Pass
  ``detach_mems=False`` to get memories that carry gradient into the next
  segment (backpropagation through several segments).
* **Sampled softmax** (``sample_softmax > 0``) is refused: it crashes in 1.0
  (``tie_weights`` reads ``word_emb.weight``, which ``AdaptiveEmbedding`` lacks)
  and 4.x asserts it away, so there is no behaviour to match.
* **attn_type 1, 2, 3** are refused: 1.0's code for them is broken (type 1
  indexes the shared ``r_w_bias`` by layer, 2 and 3 add positions to the
  caller's memories and hidden states in place) and 4.x removed them.
* **resize_token_embeddings** grows or shrinks the last cluster (1.0's is a
  no-op that still rewrites the vocabulary size); **prune_heads** is refused
  (1.0 logs and does nothing).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ...layers import adaptive_embedding, adaptive_softmax, attention, dropout
from ...layers.remat import checkpoint
from ...random import Key, split, split_for_dropout
from ...tree import Params, from_flat_dict, to_flat_dict
from .. import inputs
from ..model import Model
from ..output_tuple import output_family
from .config import TransfoXLConfig
from .layer import apply_layer, attention_mask, init_layer, position_table, seed_initializers
from .resize import resize_last_cluster

__all__ = [
    "TransfoXLModel",
    "TransfoXLLMHeadModel",
    "TransfoXLModelOutput",
    "TransfoXLLMHeadModelOutput",
    "TransfoXLLMHeadModelOutputWithLoss",
]

Mems = Sequence[Tensor]


TransfoXLModelOutput = output_family(
    "TransfoXLModelOutput",
    "last_hidden_state mems hidden_states? attentions?",
    "last_hidden_state (b, s, d_model); mems: tuple of n_layer (mem_len', b, d_model) "
    "(time-major), None when mem_len == 0 and no mems were given (as 1.0); hidden_states: "
    "n_layer + 1 tensors (b, s, d_model) when asked; attentions: n_layer tensors "
    "(b, n_head, s, mlen + s) when asked.",
)


def _mean_nll(out: Any) -> Tensor | None:
    """``loss``: mean of the nonzero per-token losses (ignored positions are 0), as
    transformers 4.46.3; 0 when none is counted; None without labels."""
    losses = out.losses
    if not isinstance(losses, Tensor):
        return None
    counted = (losses != 0).sum()
    return losses.sum() / counted.clamp(min=1).to(losses.dtype)


TransfoXLLMHeadModelOutput = output_family(
    "TransfoXLLMHeadModelOutput",
    "losses? prediction_scores mems hidden_states? attentions?",
    "Without labels: prediction_scores, log-probabilities (b, s, n_token), then the fields "
    "of TransfoXLModelOutput. With labels (type TransfoXLLMHeadModelOutputWithLoss), 1.0's "
    "tuple: losses, per-token NLL (b, s) in token order (0 where ignored; (b, s-1) with "
    "shift_labels=True), float32 at least; prediction_scores: None, in the tuple (not "
    "computed); then mems, hidden_states, attentions. loss (by name only, not in the "
    "tuple): scalar mean of the nonzero losses; None without labels.",
    loss_name="TransfoXLLMHeadModelOutputWithLoss",
    loss_fields=("losses",),
    computed={"loss": _mean_nll},
)
TransfoXLLMHeadModelOutputWithLoss = TransfoXLLMHeadModelOutput  # one family, two names
"""The same output family under its with-labels name."""


_BUFFERS = ("pos_emb.inv_freq",)


def _check_supported(c: TransfoXLConfig) -> None:
    if c.attn_type != 0:
        raise NotImplementedError(
            f"attn_type={c.attn_type} is not supported: ptfunc builds the relative attention "
            "of the paper (attn_type=0), the only one with pretrained weights (1.0's types 1-3 "
            "are broken and transformers 4.x removed them)"
        )


def _init_adaptive(layer: Any, key: Key, c: TransfoXLConfig) -> Params:
    """``layer.init`` (adaptive input or softmax) over the config's clusters, seed initialisers."""
    init_weight, init_proj = seed_initializers(c)
    return layer.init(
        key,
        c.vocab_size,
        c.d_embed,
        c.d_model,
        c.cutoffs,
        div_val=c.div_val,
        init_weight=init_weight,
        init_proj=init_proj,
    )


def init_transformer(key: Key, c: TransfoXLConfig) -> Params:
    """Params of the bare model, initialised like the seed."""
    init_weight, _ = seed_initializers(c)
    k_emb, k_layers, k_r = split(key, 3)
    params: Params = {
        "word_emb": _init_adaptive(adaptive_embedding, k_emb, c),
        "layers": [init_layer(k, c, init_weight) for k in split(k_layers, c.n_layer)],
    }
    if not c.untie_r:
        kw, kr = split(k_r)
        params["r_w_bias"] = init_weight(kw, (c.n_head, c.d_head))
        params["r_r_bias"] = init_weight(kr, (c.n_head, c.d_head))
    return params


def _check_mems(c: TransfoXLConfig, mems: Mems, batch: int) -> list[Tensor] | None:
    """Validate time-major mems and return them batch-first (b, m, d_model); None for
    an empty sequence (empty memories)."""
    expected = f"(mem_len, batch={batch}, d_model={c.d_model})"
    if isinstance(mems, (list, tuple)) and len(mems) == 0:
        return None
    if not isinstance(mems, (list, tuple)) or len(mems) != c.n_layer:
        got = f"{len(mems)} items" if isinstance(mems, (list, tuple)) else type(mems).__name__
        raise ValueError(
            f"mems must be a list of n_layer={c.n_layer} tensors of shape {expected} "
            f"(time-major, as pytorch-transformers), () for empty memories or None for "
            f"1.0's zero memories; got {got}"
        )
    first = mems[0].shape if isinstance(mems[0], Tensor) else None
    for i, m in enumerate(mems):
        if (
            not isinstance(m, Tensor)
            or m.dim() != 3
            or m.shape[1:] != (batch, c.d_model)
            or m.shape != first
        ):
            got = tuple(m.shape) if isinstance(m, Tensor) else type(m).__name__
            raise ValueError(
                f"mems[{i}] must have shape {expected}, the same for every layer "
                f"(time-major, as pytorch-transformers); got {got}"
            )
    return [m.transpose(0, 1) for m in mems]


def _first_memories(c: TransfoXLConfig, x: Tensor) -> list[Tensor] | None:
    """1.0's memories for ``mems=None``: n_layer zeros (b, mem_len, d_model) batch-first
    (None when mem_len == 0), in the dtype and device of the embeddings ``x``."""
    if c.mem_len <= 0:
        return None
    zeros = torch.zeros((x.shape[0], c.mem_len, c.d_model), dtype=x.dtype, device=x.device)
    return [zeros] * c.n_layer


def _update_mems(
    c: TransfoXLConfig, hids: list[Tensor], mems: list[Tensor] | None, detach: bool
) -> tuple[Tensor, ...]:
    """Last ``mem_len`` of [mems; hids], ending ``ext_len`` before the segment's end,
    returned time-major (length, b, d_model)."""
    out = []
    for i, h in enumerate(hids):
        cat = h if mems is None else torch.cat([mems[i], h], dim=1)
        end = max(cat.shape[1] - h.shape[1], cat.shape[1] - c.ext_len)
        new = cat[:, max(0, end - c.mem_len) : end].transpose(0, 1).contiguous()
        out.append(new.detach() if detach else new)
    return tuple(out)


def transformer(
    c: TransfoXLConfig,
    params: Params,
    input_ids: Tensor,
    *,
    mems: Mems | None = None,
    head_mask: Tensor | None = None,
    output_attentions: bool | None = None,
    output_hidden_states: bool | None = None,
    detach_mems: bool = True,
    train: bool = False,
    key: Key | None = None,
    remat: bool = False,
    validate: bool = True,
) -> TransfoXLModelOutput:
    """input_ids (b, s) int64 -> TransfoXLModelOutput (see the module docstring for mems).

    ``mems=None``: 1.0's ``mem_len`` zero memories; ``mems=()``: empty memories; else
    the ``n_layer`` time-major tensors a previous call returned. ``remat=True``
    recomputes each layer's activations in the backward pass. ``validate=False`` skips
    the value checks of the inputs (:mod:`ptfunc.archs.inputs`); positions are
    sinusoids, so any length is accepted.
    """
    dropout.require_key(train, key)
    b, s = inputs.check_input_ids(input_ids, vocab_size=c.vocab_size, validate=validate)
    inputs.check_head_mask(head_mask, c.n_layer, c.n_head)
    want_att = c.output_attentions if output_attentions is None else output_attentions
    want_hidden = c.output_hidden_states if output_hidden_states is None else output_hidden_states
    memories = None if mems is None else _check_mems(c, mems, b)
    keys = split_for_dropout(key, c.n_layer + 3, train)

    x = adaptive_embedding.apply(params["word_emb"], input_ids)
    if mems is None:
        memories = _first_memories(c, x)
    mlen = 0 if memories is None else memories[0].shape[1]
    pos = position_table(c, mlen + s, x.dtype, x.device)
    x = dropout.apply(x, c.dropout, key=keys[0], train=train)
    pos = dropout.apply(pos, c.dropout, key=keys[1], train=train)
    mask = attention_mask(c, s, mlen, x.device)
    heads = attention.per_layer_head_masks(head_mask, c.n_layer, x.dtype)

    hids, probs_all = [], []

    def run_layer(layer, x, memory, pos, mask, r_w_bias, r_r_bias, head, k):
        return apply_layer(
            c,
            layer,
            x,
            memory=memory,
            pos=pos,
            mask=mask,
            r_w_bias=r_w_bias,
            r_r_bias=r_r_bias,
            head_mask=head,
            need_weights=want_att,
            key=k,
            train=train,
        )

    for i, layer in enumerate(params["layers"]):
        hids.append(x)
        shared = layer["dec_attn"] if c.untie_r else params
        memory = None if memories is None else memories[i]
        r_w, r_r = shared["r_w_bias"], shared["r_r_bias"]
        x, probs = checkpoint(
            run_layer, layer, x, memory, pos, mask, r_w, r_r, heads[i], keys[i + 3], enabled=remat
        )
        if want_att:
            probs_all.append(probs)
    x = dropout.apply(x, c.dropout, key=keys[2], train=train)
    no_memory = mems is None and memories is None  # 1.0 returns None: mem_len == 0
    new_mems = None if no_memory else _update_mems(c, hids, memories, detach_mems)
    hidden = tuple(hids) + (x,) if want_hidden else ()
    return TransfoXLModelOutput.make(x, new_mems, hidden, tuple(probs_all))


def _rest(enc: Any) -> tuple:
    """The base model's mems, hidden_states and attentions (the latter two () if absent)."""
    return enc.mems, enc.hidden_states, enc.attentions


class _TransfoXLBase(Model):
    config_class = TransfoXLConfig
    base_model_prefix = "transformer"
    ignored_checkpoint_keys = _BUFFERS

    def __init__(self, config: TransfoXLConfig) -> None:
        super().__init__(config)
        _check_supported(config)

    def init_mems(
        self,
        batch_size: int,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> tuple[Tensor, ...]:
        """1.0's first-segment memories: n_layer zero tensors (mem_len, batch_size, d_model).

        ``mems=None`` uses them already (as pytorch-transformers and transformers 4.x do);
        ``mems=()`` starts from empty memories instead. With ``mem_len == 0``: length-0
        tensors, which act as empty memories (1.0 returned None).
        """
        c = self.config
        shape = (c.mem_len, batch_size, c.d_model)
        return tuple(torch.zeros(shape, dtype=dtype, device=device) for _ in range(c.n_layer))

    def reset_length(self, tgt_len: int, ext_len: int, mem_len: int) -> _TransfoXLBase:
        """A model with other segment, extension and memory lengths (1.0 mutated itself)."""
        return type(self)(self.config.replace(tgt_len=tgt_len, ext_len=ext_len, mem_len=mem_len))

    def prune_heads(self, params: Params, heads_to_prune: Any) -> Any:
        """Refused: head pruning is not implemented for Transformer-XL (1.0 ignored the call)."""
        raise NotImplementedError(
            "head pruning is not implemented for Transformer-XL (pytorch-transformers 1.0 "
            "ignores it too); use head_mask=... to silence heads instead"
        )

    def resize_token_embeddings(self, params: Params, new_num_tokens: int, *, key: Key):
        """Grow or shrink the **last cluster** of the vocabulary; returns ``(model, params)``.

        Kept rows are copied, new rows drawn like the seed's init with ``key``;
        the LM head's last-cluster bias (and untied table) follow. ``cutoffs``
        are unchanged, so ``new_num_tokens`` must exceed ``cutoffs[-1]``.
        """
        return resize_last_cluster(self, params, new_num_tokens, key=key)


class TransfoXLModel(_TransfoXLBase):
    """The bare Transformer-XL (``TransfoXLModel`` of pytorch-transformers).

    ``apply(params, input_ids, *, mems=None, head_mask=None, output_attentions=None,
    output_hidden_states=None, detach_mems=True, train=False, key=None, remat=False,
    validate=True)`` -> ``TransfoXLModelOutput(last_hidden_state, mems, hidden_states,
    attentions)``, 1.0's tuple. ``mems=None`` attends to 1.0's ``mem_len`` zero
    memories (``apply(params, ids)`` is 1.0's ``model(ids)``), ``mems=()`` to none (the
    paper's first segment). ``remat=True`` recomputes each layer in the backward pass (activation
    checkpointing). ``validate=False`` skips the value checks of the inputs (ids in range;
    see :mod:`ptfunc.archs.inputs`); shapes and dtypes are always checked.

    Example:
        >>> import torch, ptfunc
        >>> from ptfunc.archs import transfo_xl
        >>> config = transfo_xl.TransfoXLConfig(vocab_size=20, cutoffs=[10], d_model=8,
        ...     d_embed=8, n_head=2, d_head=4, d_inner=16, div_val=1, n_layer=2, mem_len=3)
        >>> model = transfo_xl.TransfoXLModel(config)
        >>> params = model.init(ptfunc.random.key(0))
        >>> out = model.apply(params, torch.tensor([[1, 2, 3, 4]]))
        >>> out.last_hidden_state.shape, out.mems[0].shape   # mems: (mem_len, batch, d_model)
        (torch.Size([1, 4, 8]), torch.Size([3, 1, 8]))
        >>> nxt = model.apply(params, torch.tensor([[5, 6]]), mems=out.mems)
        >>> empty = model.apply(params, torch.tensor([[1, 2]]), mems=())  # no memory at all
        >>> empty.mems[0].shape                                # the 2 positions it saw
        torch.Size([2, 1, 8])
    """

    is_base_model = True

    @property
    def tied(self) -> dict[str, str]:  # type: ignore[override]
        """Per-layer copies of the shared position biases (untie_r=False) in 1.0 state dicts."""
        return _tied_r(self.config, "")

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
    ) -> TransfoXLModelOutput:
        return transformer(self.config, params, input_ids, train=train, key=key, **options)


def _tied_r(c: TransfoXLConfig, prefix: str) -> dict[str, str]:
    if c.untie_r:
        return {}
    return {
        f"{prefix}layers.{i}.dec_attn.{name}": f"{prefix}{name}"
        for i in range(c.n_layer)
        for name in ("r_w_bias", "r_r_bias")
    }


def _item(seq: Any, i: int) -> Any:
    """Entry ``i`` of a list, or of a dict keyed by digits (a list with tied gaps, as
    ``tree.from_flat_dict`` builds it)."""
    return seq[i] if isinstance(seq, list) else seq[str(i)]


def _resolved_crit(c: TransfoXLConfig, params: Params) -> Params:
    """The LM head's params with the tied tables and projections filled in from word_emb."""
    crit, emb = params["crit"], params["transformer"]["word_emb"]
    layers = crit["out_layers"]
    out_layers = [
        {
            "weight": emb["emb_layers"][i]["weight"] if c.tie_weight else layer["weight"],
            "bias": layer["bias"],
        }
        for i, layer in enumerate(layers)
    ]
    resolved: Params = {"out_layers": out_layers}
    if c.n_clusters > 1:
        resolved["cluster_weight"] = crit["cluster_weight"]
        resolved["cluster_bias"] = crit["cluster_bias"]
    if c.has_projections:
        resolved["out_projs"] = [
            emb["emb_projs"][0 if c.div_val == 1 else i] if tie else _item(crit["out_projs"], i)
            for i, tie in enumerate(c.tie_projs)
        ]
    return resolved


def lm_head_tied(c: TransfoXLConfig) -> dict[str, str]:
    """``{checkpoint name: param path}``: tied tables and projections, shared position biases."""
    out = _tied_r(c, "transformer.")
    if c.tie_weight:
        for i in range(1 if c.div_val == 1 else c.n_clusters):
            out[f"crit.out_layers.{i}.weight"] = f"transformer.word_emb.emb_layers.{i}.weight"
    if c.has_projections:
        for i, tie in enumerate(c.tie_projs):
            if tie:
                source = 0 if c.div_val == 1 else i
                out[f"crit.out_projs.{i}"] = f"transformer.word_emb.emb_projs.{source}"
    return out


def _check_labels(c: TransfoXLConfig, labels: Any, input_ids: Tensor, validate: bool) -> Tensor:
    """labels (b, s) int64 like input_ids, each in [0, vocab_size) or negative (ignored)."""
    if not isinstance(labels, Tensor) or labels.shape != input_ids.shape:
        got = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
        raise ValueError(
            f"labels must have the shape of input_ids {tuple(input_ids.shape)}, got {got}"
        )
    inputs.check_index_tensor("labels", labels)
    inputs.check_range(
        "labels", labels.clamp(min=0), c.vocab_size, "the vocabulary size", validate=validate
    )
    return labels


def init_crit(key: Key, c: TransfoXLConfig) -> Params:
    """The LM head's own params: the adaptive softmax without its tied entries."""
    full = _init_adaptive(adaptive_softmax, key, c)
    flat = {f"crit.{n}": t for n, t in to_flat_dict(full).items()}
    tied = lm_head_tied(c)
    return from_flat_dict({n: t for n, t in flat.items() if n not in tied})["crit"]


class TransfoXLLMHeadModel(_TransfoXLBase):
    """Transformer-XL with the projected adaptive softmax (``TransfoXLLMHeadModel``).

    ``apply(params, input_ids, *, labels=None, shift_labels=False, mems=None,
    head_mask=None, ...)`` (the options of :class:`TransfoXLModel`) returns 1.0's tuple:

    * without labels -> ``TransfoXLLMHeadModelOutput(prediction_scores, mems,
      [hidden_states], [attentions])``, prediction_scores the log-probabilities
      (b, s, n_token);
    * with ``labels`` (b, s) int64, the token each position predicts (**not shifted**,
      as 1.0's code; negative = ignored, loss 0) ->
      ``TransfoXLLMHeadModelOutputWithLoss(losses (b, s), None, mems, ...)``: per-token
      NLL in token order, ``None`` at index 1 (prediction_scores, not computed), then the
      memories. ``out.loss`` (by name, not in the tuple) is the mean of the nonzero
      losses. These are the ``(data, target)`` pairs of ``ptfunc.tokenize.LMOrderedIterator``,
      so every token of a stream is predicted once across consecutive segments;
    * with ``shift_labels=True`` as well: transformers 4.46.3's labels, position t
      predicting ``labels[:, t + 1]`` (``labels=input_ids`` works), ``losses`` (b, s-1).

    Example:
        >>> import torch, ptfunc
        >>> from ptfunc.archs import transfo_xl
        >>> config = transfo_xl.TransfoXLConfig(vocab_size=20, cutoffs=[10], d_model=8,
        ...     d_embed=8, n_head=2, d_head=4, d_inner=16, div_val=2, n_layer=2, mem_len=3)
        >>> model = transfo_xl.TransfoXLLMHeadModel(config)
        >>> params = model.init(ptfunc.random.key(0))
        >>> ids = torch.tensor([[1, 2, 13, 4]])
        >>> out = model.apply(params, ids)
        >>> out.prediction_scores.shape
        torch.Size([1, 4, 20])
        >>> losses, scores, mems = model.apply(params, ids[:, :-1], labels=ids[:, 1:])
        >>> losses.shape, scores, len(mems)
        (torch.Size([1, 3]), None, 2)
        >>> model.apply(params, ids, labels=ids, shift_labels=True).losses.shape
        torch.Size([1, 3])
    """

    @property
    def tied(self) -> dict[str, str]:  # type: ignore[override]
        """``{checkpoint name: param path}`` of the weights the head reads from word_emb."""
        return lm_head_tied(self.config)

    def __init__(self, config: TransfoXLConfig) -> None:
        super().__init__(config)
        if config.sample_softmax > 0:
            raise NotImplementedError(
                f"sample_softmax={config.sample_softmax}: sampled softmax is not supported "
                "(it crashes in pytorch-transformers 1.0 and transformers 4.x refuses it); "
                "set sample_softmax=-1 to train with the full adaptive softmax"
            )

    def init(self, key: Key) -> Params:
        kt, kc = split(key)
        return {
            "transformer": init_transformer(kt, self.config),
            "crit": init_crit(kc, self.config),
        }

    def apply(
        self,
        params: Params,
        input_ids: Tensor,
        *,
        labels: Tensor | None = None,
        shift_labels: bool = False,
        train: bool = False,
        key: Key | None = None,
        **options: Any,
    ) -> TransfoXLLMHeadModelOutput | TransfoXLLMHeadModelOutputWithLoss:
        c = self.config
        if "targets" in options:
            raise TypeError(
                "TransfoXLLMHeadModel.apply has no targets= any more: labels= now means what "
                "it meant in pytorch-transformers 1.0, the token each position predicts (not "
                "shifted), so write labels=targets; shift_labels=True gives transformers "
                "4.x's shifted labels"
            )
        if labels is None and shift_labels:
            raise ValueError("shift_labels=True needs labels (the tokens to predict)")
        enc = transformer(c, params["transformer"], input_ids, train=train, key=key, **options)
        crit = _resolved_crit(c, params)
        hidden = enc.last_hidden_state
        if labels is None:
            scores = adaptive_softmax.log_probs(crit, hidden, c.cutoffs)
            return TransfoXLLMHeadModelOutput.make(None, scores, *_rest(enc))
        targets = _check_labels(c, labels, input_ids, options.get("validate", True))
        if shift_labels:
            hidden, targets = hidden[:, :-1], targets[:, 1:]
        losses = adaptive_softmax.nll(crit, hidden, targets, c.cutoffs)
        return TransfoXLLMHeadModelOutput.make(losses, None, *_rest(enc))

    def decode_step(
        self,
        params: Params,
        ids: Tensor,
        *,
        cache: Mems | None = None,
        attention_mask: Tensor | None = None,
        use_cache: bool = True,
    ) -> tuple[Tensor, Mems | None]:
        """``ptfunc.generate``'s step: next-token log-probs (b, n_token) and the new mems.

        The prompt runs with ``mems=None`` (1.0's zero memories). With a cache only the
        last token is fed, attending to the memories (the model sees ``mem_len`` past
        positions, Transformer-XL's own recurrence; transformers 4.x's ``generate``);
        without (``use_cache=False``, or ``mem_len == 0``), the whole sequence is run
        again from zero memories, the loop of 1.0's ``run_generation.py``. There is no
        attention mask: left-padded batches are refused.
        """
        if attention_mask is not None and not bool(attention_mask.bool().all()):
            raise ValueError(
                "Transformer-XL has no attention mask: generate from unpadded prompts "
                "of equal length (or one prompt at a time)"
            )
        if cache is None or not use_cache:
            out = self.apply(params, ids)
        else:
            out = self.apply(params, ids[:, -1:], mems=cache)
        return out.prediction_scores[:, -1], (out.mems if use_cache else None)
