"""Data parallelism over ``torch.distributed`` for params trees.

Every process holds the whole params tree and the whole optimizer state, computes the
gradient of the loss on its share of the global batch, and the gradients are averaged
over processes before the (identical) optimizer step on every process::

    params = broadcast_params(params)                  # all ranks start equal
    for step in range(total):
        local = shard_batch(global_batch(step), rank(), world_size())
        grads = ptfunc.func.grad(loss_fn)(params, local)
        grads = allreduce_grads(grads)                 # mean over ranks
        params, opt_state = ptfunc.optim.step(opt, grads, opt_state, params)

When every rank's share has the same size and the loss is a mean over examples, the
averaged gradient is the gradient of the full-batch loss, so ``world`` processes take
the same steps as one process on the whole batch (up to float summation order).
Dropout is the one catch: a mask drawn for a ``(B/world, ...)`` batch is not the rows of
the mask drawn for ``(B, ...)``; draw it per example from ``fold_in(key, global_index)``
(``examples/train_ddp.py`` shows how) when the runs must agree exactly.

Without an initialised process group every function acts as a group of one, so the
same script runs under ``python`` and under ``torchrun``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from ..tree import flatten, map, unflatten
from ._buckets import pack, plan_buckets, unpack_into
from ._comm import Group, is_initialized, rank, world_size

__all__ = [
    "is_initialized",
    "rank",
    "world_size",
    "allreduce_grads",
    "broadcast_params",
    "shard_batch",
    "shard_indices",
]

DEFAULT_BUCKET_BYTES = 25 * 2**20  # torch DistributedDataParallel's default bucket_cap_mb


def allreduce_grads(
    grads: Any,
    *,
    bucket_bytes: int = DEFAULT_BUCKET_BYTES,
    group: Group = None,
    average: bool = True,
) -> Any:
    """Sum (or average) a gradients tree over all processes, in a few bucketed all-reduces.

    The leaves are packed by dtype and device into contiguous buckets of at most
    ``bucket_bytes``; each bucket is all-reduced asynchronously, all are awaited, and the
    results are cut back into the tree's shapes. The input tree is not modified.

    Args:
        grads: a tree of tensors (any shapes and dtypes; float16/bfloat16 sum in their dtype).
        bucket_bytes: the largest bucket, in bytes (a larger leaf gets a bucket of its own).
        group: the process group (default: the world).
        average: divide the sum by the group's size (the mean gradient of data parallelism).

    Returns:
        A new tree with the structure of ``grads``; the input itself when the group has
        one process (nothing to reduce).

    Raises:
        TypeError: ``average=True`` with an integer or boolean leaf (a mean would truncate).
    """
    leaves, spec = flatten(grads)
    world = world_size(group)
    if average:
        bad = [i for i, x in enumerate(leaves) if not (x.is_floating_point() or x.is_complex())]
        if bad:
            raise TypeError(
                f"average=True needs floating-point leaves; leaf {bad[0]} is {leaves[bad[0]].dtype}"
                " (use average=False for an integer sum)"
            )
    if world == 1 or not leaves:
        return grads
    buckets = plan_buckets(leaves, bucket_bytes)
    flats = [pack(leaves, b) for b in buckets]
    works = [dist.all_reduce(f, group=group, async_op=True) for f in flats]
    out: list[Tensor] = list(leaves)
    for bucket, flat, work in zip(buckets, flats, works):
        work.wait()
        if average:
            flat.div_(world)
        unpack_into(flat, leaves, bucket, out)
    return unflatten(spec, out)


def broadcast_params(
    params: Any, src: int = 0, *, bucket_bytes: int = DEFAULT_BUCKET_BYTES, group: Group = None
) -> Any:
    """Every rank gets rank ``src``'s params (a new tree; the input is not modified).

    Call it once after ``init`` (or after loading) so that all ranks start from the same
    values even when they were initialised or loaded differently.
    """
    leaves, spec = flatten(params)
    if world_size(group) == 1 or not leaves:
        return params
    buckets = plan_buckets(leaves, bucket_bytes)
    flats = [pack(leaves, b) for b in buckets]
    works = [dist.broadcast(f, src=src, group=group, async_op=True) for f in flats]
    out: list[Tensor] = list(leaves)
    for bucket, flat, work in zip(buckets, flats, works):
        work.wait()
        unpack_into(flat, leaves, bucket, out)
    return unflatten(spec, out)


def shard_batch(batch: Any, rank: int, world: int) -> Any:
    """Rank ``rank``'s contiguous block of every leaf's leading (batch) axis.

    ``(B, ...) -> (B // world, ...)``; rank ``r`` gets rows ``r * B/world`` to
    ``(r + 1) * B/world - 1``, so the global index of its row ``j`` is ``r * B/world + j``.

    Raises:
        ValueError: the leaves disagree on ``B``, or ``B`` is not divisible by ``world``
            (unequal shares would make the averaged gradient differ from the full batch's).
    """
    if not 0 <= rank < world:
        raise ValueError(f"rank must lie in [0, {world}), got {rank}")
    sizes = {x.shape[0] for x in flatten(batch)[0]}
    if len(sizes) > 1:
        raise ValueError(f"the batch's leaves have different leading sizes {sorted(sizes)}")
    size = sizes.pop() if sizes else 0
    if size % world:
        raise ValueError(
            f"a global batch of {size} does not split evenly over {world} processes; "
            f"use a multiple of {world}"
        )
    n = size // world
    return map(lambda x: x[rank * n : (rank + 1) * n], batch)


def shard_indices(
    n: int,
    rank: int,
    world: int,
    *,
    shuffle: bool = True,
    seed: int = 0,
    epoch: int = 0,
    drop_last: bool = False,
) -> Tensor:
    """This rank's example indices for one epoch over ``n`` examples (``DistributedSampler``).

    All ranks compute the same permutation (from ``seed + epoch``) and rank ``r`` takes
    every ``world``-th index starting at ``r``. The shares have equal length: the tail
    is dropped (``drop_last``) or padded with the first indices again.

    Returns:
        int64 tensor ``(ceil(n / world),)`` (or ``(n // world,)`` with ``drop_last``).
    """
    if not 0 <= rank < world:
        raise ValueError(f"rank must lie in [0, {world}), got {rank}")
    if shuffle:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch))
    else:
        order = torch.arange(n)
    if drop_last:
        order = order[: n - n % world]
    elif n % world:
        pad = world - n % world
        order = torch.cat([order, order.repeat(pad // max(n, 1) + 1)[:pad]])
    return order[rank::world]
