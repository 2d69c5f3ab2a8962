"""Token embeddings: lookup, and the tied read-out that reuses the same leaf."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..random import Key
from ..tree import Params
from .initializers import normal

__all__ = ["init", "apply", "attend", "check_ids", "check_input_ids"]


def init(key: Key, num_embeddings: int, dim: int, *, std: float = 0.02) -> Params:
    """Embedding table ``weight`` (num_embeddings, dim) ~ N(0, std)."""
    return {"weight": normal(key, (num_embeddings, dim), std=std)}


def apply(params: Params, ids: Tensor, *, padding_idx: int | None = None) -> Tensor:
    """ids (...) int -> (..., dim).

    ``padding_idx`` keeps that row's gradient at zero, as ``nn.Embedding`` does.
    """
    return F.embedding(ids, params["weight"], padding_idx=padding_idx)


def attend(params: Params, x: Tensor, bias: Tensor | None = None) -> Tensor:
    """Read-out through the embedding matrix (weight tying): x (..., dim) -> (..., num)."""
    return F.linear(x, params["weight"], bias)


def _is_concrete(t: Tensor) -> bool:
    """True for a plain eager tensor whose values may be read (not traced or vmapped)."""
    if torch.compiler.is_compiling():
        return False
    from torch._C._functorch import is_functorch_wrapped_tensor

    return not is_functorch_wrapped_tensor(t) and t.device.type != "meta"


def check_ids(ids: Tensor, num_embeddings: int, *, name: str = "input_ids") -> None:
    """Raise a clear error for ids of the wrong dtype or outside ``[0, num_embeddings)``.

    The range check reads values, so it runs in eager mode only; under
    ``torch.compile`` and ``torch.func`` transforms it is skipped.
    """
    if not isinstance(ids, Tensor):
        raise TypeError(f"{name} must be an integer tensor, got {type(ids).__name__}")
    if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor (int64 or int32), got {ids.dtype}")
    if ids.numel() and _is_concrete(ids):
        lo, hi = int(ids.min()), int(ids.max())
        if lo < 0 or hi >= num_embeddings:
            raise ValueError(
                f"{name} must lie in [0, {num_embeddings}) (the vocabulary size), "
                f"got values in [{lo}, {hi}]"
            )


def check_input_ids(
    input_ids: Tensor,
    vocab_size: int,
    max_positions: int,
    *,
    positions_name: str,
    past_len: int = 0,
) -> None:
    """Validate a (batch, seq) id tensor: rank, dtype, vocabulary range and length.

    ``past_len`` counts cached positions (GPT-2's ``past``) towards ``max_positions``.
    """
    if not isinstance(input_ids, Tensor) or input_ids.dim() != 2:
        got = tuple(input_ids.shape) if isinstance(input_ids, Tensor) else type(input_ids).__name__
        raise ValueError(
            f"input_ids must have shape (batch, seq); got {got}. "
            "Under vmap over examples, add the batch axis with input_ids[None]."
        )
    check_ids(input_ids, vocab_size)
    total = past_len + input_ids.shape[1]
    if total > max_positions:
        what = "past + sequence length" if past_len else "sequence length"
        raise ValueError(f"{what} {total} exceeds {positions_name} ({max_positions})")
