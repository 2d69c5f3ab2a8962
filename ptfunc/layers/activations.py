"""Activation functions by the names the seed's configs use."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["gelu", "gelu_new", "relu", "swish", "silu", "get"]


def gelu(x: Tensor) -> Tensor:
    """Exact GELU, x * Phi(x) (the erf form; BERT, XLM)."""
    return F.gelu(x)


def gelu_new(x: Tensor) -> Tensor:
    """Tanh approximation of GELU (OpenAI GPT, GPT-2, XLNet)."""
    return F.gelu(x, approximate="tanh")


def relu(x: Tensor) -> Tensor:
    """max(x, 0)."""
    return F.relu(x)


def swish(x: Tensor) -> Tensor:
    """x * sigmoid(x) (pytorch-transformers 1.0's formula, two kernels)."""
    return x * torch.sigmoid(x)


def silu(x: Tensor) -> Tensor:
    """x * sigmoid(x) as one fused kernel (``F.silu``: today's models, whose reference uses it)."""
    return F.silu(x)


_BY_NAME: dict[str, Callable[[Tensor], Tensor]] = {
    "gelu": gelu,
    "gelu_new": gelu_new,
    "gelu_pytorch_tanh": gelu_new,
    "relu": relu,
    "swish": swish,
    "silu": silu,
    "tanh": torch.tanh,
}


def get(name: str | Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    """The activation for a config's ``hidden_act`` (a name, or a callable returned as is)."""
    if callable(name):
        return name
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(
            f"unknown activation {name!r}; expected one of {sorted(_BY_NAME)}"
        ) from None
