"""Position-wise feed-forward: dense -> activation -> dense."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from ..random import Key
from ..tree import Params
from . import dropout, linear

__all__ = ["apply", "apply_conv1d"]


def apply(
    inner: Params,
    outer: Params,
    x: Tensor,
    *,
    activation: Callable[[Tensor], Tensor],
    inner_dropout: float = 0.0,
    key: Key | None = None,
    train: bool = False,
) -> Tensor:
    """x (..., dim) -> (..., dim) through ``inner`` (dim -> d_ff) and ``outer`` (d_ff -> dim).

    The two dense layers are passed separately because checkpoints nest them
    under different names (BERT: ``intermediate.dense`` / ``output.dense``).
    ``inner_dropout`` drops the activations between them in training (Transformer-XL,
    XLNet), with ``key``.
    """
    h = activation(linear.apply(inner, x))
    return linear.apply(outer, dropout.apply(h, inner_dropout, key=key, train=train))


def apply_conv1d(params: Params, x: Tensor, *, activation: Callable[[Tensor], Tensor]) -> Tensor:
    """GPT's MLP in Conv1D layout: ``c_proj(act(c_fc(x)))``, x (..., d) -> (..., d)."""
    return linear.apply_conv1d(params["c_proj"], activation(linear.apply_conv1d(params["c_fc"], x)))
