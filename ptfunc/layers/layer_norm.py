"""Layer normalisation over the last axis."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ..tree import Params
from .initializers import ones, zeros

__all__ = ["init", "apply"]


def init(dim: int) -> Params:
    """``weight`` ones (dim,), ``bias`` zeros (dim,)."""
    return {"weight": ones((dim,)), "bias": zeros((dim,))}


def apply(params: Params, x: Tensor, *, eps: float = 1e-12) -> Tensor:
    """x (..., dim) -> (..., dim), normalised then scaled and shifted."""
    return F.layer_norm(x, x.shape[-1:], params["weight"], params["bias"], eps)
