"""Sharded params and optimizer state (FSDP / ZeRO-style) for params trees.

Each leaf is flattened, zero-padded to a multiple of the world size and cut into
``world`` equal pieces; rank ``r`` keeps piece ``r``. The sharded tree has the params'
structure and names, with 1-D leaves of ``ceil(numel / world)`` elements, so an optimizer
initialised on it holds only this rank's share of its state, and name-based masks
(``ptfunc.optim.no_decay_mask``) still work::

    layout = ShardLayout.of(params, world_size())
    shards = shard_params(params, layout, rank())        # keep 1/world of every leaf
    opt_state = opt.init(shards)                         # 1/world of Adam's moments
    for step in range(total):
        full = gather_params(shards, layout)             # all-gather -> whole tree
        grads = ptfunc.func.grad(loss_fn)(full, local_batch(step))
        del full
        grads = reduce_scatter_grads(grads, layout)      # mean over ranks, this rank's piece
        shards, opt_state = ptfunc.optim.step(opt, grads, opt_state, shards)

Why the shard-wise step is the full step: ``adam``, ``adamw``, ``adamw_torch`` and ``sgd``
update every element from that element's gradient, moments and value alone, so running
them on pieces and concatenating equals running them on the whole. Padding is zero in
params and gradients and stays zero. What is *not* elementwise: global-norm clipping
(use :func:`clip_by_global_norm` here, which all-reduces the norm), per-leaf clipping
(``clip_by_norm_per_leaf``, ``bert_adam``, ``openai_adam``' ``max_grad_norm``: a piece's
norm is not the leaf's), and masks that look at a leaf's shape rather than its name.

Memory: the optimizer state and the persistent params are 1/world per rank; the whole
params tree and its gradient exist during a step (gathered for the whole model at once,
not layer by layer), so this fits models whose params + grads fit a device but whose
Adam state (twice the params) does not, as ZeRO-2 does.

Collectives: one ``all_gather`` / ``reduce_scatter`` per bucket of leaves of one dtype
(``torch.distributed`` plain collectives, gloo and nccl; where gloo lacks
reduce-scatter, an ``all_reduce`` and a slice). DTensor is not used: it would make every
leaf a tensor subclass, which ``torch.func`` transforms and ptfunc's ``_foreach`` optimizer
path do not all accept on CPU/gloo.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from ..optim.base import GradientTransformation
from ..tree import flatten, map_with_names, unflatten
from ._buckets import Bucket, plan_buckets
from ._comm import Group, all_gather_flat, reduce_scatter_flat, world_size
from .data_parallel import DEFAULT_BUCKET_BYTES

__all__ = [
    "LeafLayout",
    "ShardLayout",
    "shard_params",
    "gather_params",
    "reduce_scatter_grads",
    "global_norm",
    "clip_by_global_norm",
]


@dataclass(frozen=True)
class LeafLayout:
    """How one leaf is cut: its dotted ``name``, full ``shape`` and ``dtype`` (e.g. "float32"),
    and ``shard_numel``, the length of each rank's piece (``ceil(numel / world)``)."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    shard_numel: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class ShardLayout:
    """The cut of a whole params tree over ``world_size`` ranks (one :class:`LeafLayout`
    per leaf, in the tree's leaf order). Build it with :meth:`of`."""

    world_size: int
    leaves: tuple[LeafLayout, ...]

    @classmethod
    def of(cls, params: Any, world_size: int) -> ShardLayout:
        """The layout of ``params`` (full tree) cut into ``world_size`` pieces per leaf."""
        if world_size < 1:
            raise ValueError(f"world_size must be >= 1, got {world_size}")
        names = _leaf_names(params)
        leaves = flatten(params)[0]
        return cls(
            world_size,
            tuple(
                LeafLayout(
                    name,
                    tuple(x.shape),
                    str(x.dtype).removeprefix("torch."),
                    -(-x.numel() // world_size),
                )
                for name, x in zip(names, leaves)
            ),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (what the sharded checkpoint's index stores)."""
        return {
            "world_size": self.world_size,
            "leaves": [
                {
                    "name": x.name,
                    "shape": list(x.shape),
                    "dtype": x.dtype,
                    "shard_numel": x.shard_numel,
                }
                for x in self.leaves
            ],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ShardLayout:
        """Inverse of :meth:`to_dict`."""
        return cls(
            int(d["world_size"]),
            tuple(
                LeafLayout(x["name"], tuple(x["shape"]), x["dtype"], int(x["shard_numel"]))
                for x in d["leaves"]
            ),
        )


def _leaf_names(tree: Any) -> list[str]:
    """Dotted names of the leaves, in ``flatten`` order."""
    return flatten(map_with_names(lambda name, _: name, tree))[0]


def _check_tree(tree: Any, layout: ShardLayout, what: str, full: bool) -> list[Tensor]:
    leaves = flatten(tree)[0]
    if len(leaves) != len(layout.leaves):
        raise ValueError(
            f"{what} has {len(leaves)} leaves, the layout {len(layout.leaves)}; "
            "was the layout made from another model?"
        )
    for x, spec in zip(leaves, layout.leaves):
        want = spec.shape if full else (spec.shard_numel,)
        if tuple(x.shape) != want:
            raise ValueError(
                f"{what} leaf {spec.name}: expected shape {want}, got {tuple(x.shape)}"
            )
    return leaves


def _padded(x: Tensor, spec: LeafLayout, world: int) -> Tensor:
    """The leaf flattened and zero-padded to ``world * shard_numel`` elements, as (world, shard)."""
    flat = x.reshape(-1)
    pad = world * spec.shard_numel - flat.numel()
    if pad:
        flat = torch.cat([flat, flat.new_zeros(pad)])
    return flat.view(world, spec.shard_numel)


def shard_params(params: Any, layout: ShardLayout, rank: int) -> Any:
    """Rank ``rank``'s piece of every leaf of the full tree ``params``.

    Returns:
        The params' structure with 1-D leaves of ``shard_numel`` elements (new memory).
    """
    if not 0 <= rank < layout.world_size:
        raise ValueError(f"rank must lie in [0, {layout.world_size}), got {rank}")
    leaves, spec = flatten(params)
    _check_tree(params, layout, "params", full=True)
    pieces = [_padded(x, s, layout.world_size)[rank].clone() for x, s in zip(leaves, layout.leaves)]
    return unflatten(spec, pieces)


def _check_world(layout: ShardLayout, group: Group) -> int:
    world = world_size(group)
    if world != layout.world_size:
        raise ValueError(
            f"the layout cuts leaves into {layout.world_size} pieces but the group has "
            f"{world} processes"
        )
    return world


def gather_params(
    shards: Any,
    layout: ShardLayout,
    *,
    bucket_bytes: int = DEFAULT_BUCKET_BYTES,
    group: Group = None,
) -> Any:
    """The full params tree from every rank's pieces (all-gather, one per bucket).

    Returns:
        A new tree with the full shapes of the layout (a plain tensor per leaf).
    """
    world = _check_world(layout, group)
    leaves, spec = flatten(shards)
    _check_tree(shards, layout, "shards", full=False)
    out: list[Tensor] = list(leaves)
    for bucket in plan_buckets(leaves, bucket_bytes // max(world, 1) or 1):
        gathered = all_gather_flat(torch.cat([leaves[i] for i in bucket.indices]), group)
        rows = gathered.view(world, -1)
        offset = 0
        for i in bucket.indices:
            s = layout.leaves[i]
            piece = rows[:, offset : offset + s.shard_numel].reshape(-1)[: s.numel]
            out[i] = piece.view(s.shape)
            offset += s.shard_numel
    return unflatten(spec, out)


def reduce_scatter_grads(
    grads: Any,
    layout: ShardLayout,
    *,
    bucket_bytes: int = DEFAULT_BUCKET_BYTES,
    group: Group = None,
    average: bool = True,
) -> Any:
    """Sum (or average) the full gradients over ranks and keep this rank's piece of each leaf.

    Returns:
        A tree shaped like the shards (1-D leaves of ``shard_numel``), padding zero.
    """
    world = _check_world(layout, group)
    leaves, spec = flatten(grads)
    _check_tree(grads, layout, "grads", full=True)
    out: list[Tensor] = list(leaves)
    for bucket in plan_buckets(leaves, bucket_bytes):
        rows = torch.cat(
            [_padded(leaves[i], layout.leaves[i], world) for i in bucket.indices], dim=1
        )
        mine = reduce_scatter_flat(rows.reshape(-1), group)
        if average:
            mine = mine.div_(world)
        _split_into(mine, bucket, layout, out)
    return unflatten(spec, out)


def _split_into(flat: Tensor, bucket: Bucket, layout: ShardLayout, out: list[Tensor]) -> None:
    sizes = [layout.leaves[i].shard_numel for i in bucket.indices]
    for i, piece in zip(bucket.indices, flat.split(sizes)):
        out[i] = piece


def global_norm(shards: Any, *, group: Group = None) -> Tensor:
    """The L2 norm of the whole (unsharded) tree, from every rank's pieces.

    Each rank sums the squares of its pieces (padding adds zero) in float64, the sums
    are all-reduced, and the square root is returned (0-d float64, same on all ranks).
    """
    leaves = flatten(shards)[0]
    device = leaves[0].device if leaves else torch.device("cpu")
    total = torch.zeros((), dtype=torch.float64, device=device)
    for x in leaves:
        total = total + x.detach().to(torch.float64).square().sum()
    if world_size(group) > 1:
        dist.all_reduce(total, group=group)
    return total.sqrt()


def clip_by_global_norm(max_norm: float, *, group: Group = None) -> GradientTransformation:
    """``ptfunc.optim.clip_by_global_norm`` for sharded gradients: the norm is taken over
    the whole tree (all ranks), then every piece is scaled by
    ``min(1, max_norm / (norm + 1e-6))``, as ``torch.nn.utils.clip_grad_norm_`` does."""
    if max_norm <= 0:
        raise ValueError(f"max_norm must be > 0, got {max_norm}")

    def init(params: Any) -> tuple[()]:
        return ()

    def update(updates: Any, state: Any, params: Any = None, *, inplace: bool = False):
        leaves, spec = flatten(updates)
        if not leaves:
            return updates, state
        norm = global_norm(updates, group=group)
        coef = (max_norm / (norm + 1e-6)).clamp(max=1.0)
        if inplace:
            torch._foreach_mul_(leaves, coef.to(leaves[0].dtype))
            return updates, state
        return unflatten(spec, [x * coef.to(x.dtype) for x in leaves]), state

    return GradientTransformation(init, update)
