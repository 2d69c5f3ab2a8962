"""Dropout whose mask is drawn from an explicit key."""

from __future__ import annotations

from torch import Tensor

from .. import random
from ..random import Key

__all__ = ["apply", "require_key"]


def require_key(train: bool, key: Key | None, where: str = "apply") -> None:
    """Raise when ``train=True`` comes without a key (dropout needs one)."""
    if train and key is None:
        raise ValueError(
            f"{where}(train=True) needs a random key for dropout: pass key=ptfunc.random.key(seed)"
        )


def apply(x: Tensor, rate: float, *, key: Key | None, train: bool) -> Tensor:
    """Inverted dropout: zero each entry with probability ``rate``, scale the rest by 1/(1-rate).

    Args:
        x: any shape and floating dtype.
        rate: drop probability in [0, 1).
        key: random key; required when ``train`` and ``rate > 0``.
        train: identity when False.

    Returns:
        Tensor of the shape and dtype of ``x``. The same key gives the same mask.
    """
    if not train or rate == 0.0:
        return x
    if key is None:
        raise ValueError("dropout with train=True needs a random key")
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dropout rate must lie in [0, 1), got {rate}")
    keep = random.bits(key, x.shape) >= round(rate * (1 << 32))  # integer compare, no floats
    return x * (keep.to(x.dtype) * (1.0 / (1.0 - rate)))
