"""Losses with the seed's conventions (ignored labels, regression heads)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["cross_entropy", "mse", "sequence_classification", "span_loss", "upcast"]


def upcast(x: Tensor) -> Tensor:
    """float16/bfloat16 -> float32 for a stable loss; float32/float64 unchanged."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def cross_entropy(logits: Tensor, labels: Tensor, *, ignore_negative: bool = True) -> Tensor:
    """Mean cross-entropy (at least float32) of logits (..., classes) against labels (...).

    With ``ignore_negative`` every negative label is ignored: pytorch-transformers
    1.0 marks ignored positions with -1 and today's ``transformers`` with -100;
    both work. The mean runs over the labels that are not ignored.
    """
    logits = logits.reshape(-1, logits.shape[-1])
    labels = labels.reshape(-1)
    if ignore_negative:
        labels = torch.where(labels < 0, torch.full_like(labels, -100), labels)
    return F.cross_entropy(upcast(logits), labels, ignore_index=-100)


def mse(predictions: Tensor, targets: Tensor) -> Tensor:
    """Mean squared error (at least float32) over all elements.

    Used by regression heads (``num_labels == 1``).
    """
    return F.mse_loss(
        upcast(predictions.reshape(-1)), targets.reshape(-1).to(upcast(predictions).dtype)
    )


def sequence_classification(logits: Tensor, labels: Tensor, num_labels: int) -> Tensor:
    """The sequence-classification heads' loss: :func:`mse` when ``num_labels == 1``
    (regression), :func:`cross_entropy` otherwise. ``logits`` (b, num_labels), ``labels`` (b,)."""
    if num_labels == 1:
        return mse(logits, labels)
    return cross_entropy(logits, labels)


def span_loss(logits: Tensor, positions: Tensor) -> Tensor:
    """Mean cross-entropy (at least float32) of span logits (b, s) against positions (b,).

    Positions outside [0, s) are clamped to s and ignored, as the question-answering
    heads of pytorch-transformers 1.0 and transformers do (a start or end cut off by
    truncation does not count).
    """
    s = logits.shape[1]
    positions = positions.reshape(-1).clamp(0, s)
    return F.cross_entropy(upcast(logits), positions, ignore_index=s)
