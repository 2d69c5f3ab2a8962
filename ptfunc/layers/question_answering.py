"""The SQuAD head of XLNet and XLM: start logits, end logits conditioned on a start,
an answerability score, the training loss and the top-k beam used at inference.

This is pytorch-transformers 1.0's ``SQuADHead`` (``PoolerStartLogits``,
``PoolerEndLogits``, ``PoolerAnswerClass``) as functions over one params
subtree::

    start_logits.dense                                  Linear(h, 1)
    end_logits.dense_0, end_logits.LayerNorm,
    end_logits.dense_1                                  Linear(2h, h), LN(h), Linear(h, 1)
    answer_class.dense_0, answer_class.dense_1          Linear(2h, h), Linear(h, 1, no bias)

XLNet keeps these three at the top of its params; XLM nests them under
``qa_outputs``; either passes the subtree that holds them.

``p_mask`` (b, s) marks positions that cannot be in an answer with 1:
their logits become ``x * (1 - p) - M * p`` with ``M = 1e30`` as in 1.0, and
``M = 65500`` in float16, where 1e30 overflows (today's ``transformers`` fix).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ..random import Key, split
from ..tree import Params
from . import layer_norm, linear, losses

__all__ = [
    "init",
    "large_value",
    "mask_logits",
    "start_logits",
    "end_logits",
    "answer_class",
    "loss",
    "beam_search",
    "BeamOutput",
    "apply",
]


def large_value(dtype: torch.dtype) -> float:
    """The magnitude that masks a logit or score: 1e30 (the seed), 65500 in float16."""
    return 65500.0 if dtype == torch.float16 else 1e30


def mask_logits(x: Tensor, p_mask: Tensor | None) -> Tensor:
    """``x * (1 - p_mask) - M * p_mask``, M from :func:`large_value`.

    x (..., s) floating; p_mask broadcastable to x (1 = masked); same shape and dtype as x.
    """
    if p_mask is None:
        return x
    p = p_mask.to(x.dtype)
    return x * (1 - p) - large_value(x.dtype) * p


def init(key: Key, hidden: int, *, std: float = 0.02) -> Params:
    """``start_logits``, ``end_logits`` and ``answer_class`` params (normal(0, std) weights,
    zero biases, LayerNorm ones/zeros), float32."""
    k0, k1, k2, k3, k4 = split(key, 5)
    return {
        "start_logits": {"dense": linear.init(k0, hidden, 1, std=std)},
        "end_logits": {
            "dense_0": linear.init(k1, 2 * hidden, hidden, std=std),
            "LayerNorm": layer_norm.init(hidden),
            "dense_1": linear.init(k2, hidden, 1, std=std),
        },
        "answer_class": {
            "dense_0": linear.init(k3, 2 * hidden, hidden, std=std),
            "dense_1": linear.init(k4, hidden, 1, bias=False, std=std),
        },
    }


def start_logits(params: Params, hidden: Tensor, *, p_mask: Tensor | None = None) -> Tensor:
    """hidden (b, s, h) -> start logits (b, s), masked by ``p_mask`` (b, s)."""
    return mask_logits(linear.apply(params["start_logits"]["dense"], hidden)[..., 0], p_mask)


def _concat_dense(p: Params, a: Tensor, b: Tensor) -> Tensor:
    """``Linear(2h, h)`` of ``cat([a, b], -1)`` for broadcastable a, b (..., h): the two
    halves of the weight are applied separately, so nothing of width 2h is materialised."""
    h = a.shape[-1]
    w = p["weight"]
    return F.linear(a, w[:, :h]) + F.linear(b, w[:, h:], p["bias"])


def _gather_positions(hidden: Tensor, positions: Tensor) -> Tensor:
    """hidden (b, s, h), positions (b,) int -> (b, h)."""
    index = positions.reshape(-1, 1, 1).expand(-1, 1, hidden.shape[-1]).to(torch.long)
    return hidden.gather(-2, index)[:, 0]


def end_logits(
    params: Params,
    hidden: Tensor,
    *,
    start_states: Tensor | None = None,
    start_positions: Tensor | None = None,
    p_mask: Tensor | None = None,
    eps: float = 1e-12,
) -> Tensor:
    """End logits given a start: ``dense_1(LN(tanh(dense_0([hidden, start]))))``.

    Args:
        hidden: (b, s, h), or (b, s, 1, h) against several starts.
        start_states: broadcastable to ``hidden`` (e.g. (b, 1, k, h)).
        start_positions: (b,) int; overrides ``start_states`` (the labelled start).
        p_mask: broadcastable to the result.
        eps: the LayerNorm epsilon (the model's ``layer_norm_eps``).

    Returns:
        (b, s), or (b, s, k) for k starts; the dtype of ``hidden``.
    """
    if start_positions is not None:
        start_states = _gather_positions(hidden, start_positions)[:, None]
    elif start_states is None:
        raise ValueError("end_logits needs start_states or start_positions")
    p = params["end_logits"]
    x = torch.tanh(_concat_dense(p["dense_0"], hidden, start_states))
    x = layer_norm.apply(p["LayerNorm"], x, eps=eps)
    return mask_logits(linear.apply(p["dense_1"], x)[..., 0], p_mask)


def answer_class(
    params: Params,
    hidden: Tensor,
    *,
    start_states: Tensor | None = None,
    start_positions: Tensor | None = None,
    cls_index: Tensor | None = None,
) -> Tensor:
    """Answerability logit (b,) from the start state (b, h) and the CLS token's state.

    ``start_positions`` (b,) overrides ``start_states``; ``cls_index`` (b,) defaults
    to the last token.
    """
    if start_positions is not None:
        start_states = _gather_positions(hidden, start_positions)
    elif start_states is None:
        raise ValueError("answer_class needs start_states or start_positions")
    cls_state = hidden[:, -1] if cls_index is None else _gather_positions(hidden, cls_index)
    p = params["answer_class"]
    x = torch.tanh(_concat_dense(p["dense_0"], start_states, cls_state))
    return linear.apply(p["dense_1"], x)[..., 0]


def _flat(x: Tensor | None) -> Tensor | None:
    """Labels of shape (b, 1) (the seed's multi-GPU case) become (b,)."""
    return None if x is None else x.reshape(-1)


def loss(
    params: Params,
    hidden: Tensor,
    start_positions: Tensor,
    end_positions: Tensor,
    *,
    cls_index: Tensor | None = None,
    is_impossible: Tensor | None = None,
    p_mask: Tensor | None = None,
    eps: float = 1e-12,
) -> Tensor:
    """Training loss: (CE(start) + CE(end)) / 2, plus 0.5 * BCE(answer class, is_impossible)
    when both ``cls_index`` and ``is_impossible`` are given.

    hidden (b, s, h); positions, cls_index, is_impossible (b,) (or (b, 1)). The end
    logits are conditioned on the labelled start. Positions equal to -100 are
    ignored, as ``CrossEntropyLoss`` does; others must lie in [0, s).

    Returns:
        scalar, at least float32.
    """
    start_positions, end_positions = _flat(start_positions), _flat(end_positions)
    cls_index, is_impossible = _flat(cls_index), _flat(is_impossible)
    start = start_logits(params, hidden, p_mask=p_mask)
    end = end_logits(params, hidden, start_positions=start_positions, p_mask=p_mask, eps=eps)
    total = (
        F.cross_entropy(losses.upcast(start), start_positions)
        + F.cross_entropy(losses.upcast(end), end_positions)
    ) / 2
    if cls_index is not None and is_impossible is not None:
        cls_logits = losses.upcast(
            answer_class(params, hidden, start_positions=start_positions, cls_index=cls_index)
        )
        total = total + 0.5 * F.binary_cross_entropy_with_logits(
            cls_logits, is_impossible.to(cls_logits.dtype)
        )
    return total


class BeamOutput(NamedTuple):
    """The inference outputs of the SQuAD head (names of the seed; the "log_probs" are
    softmax probabilities, as in the seed).

    start_top_log_probs, start_top_index: (b, start_n_top).
    end_top_log_probs, end_top_index: (b, start_n_top * end_n_top), the end
        candidates of start candidate ``i`` at columns ``i::start_n_top`` (the seed's layout).
    cls_logits: (b,) answerability logit.
    """

    start_top_log_probs: Tensor
    start_top_index: Tensor
    end_top_log_probs: Tensor
    end_top_index: Tensor
    cls_logits: Tensor


def beam_search(
    params: Params,
    hidden: Tensor,
    *,
    start_n_top: int,
    end_n_top: int,
    p_mask: Tensor | None = None,
    cls_index: Tensor | None = None,
    eps: float = 1e-12,
) -> BeamOutput:
    """Top ``start_n_top`` starts, then the top ``end_n_top`` ends for each start.

    hidden (b, s, h); p_mask, cls_index as in :func:`loss`. The answer class reads
    the probability-weighted mean of the hidden states as start state.
    """
    s = hidden.shape[1]
    if not (1 <= start_n_top <= s and 1 <= end_n_top <= s):
        raise ValueError(
            f"start_n_top ({start_n_top}) and end_n_top ({end_n_top}) must lie in "
            f"[1, sequence length {s}]"
        )
    start_probs = torch.softmax(start_logits(params, hidden, p_mask=p_mask), dim=-1)
    start_top_probs, start_top_index = start_probs.topk(start_n_top, dim=-1)
    start_states = hidden.gather(
        -2, start_top_index[..., None].expand(-1, -1, hidden.shape[-1])
    )  # (b, k, h)
    end = end_logits(
        params,
        hidden[:, :, None],
        start_states=start_states[:, None],
        p_mask=None if p_mask is None else p_mask[..., None],
        eps=eps,
    )  # (b, s, k)
    end_top_probs, end_top_index = torch.softmax(end, dim=1).topk(end_n_top, dim=1)
    weighted_start = torch.einsum("bsh,bs->bh", hidden, start_probs)
    cls_logits = answer_class(params, hidden, start_states=weighted_start, cls_index=cls_index)
    b = hidden.shape[0]
    return BeamOutput(
        start_top_probs,
        start_top_index,
        end_top_probs.reshape(b, start_n_top * end_n_top),
        end_top_index.reshape(b, start_n_top * end_n_top),
        cls_logits,
    )


def apply(
    params: Params,
    hidden: Tensor,
    *,
    start_n_top: int,
    end_n_top: int,
    start_positions: Tensor | None = None,
    end_positions: Tensor | None = None,
    cls_index: Tensor | None = None,
    is_impossible: Tensor | None = None,
    p_mask: Tensor | None = None,
    eps: float = 1e-12,
) -> Tensor | BeamOutput:
    """The SQuAD head as the seed's models call it: the training :func:`loss` (a
    scalar tensor) when both start and end positions are given, else the
    :func:`beam_search` outputs. Arguments as in those two functions.
    """
    if start_positions is not None and end_positions is not None:
        return loss(
            params,
            hidden,
            start_positions,
            end_positions,
            cls_index=cls_index,
            is_impossible=is_impossible,
            p_mask=p_mask,
            eps=eps,
        )
    return beam_search(
        params,
        hidden,
        start_n_top=start_n_top,
        end_n_top=end_n_top,
        p_mask=p_mask,
        cls_index=cls_index,
        eps=eps,
    )
