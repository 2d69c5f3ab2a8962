"""Fixed sinusoidal position embeddings in the interleaved layout of XLM.

pytorch-transformers 1.0's ``create_sinusoidal_embeddings`` writes
``sin(p / 10000 ** (2 * (j // 2) / dim))`` into the even columns ``j`` and the
``cos`` of the same angle into the odd ones, in float64 (NumPy), then casts.
(Transformer-XL and XLNet concatenate ``[sin | cos]`` instead: see
:mod:`ptfunc.layers.relative_position`.)
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["interleaved_sinusoids"]


def interleaved_sinusoids(positions: Tensor, dim: int, *, dtype: torch.dtype) -> Tensor:
    """Sinusoid embeddings of integer positions, sin/cos interleaved.

    Args:
        positions: integer tensor (...) of positions.
        dim: embedding width (odd widths end on a sin column, as in the seed).
        dtype: dtype of the result; the angles are computed in float64 first.

    Returns:
        (..., dim) tensor: column ``2k`` is ``sin(p * w_k)``, column ``2k + 1`` is
        ``cos(p * w_k)``, with ``w_k = 10000 ** (-2k / dim)``.

    >>> interleaved_sinusoids(torch.tensor([0, 1]), 4, dtype=torch.float32)[0].tolist()
    [0.0, 1.0, 0.0, 1.0]
    """
    half = (dim + 1) // 2
    k = torch.arange(half, dtype=torch.float64, device=positions.device)
    denom = torch.pow(torch.tensor(10000.0, dtype=torch.float64), 2.0 * k / dim)
    angles = positions.to(torch.float64)[..., None] / denom
    table = torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(-2)[..., :dim]
    return table.to(dtype)
