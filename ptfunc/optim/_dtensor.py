"""The optimizers on trees of DTensors (``torch.distributed.tensor``): local shards.

Every rule of :mod:`ptfunc.optim` is element-wise per leaf except for norms, so a step on a
tree of DTensors is the same step on each rank's local shards. :class:`~.lists.ListOps`
and the fused-kernel path call :func:`localize` to swap DTensors for their local tensors
(``to_local()``: aliases, so in-place updates write the DTensors' storage), run the
``torch._foreach_*`` / ``torch._fused_adam(w)_`` kernels on them, and :func:`wrap` the
results back into DTensors with the placements, global shape and stride of the leaf
they came from. Norms (global-norm clipping, BertAdam's per-tensor clipping) are
:func:`norms`: the local squared norms summed (``all_reduce``) over the mesh dims on
which the leaf is sharded, so every rank gets the norm of the whole tensor.

DTensor's own dispatch would do the element-wise part too, but it has no sharding strategy
for several foreach ops (``aten._foreach_addcdiv.Scalar``), and the local path costs no
communication at all.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["any_dtensor", "localize", "wrap", "norms"]

_DTENSOR: type | None | bool = False  # resolved on first use (None: not available)


def _dtensor_type() -> type | None:
    global _DTENSOR
    if _DTENSOR is False:
        try:
            from torch.distributed.tensor import DTensor
        except ImportError:  # torch without distributed support
            DTensor = None
        _DTENSOR = DTensor
    return _DTENSOR  # type: ignore[return-value]


def any_dtensor(*lists: Sequence[Tensor]) -> bool:
    """True when a list holds a DTensor."""
    dt = _dtensor_type()
    return dt is not None and any(isinstance(t, dt) for lst in lists for t in lst)


def localize(lst: Sequence[Tensor]) -> list[Tensor]:
    """Each DTensor's local tensor (an alias of its storage); other tensors as they are."""
    dt = _dtensor_type()
    return [t.to_local() if dt is not None and isinstance(t, dt) else t for t in lst]


def wrap(local: Sequence[Tensor], like: Sequence[Tensor]) -> list[Tensor]:
    """``local[i]`` as a DTensor placed as ``like[i]`` where that is a DTensor."""
    dt = _dtensor_type()
    out = []
    for x, ref in zip(local, like):
        if dt is not None and isinstance(ref, dt) and not isinstance(x, dt):
            x = dt.from_local(
                x, ref.device_mesh, ref.placements, run_check=False,
                shape=ref.shape, stride=ref.stride(),
            )  # fmt: skip
        out.append(x)
    return out


def norms(tensors: Sequence[Tensor]) -> list[Tensor]:
    """The L2 norm of each whole tensor (0-d plain tensors, the same on every rank).

    A DTensor's norm is ``sqrt`` of its local squared norm summed over the mesh dims on
    which it is sharded (one ``all_reduce`` per group of leaves sharded alike); a
    replicated dim adds nothing. ``Partial`` placements are refused (pending sums).
    """
    import torch.distributed as dist
    from torch.distributed.tensor import Partial

    from ..distributed._strided import is_shard  # Shard, or a fused leaf's strided shard

    dt = _dtensor_type()
    out: list[Tensor] = [None] * len(tensors)  # type: ignore[list-item]
    groups: dict[tuple, list[int]] = defaultdict(list)
    squares: list[Tensor] = [None] * len(tensors)  # type: ignore[list-item]
    for i, t in enumerate(tensors):
        if dt is None or not isinstance(t, dt):
            out[i] = torch.linalg.vector_norm(t)
            continue
        if any(isinstance(p, Partial) for p in t.placements):
            raise ValueError("norms of DTensors with Partial placements (reduce them first)")
        local = t.to_local()
        squares[i] = torch.linalg.vector_norm(local.detach(), dtype=torch.float64) ** 2
        dims = tuple(d for d, p in enumerate(t.placements) if is_shard(p))
        groups[(id(t.device_mesh), dims, local.device)].append(i)
    for (_, dims, _), idx in groups.items():
        mesh = tensors[idx[0]].device_mesh
        total = torch.stack([squares[i] for i in idx])
        for d in dims:
            if mesh.size(d) > 1:
                dist.all_reduce(total, group=mesh.get_group(d))
        for j, i in enumerate(idx):
            out[i] = total[j].sqrt().to(tensors[i].dtype)
    return out
