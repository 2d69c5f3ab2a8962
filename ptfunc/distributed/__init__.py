"""Training over several processes with ``torch.distributed`` (launched by ``torchrun``).

Two ways to spread a params tree over processes:

* **data parallel** (:mod:`.data_parallel`): every rank holds everything; the
  gradients are averaged over ranks in bucketed all-reduces
  (:func:`allreduce_grads`), so ``world`` processes on ``1/world`` of the batch each
  take the steps of one process on the whole batch;
* **sharded** (:mod:`.sharded`, FSDP/ZeRO-style): every rank keeps ``1/world`` of every
  leaf and of the optimizer state; the full params are gathered for the step
  (:func:`gather_params`) and the gradients reduce-scattered back to pieces
  (:func:`reduce_scatter_grads`); checkpoints are saved per rank and can be
  consolidated in one process (:mod:`.checkpoint`).

Backends: gloo (CPU) and nccl (CUDA), through the plain ``torch.distributed``
collectives. Without an initialised process group everything acts as one process.
``examples/train_ddp.py`` is the complete loop.

On PyTorch's own stack (DeviceMesh, DTensor, DCP): :func:`shard` makes a tree of DTensors
(FSDP over a 1-D mesh, FSDP x tensor parallel over a ("dp", "tp") mesh with a plan of
:mod:`.tensor_parallel`), :func:`fsdp.value_and_grad` gathers one layer at a time with
prefetch and reduce-scatters the gradients, and :mod:`.dcp` saves and reshards checkpoints
(``examples/train_fsdp.py``).

Example (one process; the same lines run unchanged under ``torchrun``):
    >>> import torch
    >>> from ptfunc import distributed as ptd
    >>> grads = {"w": torch.ones(3), "b": torch.zeros((), dtype=torch.float64)}
    >>> ptd.allreduce_grads(grads)["w"]
    tensor([1., 1., 1.])
    >>> layout = ptd.ShardLayout.of({"w": torch.arange(5.0)}, world_size=2)
    >>> ptd.shard_params({"w": torch.arange(5.0)}, layout, rank=1)["w"]
    tensor([3., 4., 0.])
"""

from . import dcp as dcp  # DCP-format checkpoints: dcp.save / dcp.load / dcp.consolidate
from . import fsdp as fsdp  # DTensor params, FSDP2-style per-layer gathers: fsdp.value_and_grad
from . import tensor_parallel as tensor_parallel  # column/row/vocab-parallel plans
from ._comm import is_initialized, rank, world_size
from .checkpoint import (
    consolidate,
    consolidate_train_state,
    load_sharded,
    read_index,
    save_sharded,
    shard_like,
)
from .data_parallel import allreduce_grads, broadcast_params, shard_batch, shard_indices
from .fsdp import full_params, shard
from .sharded import (
    LeafLayout,
    ShardLayout,
    clip_by_global_norm,
    gather_params,
    global_norm,
    reduce_scatter_grads,
    shard_params,
)

__all__ = [
    "is_initialized",
    "rank",
    "world_size",
    "allreduce_grads",
    "broadcast_params",
    "shard_batch",
    "shard_indices",
    "LeafLayout",
    "ShardLayout",
    "shard_params",
    "gather_params",
    "reduce_scatter_grads",
    "global_norm",
    "clip_by_global_norm",
    "save_sharded",
    "load_sharded",
    "consolidate",
    "consolidate_train_state",
    "shard_like",
    "read_index",
    "shard",
    "full_params",
]
