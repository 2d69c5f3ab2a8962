"""Root-mean-square normalisation over the last axis (Llama, Mistral, Qwen; Qwen3's QK-norm).

Unlike :mod:`ptfunc.layers.layer_norm` there is no mean subtraction and no bias: the input is
divided by the root of its mean square, computed in float32 whatever the input dtype, cast back,
then scaled by ``weight`` (the order of today's ``transformers``, so bfloat16 results round the
same way).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..tree import Params
from .initializers import ones

__all__ = ["init", "apply"]


def init(dim: int) -> Params:
    """``weight`` ones (dim,)."""
    return {"weight": ones((dim,))}


def apply(params: Params, x: Tensor, *, eps: float = 1e-6) -> Tensor:
    """x (..., dim) -> (..., dim): ``weight * (x / sqrt(mean(x**2) + eps))``.

    The statistics run in float32 (float64 for float64 inputs); the normalised value is cast
    to x's dtype before the scale, and the result has the dtype of ``weight * x`` (x's dtype
    when both agree).
    """
    h = x.to(torch.promote_types(x.dtype, torch.float32))  # float64 stays float64
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return params["weight"] * h.to(x.dtype)
