"""Gated feed-forward (SwiGLU and kin): ``down(act(gate(x)) * up(x))`` (Llama, Mistral, Qwen).

Params (checkpoint names): ``gate_proj`` and ``up_proj`` (dim -> d_ff), ``down_proj``
(d_ff -> dim), dense layers in PyTorch layout, with or without biases.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from ..random import Key, split
from ..tree import Params
from . import linear

__all__ = ["init", "apply"]


def init(key: Key, dim: int, d_ff: int, *, bias: bool = False, std: float = 0.02) -> Params:
    """``gate_proj``, ``up_proj`` (dim -> d_ff) and ``down_proj`` (d_ff -> dim), N(0, std)."""
    kg, ku, kd = split(key, 3)
    return {
        "gate_proj": linear.init(kg, dim, d_ff, bias=bias, std=std),
        "up_proj": linear.init(ku, dim, d_ff, bias=bias, std=std),
        "down_proj": linear.init(kd, d_ff, dim, bias=bias, std=std),
    }


def apply(params: Params, x: Tensor, *, activation: Callable[[Tensor], Tensor]) -> Tensor:
    """x (..., dim) -> (..., dim): ``down_proj(activation(gate_proj(x)) * up_proj(x))``."""
    gate = activation(linear.apply(params["gate_proj"], x))
    return linear.apply(params["down_proj"], gate * linear.apply(params["up_proj"], x))
