"""Relative positional attention pieces shared by Transformer-XL and XLNet.

Both models score a query at absolute position ``i`` against a key at ``j`` with a
term that depends only on the distance ``i - j``. They compute it against a
table of sinusoid embeddings of all distances (one row per distance, in
decreasing order), then move each query's row so that column ``j`` holds the
score for that key: :func:`rel_shift`. Feeding the result to
:func:`ptfunc.layers.attention.dot_product_attention` as an additive ``bias``
keeps the fused kernel for the content term.

The sinusoid layout here is the Transformer-XL/XLNet one, ``[sin | cos]``
concatenated (XLM interleaves them and has its own table).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["sinusoid_table", "rel_shift"]


def sinusoid_table(positions: Tensor, dim: int) -> Tensor:
    """Sinusoid embeddings of (possibly negative, fractional) positions.

    Args:
        positions: (n,) float tensor of positions or distances.
        dim: even embedding width.

    Returns:
        (n, dim) tensor in ``positions.dtype``: ``[sin(p * f) | cos(p * f)]`` with
        ``f_k = 10000 ** (-2k / dim)``, ``k < dim / 2``.

    >>> sinusoid_table(torch.tensor([0.0, 1.0]), 4)[0].tolist()
    [0.0, 0.0, 1.0, 1.0]
    """
    if dim % 2:
        raise ValueError(f"sinusoid width must be even, got {dim}")
    exponents = torch.arange(0.0, dim, 2.0, device=positions.device, dtype=positions.dtype) / dim
    inv_freq = 1.0 / (10000.0**exponents)
    angles = positions[:, None] * inv_freq[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def rel_shift(scores: Tensor, key_len: int, offset: int) -> Tensor:
    """Re-index scores against a distance table into scores against keys.

    ``out[..., i, j] = scores[..., i, j + offset - i]`` wherever that column exists;
    elsewhere ``out`` holds finite filler (zeros or a neighbouring row's values)
    that callers mask out, as the seed's pad-and-reshape trick does. One pad (when
    needed), one reshape and one slice: no gather, so it batches under ``vmap``.

    Args:
        scores: (..., q_len, n_distances).
        key_len: number of keys in the output.
        offset: column of the first query's score for key 0; Transformer-XL uses
            ``q_len - 1`` (distances ``key_len - 1 .. 0``), XLNet ``q_len``
            (distances ``key_len .. -q_len + 1`` or ``.. 1``).

    Returns:
        (..., q_len, key_len).

    >>> x = torch.arange(6.0).reshape(2, 3)  # 2 queries at positions 1, 2; distances 2, 1, 0
    >>> rel_shift(x, 3, 1).tolist()  # query 0 sees keys 0, 1 at distances 1, 0, then filler
    [[1.0, 2.0, 0.0], [3.0, 4.0, 5.0]]
    """
    *lead, q_len, n = scores.shape
    pad = max(0, key_len + 1 - n)
    start = offset + pad
    if not 0 <= start <= q_len:
        raise ValueError(f"rel_shift: offset {offset} does not fit q_len {q_len} and {n} distances")
    if pad:
        scores = F.pad(scores, (pad, 0))
    width = n + pad
    flat = scores.reshape(*lead, q_len * width)
    shifted = flat[..., start : start + q_len * (width - 1)].reshape(*lead, q_len, width - 1)
    return shifted[..., :key_len]
