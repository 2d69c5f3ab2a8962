"""Post-LN residual: LayerNorm(dropout(sublayer output) + residual)."""

from __future__ import annotations

from torch import Tensor

from ..random import Key
from ..tree import Params
from . import dropout, layer_norm

__all__ = ["post_norm"]


def post_norm(
    ln: Params,
    y: Tensor,
    residual: Tensor,
    *,
    eps: float,
    dropout_rate: float = 0.0,
    key: Key | None = None,
    train: bool = False,
) -> Tensor:
    """LayerNorm(dropout(y) + residual); all of shape (..., dim)."""
    y = dropout.apply(y, dropout_rate, key=key, train=train)
    return layer_norm.apply(ln, y + residual, eps=eps)
