"""Flatten a list of tensors into a few contiguous buckets and back.

A bucket holds leaves of one dtype and device, in their order, up to ``bucket_bytes``
(a leaf larger than that gets a bucket of its own). One collective per bucket instead
of one per leaf is what makes all-reducing a BERT's ~200 gradient tensors cheap.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["Bucket", "plan_buckets", "pack", "unpack_into"]


class Bucket(NamedTuple):
    """Positions (in the leaf list) of the leaves one bucket holds, and their dtype/device."""

    indices: tuple[int, ...]
    dtype: torch.dtype
    device: torch.device


def plan_buckets(leaves: list[Tensor], bucket_bytes: int) -> list[Bucket]:
    """Group ``leaves`` by (dtype, device) in order, each group cut into buckets of at most
    ``bucket_bytes`` (a single larger leaf is its own bucket)."""
    if bucket_bytes <= 0:
        raise ValueError(f"bucket_bytes must be > 0, got {bucket_bytes}")
    open_buckets: dict[tuple[torch.dtype, torch.device], tuple[list[int], int]] = {}
    done: list[Bucket] = []
    for i, leaf in enumerate(leaves):
        if not isinstance(leaf, Tensor):
            raise TypeError(f"leaf {i} is a {type(leaf).__name__}, expected a torch.Tensor")
        group = (leaf.dtype, leaf.device)
        size = leaf.numel() * leaf.element_size()
        indices, used = open_buckets.get(group, ([], 0))
        if indices and used + size > bucket_bytes:
            done.append(Bucket(tuple(indices), *group))
            indices, used = [], 0
        open_buckets[group] = (indices + [i], used + size)
    done.extend(Bucket(tuple(ix), *group) for group, (ix, _) in open_buckets.items() if ix)
    return done


def pack(leaves: list[Tensor], bucket: Bucket) -> Tensor:
    """The bucket's leaves, flattened and concatenated into one new 1-D tensor."""
    return torch.cat([leaves[i].reshape(-1) for i in bucket.indices])


def unpack_into(flat: Tensor, leaves: list[Tensor], bucket: Bucket, out: list[Tensor]) -> None:
    """Cut ``flat`` back into tensors shaped like the bucket's ``leaves``; write them to ``out``."""
    sizes = [leaves[i].numel() for i in bucket.indices]
    for i, piece in zip(bucket.indices, flat.split(sizes)):
        out[i] = piece.view(leaves[i].shape)
