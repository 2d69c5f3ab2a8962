"""Fused tensor-parallel leaves as DTensors, and their DCP form.

A fused leaf (GPT-2's ``c_attn``: ``[q | k | v]`` along one dim) is cut per block, so tp
rank ``r`` holds ``[q_r | k_r | v_r]``. As a DTensor that is the placement
``_StridedShard(dim, split_factor=blocks)`` on the tp mesh dim: its global value is the
natural ``[q | k | v]`` (``full_tensor()`` is right, placements survive arithmetic), but its
local piece is not one box of the global tensor, which DCP needs. So DCP stores the leaf
*unfolded*: ``dim`` of size ``n`` split into ``(blocks, n / blocks)``, the strided placement
becoming ``Shard(dim + 1)``; every rank's piece is then a box, and the unfolded tensor is a
view of the natural one (``.view(shape)`` folds it back).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

__all__ = [
    "strided_shard",
    "strided",
    "is_shard",
    "unfolded_shape",
    "unfolded_placements",
    "unfold",
]


def _strided_type() -> type:
    from torch.distributed.tensor.placement_types import _StridedShard

    return _StridedShard


def strided_shard(dim: int, blocks: int) -> Any:
    """The placement of a leaf of ``blocks`` fused blocks along ``dim``, each cut over tp."""
    return _strided_type()(dim, split_factor=blocks)


def strided(x: Any) -> tuple[int, int] | None:
    """``(dim, blocks)`` of a DTensor's strided placement, or None (plain tensors too)."""
    for p in getattr(x, "placements", ()):
        if isinstance(p, _strided_type()):
            return p.dim, p.split_factor
    return None


def is_shard(p: Any) -> bool:
    """True for a placement that cuts a tensor dim: ``Shard`` or a strided shard."""
    from torch.distributed.tensor import Shard

    return isinstance(p, (Shard, _strided_type()))


def unfolded_shape(shape: tuple[int, ...], dim: int, blocks: int) -> tuple[int, ...]:
    """``shape`` with ``dim`` split into ``(blocks, shape[dim] // blocks)``."""
    shape = tuple(shape)
    return shape[:dim] + (blocks, shape[dim] // blocks) + shape[dim + 1 :]


def unfolded_placements(placements: tuple[Any, ...], dim: int) -> list[Any]:
    """The placements of the unfolded tensor: the strided one becomes ``Shard(dim + 1)``,
    a ``Shard(e)`` past ``dim`` moves to ``e + 1``; others are kept."""
    from torch.distributed.tensor import Shard

    out = []
    for p in placements:
        if isinstance(p, _strided_type()):
            out.append(Shard(dim + 1))
        elif isinstance(p, Shard) and p.dim > dim:
            out.append(Shard(p.dim + 1))
        else:
            out.append(p)
    return out


def _contiguous_stride(shape: tuple[int, ...]) -> tuple[int, ...]:
    stride, acc = [], 1
    for n in reversed(shape):
        stride.append(acc)
        acc *= n
    return tuple(reversed(stride))


def unfold(x: Any) -> Any:
    """The unfolded DTensor of a strided DTensor ``x``, sharing its local storage."""
    from torch.distributed.tensor import DTensor

    found = strided(x)
    if found is None:
        raise ValueError("unfold needs a DTensor with a strided (fused) placement")
    dim, blocks = found
    local: Tensor = x.to_local().contiguous()  # a no-op for shard()'s leaves and load targets
    local = local.view(unfolded_shape(local.shape, dim, blocks))
    shape = unfolded_shape(x.shape, dim, blocks)
    return DTensor.from_local(
        local, x.device_mesh, unfolded_placements(x.placements, dim), run_check=False,
        shape=shape, stride=_contiguous_stride(shape),
    )  # fmt: skip
