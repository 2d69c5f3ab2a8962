"""Dense layer in PyTorch layout, and its transposed twin ``Conv1D`` (GPT, GPT-2)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ..random import Key
from ..tree import Params
from .initializers import normal, zeros

__all__ = ["init", "apply", "init_conv1d", "apply_conv1d"]


def init(key: Key, d_in: int, d_out: int, *, bias: bool = True, std: float = 0.02) -> Params:
    """Dense layer: ``weight`` (d_out, d_in) ~ N(0, std), ``bias`` (d_out,) zeros."""
    params = {"weight": normal(key, (d_out, d_in), std=std)}
    if bias:
        params["bias"] = zeros((d_out,))
    return params


def apply(params: Params, x: Tensor) -> Tensor:
    """x (..., d_in) -> (..., d_out)."""
    return F.linear(x, params["weight"], params.get("bias"))


def init_conv1d(key: Key, d_in: int, d_out: int, *, std: float = 0.02) -> Params:
    """GPT's ``Conv1D``: ``weight`` (d_in, d_out) (transposed vs Linear), ``bias`` (d_out,)."""
    return {"weight": normal(key, (d_in, d_out), std=std), "bias": zeros((d_out,))}


def apply_conv1d(params: Params, x: Tensor) -> Tensor:
    """x (..., d_in) -> (..., d_out) with a (d_in, d_out) weight."""
    return F.linear(x, params["weight"].t(), params["bias"])
