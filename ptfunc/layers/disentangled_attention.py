"""DeBERTa's disentangled self-attention (He et al., 2020), as free functions.

A query at position ``i`` scores a key at ``j`` with up to three terms::

    c2c  q_i . k_j                      content to content
    c2p  q_i . Kr[delta(i, j)]          content to position  ("c2p" in pos_att_type)
    p2c  k_j . Qr[delta(j, i)]          position to content  ("p2c" in pos_att_type)

each divided by ``sqrt(head_dim * (1 + len(pos_att_type)))``. ``Kr`` and ``Qr`` project a
table of relative-position embeddings (``2 * span`` rows) with their own dense layers
(``pos_key_proj``, ``pos_query_proj``) or, with ``share_att_key``, with the content ones
(``key_proj``, ``query_proj``). ``delta(i, j) = clamp(rel(i, j) + span, 0, 2 span - 1)``
where ``rel`` is ``i - j``, or its log-bucketed form (:func:`make_log_bucket_position`)
when ``position_buckets > 0``.

Masked scores are replaced (not shifted) by the dtype's lowest value, as DeBERTa does: a
query whose keys are all masked (a padded position) attends uniformly. Relative positions
depend on the sequence length only, so every op here is a pure tensor op with static
shapes: it runs under ``torch.func.vmap``/``grad``/``jvp`` and ``torch.compile(
fullgraph=True)``. Parameter names are those of the transformers state dict.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..random import Key, split, split_for_dropout
from ..tree import Params
from . import dropout, linear
from .attention import merge_heads, split_heads

__all__ = [
    "make_log_bucket_position",
    "build_relative_position",
    "relative_span",
    "init",
    "apply",
]


def make_log_bucket_position(relative_pos: Tensor, bucket_size: int, max_position: int) -> Tensor:
    """Log buckets of relative positions: exact within ``bucket_size // 2``, log-spaced
    beyond, up to ``max_position``; int tensor in, float tensor of the same shape out.

    >>> make_log_bucket_position(torch.tensor([-40, -3, 0, 2, 40]), 8, 64).tolist()
    [-7.0, -3.0, 0.0, 2.0, 7.0]
    """
    sign = torch.sign(relative_pos)
    mid = bucket_size // 2
    near = (relative_pos < mid) & (relative_pos > -mid)
    abs_pos = torch.where(near, torch.full_like(relative_pos, mid - 1), relative_pos.abs())
    denominator = torch.log(torch.tensor((max_position - 1) / mid, device=relative_pos.device))
    log_pos = torch.ceil(torch.log(abs_pos / mid) / denominator * (mid - 1)) + mid
    return torch.where(abs_pos <= mid, relative_pos.to(log_pos.dtype), log_pos * sign)


def build_relative_position(
    q_len: int,
    k_len: int,
    *,
    bucket_size: int = -1,
    max_position: int = -1,
    device: torch.device | str | None = None,
) -> Tensor:
    """(q_len, k_len) int64 tensor of ``i - j``, log-bucketed when both sizes are positive.

    >>> build_relative_position(2, 3).tolist()
    [[0, -1, -2], [1, 0, -1]]
    """
    rel = torch.arange(q_len, device=device)[:, None] - torch.arange(k_len, device=device)[None]
    if bucket_size > 0 and max_position > 0:
        rel = make_log_bucket_position(rel, bucket_size, max_position)
    return rel.to(torch.long)


def relative_span(position_buckets: int, max_relative_positions: int, max_positions: int) -> int:
    """Half the number of relative-embedding rows: the buckets, else the maximum distance
    (``max_relative_positions``, or ``max_positions`` when that is below 1)."""
    if position_buckets > 0:
        return position_buckets
    return max_relative_positions if max_relative_positions >= 1 else max_positions


def init(
    key: Key,
    dim: int,
    inner: int,
    *,
    pos_att_type: Sequence[str] = (),
    share_att_key: bool = False,
    relative_attention: bool = True,
    std: float = 0.02,
) -> Params:
    """``query_proj``, ``key_proj``, ``value_proj`` (dim -> inner), plus ``pos_key_proj``
    (for c2p) and ``pos_query_proj`` (for p2c) unless ``share_att_key``."""
    kq, kk, kv, kpk, kpq = split(key, 5)
    params = {
        "query_proj": linear.init(kq, dim, inner, std=std),
        "key_proj": linear.init(kk, dim, inner, std=std),
        "value_proj": linear.init(kv, dim, inner, std=std),
    }
    if relative_attention and not share_att_key:
        if "c2p" in pos_att_type:
            params["pos_key_proj"] = linear.init(kpk, dim, inner, std=std)
        if "p2c" in pos_att_type:
            params["pos_query_proj"] = linear.init(kpq, dim, inner, std=std)
    return params


def _relative_scores(
    params: Params,
    q: Tensor,
    k: Tensor,
    rel_embeddings: Tensor,
    relative_pos: Tensor,
    *,
    head_dim: int,
    span: int,
    pos_att_type: Sequence[str],
    share_att_key: bool,
    scale: float,
) -> Tensor:
    """The c2p and p2c terms, (b, h, s, s), from q, k (b, h, s, head_dim) and the
    relative embeddings (n, d) (the first ``2 * span`` rows are used)."""
    table = rel_embeddings[: 2 * span][None]
    q_name, k_name = (
        ("query_proj", "key_proj") if share_att_key else ("pos_query_proj", "pos_key_proj")
    )
    shape = (*q.shape[:3], relative_pos.shape[-1])
    score = torch.zeros((), dtype=q.dtype, device=q.device)
    if "c2p" in pos_att_type:
        pos_k = split_heads(linear.apply(params[k_name], table), head_dim)
        index = (relative_pos + span).clamp(0, 2 * span - 1).expand(shape)
        c2p = torch.gather(torch.matmul(q, pos_k.transpose(-1, -2)), -1, index)
        score = score + c2p / scale
    if "p2c" in pos_att_type:
        pos_q = split_heads(linear.apply(params[q_name], table), head_dim)
        index = (span - relative_pos).clamp(0, 2 * span - 1).expand(shape)
        p2c = torch.gather(torch.matmul(k, pos_q.transpose(-1, -2)), -1, index)
        score = score + p2c.transpose(-1, -2) / scale
    return score


def apply(
    params: Params,
    x: Tensor,
    *,
    head_dim: int,
    pos_att_type: Sequence[str] = (),
    rel_embeddings: Tensor | None = None,
    relative_pos: Tensor | None = None,
    span: int = 0,
    share_att_key: bool = False,
    mask: Tensor | None = None,
    head_mask: Tensor | None = None,
    attention_dropout: float = 0.0,
    position_dropout: float = 0.0,
    need_weights: bool = False,
    key: Key | None = None,
    train: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """Disentangled self-attention: x (b, s, d) -> (context (b, s, inner), probs or None).

    Args:
        pos_att_type: which relative terms to add, among ``"c2p"`` and ``"p2c"``; they
            also set the scale ``1 / sqrt(head_dim * (1 + len(pos_att_type)))``, even
            without relative terms (as transformers does).
        rel_embeddings: (2 * span or more, d) relative-position table (already
            normalised); None for no relative terms (``relative_attention=False``).
        relative_pos: (s, s) int64 from :func:`build_relative_position`.
        span: see :func:`relative_span`.
        mask: bool, broadcastable to (b, heads, s, s); False scores become the lowest value.
        head_mask: float, broadcastable to (b, heads, 1, 1) (a layer's (heads, 1, 1)):
            multiplies each head's probabilities after dropout (0 silences a head), as
            BERT's ``head_mask`` does.
        attention_dropout: on the probabilities; ``position_dropout`` on the table (training
            only, with ``key``).

    Returns:
        ``(context (b, s, heads * head_dim), probs (b, heads, s, s) or None)``; the
        probabilities (after dropout and ``head_mask``) come back with ``need_weights``.
    """
    k_pos, k_att = split_for_dropout(key, 2, train)
    q, k, v = (
        split_heads(linear.apply(params[n], x), head_dim)
        for n in ("query_proj", "key_proj", "value_proj")
    )
    scale = (head_dim * (1 + sum(t in pos_att_type for t in ("c2p", "p2c")))) ** 0.5
    scores = torch.matmul(q, k.transpose(-1, -2) / scale)
    if rel_embeddings is not None and relative_pos is not None:
        table = dropout.apply(rel_embeddings, position_dropout, key=k_pos, train=train)
        scores = scores + _relative_scores(
            params,
            q,
            k,
            table,
            relative_pos,
            head_dim=head_dim,
            span=span,
            pos_att_type=pos_att_type,
            share_att_key=share_att_key,
            scale=scale,
        )
    if mask is not None:
        scores = torch.where(mask, scores, torch.finfo(scores.dtype).min)
    probs = torch.softmax(scores, dim=-1)
    probs = dropout.apply(probs, attention_dropout, key=k_att, train=train)
    if head_mask is not None:
        probs = probs * head_mask
    return merge_heads(torch.matmul(probs, v)), probs if need_weights else None
