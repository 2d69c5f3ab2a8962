"""Process-group helpers and the few collectives ptfunc uses, with fallbacks.

Every function here works without an initialised process group: it then behaves as
a group of one (rank 0 of 1), so code written for ``torchrun`` also runs as a plain
``python script.py``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["is_initialized", "rank", "world_size", "all_gather_flat", "reduce_scatter_flat"]

Group = Any
"""A ``torch.distributed.ProcessGroup``, or None for the default (world) group."""


def is_initialized() -> bool:
    """True when ``torch.distributed`` is available and a default process group exists."""
    return dist.is_available() and dist.is_initialized()


def rank(group: Group = None) -> int:
    """This process's rank in ``group`` (the default group when None); 0 when not initialised."""
    return dist.get_rank(group) if is_initialized() else 0


def world_size(group: Group = None) -> int:
    """Number of processes in ``group``; 1 when not initialised."""
    return dist.get_world_size(group) if is_initialized() else 1


# torch >= 2.13 names these *_single; the *_tensor names are deprecated aliases.
# (getattr: a torch built without distributed support has neither; nothing calls them then.)
_ALL_GATHER = getattr(dist, "all_gather_single", None) or getattr(
    dist, "all_gather_into_tensor", None
)
_REDUCE_SCATTER = getattr(dist, "reduce_scatter_single", None) or getattr(
    dist, "reduce_scatter_tensor", None
)


def all_gather_flat(local: Tensor, group: Group = None) -> Tensor:
    """Concatenate every rank's 1-D ``local`` (same length on all ranks), in rank order.

    ``local`` (n,) -> (world * n,). Uses one ``all_gather`` into a single tensor; falls
    back to the list form of ``all_gather`` where the backend lacks it (old gloo).
    """
    world = world_size(group)
    if world == 1:
        return local.clone()
    out = torch.empty(world * local.numel(), dtype=local.dtype, device=local.device)
    try:
        _ALL_GATHER(out, local, group=group)
    except (RuntimeError, NotImplementedError) as err:  # backend without the single-tensor form
        _reraise_unless_unsupported(err)
        chunks = list(out.chunk(world))
        dist.all_gather(chunks, local, group=group)
        out = torch.cat(chunks)
    return out


def reduce_scatter_flat(full: Tensor, group: Group = None) -> Tensor:
    """Sum ``full`` (world * n,) over ranks and return this rank's ``n`` elements.

    Falls back to ``all_reduce`` and a slice where the backend has no reduce-scatter
    (costs twice the traffic, same result).
    """
    world = world_size(group)
    if full.numel() % world:
        raise ValueError(
            f"reduce_scatter_flat needs a length divisible by {world}, got {full.numel()}"
        )
    n = full.numel() // world
    if world == 1:
        return full.clone()
    out = torch.empty(n, dtype=full.dtype, device=full.device)
    try:
        _REDUCE_SCATTER(out, full.contiguous(), group=group)
    except (RuntimeError, NotImplementedError) as err:
        _reraise_unless_unsupported(err)
        summed = full.clone()
        dist.all_reduce(summed, group=group)
        out = summed[rank(group) * n : (rank(group) + 1) * n].clone()
    return out


def _reraise_unless_unsupported(err: Exception) -> None:
    """Fall back only when the backend says it lacks the collective; re-raise anything else."""
    text = str(err).lower()
    if not ("support" in text or "implemented" in text):
        raise err
