"""Initialisers: pure functions of a key and a shape.

Initial values are drawn from a ``torch.Generator`` seeded from the key, so
``init`` is deterministic in the key and fast for large models; under a
``torch.device("meta")`` context they build shapes without memory (used to
compare a checkpoint with what a model expects).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..random import Key, _check_key

__all__ = ["generator", "normal", "uniform", "zeros", "ones"]


def generator(key: Key) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded from both words of ``key``."""
    _check_key(key)
    k0, k1 = (int(w) for w in key.reshape(-1, 2)[0].tolist())
    return torch.Generator().manual_seed((k1 << 32) | k0)


def normal(
    key: Key,
    shape: Sequence[int],
    *,
    std: float = 0.02,
    mean: float = 0.0,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """``N(mean, std**2)`` samples of ``shape`` (float32 unless ``dtype`` says otherwise)."""
    out = torch.empty(tuple(shape), dtype=torch.float32)
    if out.device.type != "meta":
        out.normal_(mean, std, generator=generator(key))
    return out if dtype is None else out.to(dtype)


def uniform(
    key: Key,
    shape: Sequence[int],
    *,
    low: float,
    high: float,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """``U(low, high)`` samples of ``shape`` (float32 unless ``dtype`` says otherwise)."""
    out = torch.empty(tuple(shape), dtype=torch.float32)
    if out.device.type != "meta":
        out.uniform_(low, high, generator=generator(key))
    return out if dtype is None else out.to(dtype)


def zeros(shape: Sequence[int], *, dtype: torch.dtype | None = None) -> Tensor:
    """Zeros of ``shape`` (float32 by default)."""
    return torch.zeros(tuple(shape), dtype=dtype or torch.float32)


def ones(shape: Sequence[int], *, dtype: torch.dtype | None = None) -> Tensor:
    """Ones of ``shape`` (float32 by default)."""
    return torch.ones(tuple(shape), dtype=dtype or torch.float32)
