"""List arithmetic for optimizers: one ``torch._foreach_*`` call per (device, dtype) group,
or a per-leaf loop that serves as the reference implementation.

Every rule in :mod:`ptfunc.optim` is written once against :class:`ListOps`. The
``foreach`` backend is what ``torch.optim`` uses (a handful of kernel launches
per step, whatever the number of leaves); the ``loop`` backend is plain
per-tensor torch code, kept as the reference the tests hold the fast path to,
and used automatically under ``torch.func`` transforms (``vmap`` over an ensemble
of optimizer states), where foreach kernels have no batching rules.

Out-of-place methods return new lists (so a step can be differentiated
through); ``*_`` methods write into their first argument (used when the caller
donates buffers with ``inplace=True``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import torch
from torch import Tensor

from .._functorch import under_transform
from . import _dtensor

__all__ = ["ListOps", "Arith", "FOREACH", "LOOP", "backend"]

Scalar = float | Tensor


def _groups(tensors: Sequence[Tensor]) -> list[list[int]]:
    by_key: dict[tuple[torch.device, torch.dtype], list[int]] = defaultdict(list)
    for i, t in enumerate(tensors):
        by_key[(t.device, t.dtype)].append(i)
    return list(by_key.values())


def _scalar_for(s: Scalar, t: Tensor) -> Scalar:
    """Tensor scalars move to the group's device (0-d CPU tensors work anywhere)."""
    if isinstance(s, Tensor) and s.device != t.device and s.dim() > 0:
        return s.to(t.device)
    return s


class _ScalarsByDevice:
    """Tensor scalars copied once per device for the per-leaf loop. Under ``vmap`` a step
    count kept on the CPU is a batched tensor, not a 0-d CPU scalar that CUDA ops accept, so
    it must be on the leaf's device."""

    def __init__(self, scalars: tuple[Scalar, ...]) -> None:
        self.scalars = scalars
        self.by_device: dict[torch.device, tuple[Scalar, ...]] = {}

    def on(self, device: torch.device) -> tuple[Scalar, ...]:
        if device not in self.by_device:
            self.by_device[device] = tuple(
                s.to(device) if isinstance(s, Tensor) and s.device != device else s
                for s in self.scalars
            )
        return self.by_device[device]


class ListOps:
    """Element-wise arithmetic over lists of tensors, by groups."""

    def __init__(self, foreach: bool) -> None:
        self.foreach = foreach

    def _map(
        self, name: str, lists: Sequence[Sequence[Tensor]], *scalars: Scalar, **kwargs: Scalar
    ) -> list[Tensor]:
        first = lists[0]
        if _dtensor.any_dtensor(*lists):  # DTensor trees: the same op on the local shards
            local = self._map(name, [_dtensor.localize(lst) for lst in lists], *scalars, **kwargs)
            return _dtensor.wrap(local, first)
        out: list[Tensor] = [None] * len(first)  # type: ignore[list-item]
        if self.foreach:
            op = getattr(torch, f"_foreach_{name}")
            for idx in _groups(first):
                args = [[lst[i] for i in idx] for lst in lists]
                res = op(*args, *(_scalar_for(s, args[0][0]) for s in scalars), **kwargs)
                for j, i in enumerate(idx):
                    out[i] = res[j]
            return out
        op = getattr(torch, name)
        moved = _ScalarsByDevice(scalars)
        for i in range(len(first)):
            out[i] = op(*(lst[i] for lst in lists), *moved.on(first[i].device), **kwargs)
        return out

    def _map_(
        self, name: str, lists: Sequence[Sequence[Tensor]], *scalars: Scalar, **kwargs: Scalar
    ) -> None:
        first = lists[0]
        if _dtensor.any_dtensor(*lists):  # local shards, written through their aliases
            self._map_(name, [_dtensor.localize(lst) for lst in lists], *scalars, **kwargs)
            return
        if self.foreach:
            op = getattr(torch, f"_foreach_{name}_")
            for idx in _groups(first):
                args = [[lst[i] for i in idx] for lst in lists]
                op(*args, *(_scalar_for(s, args[0][0]) for s in scalars), **kwargs)
            return
        moved = _ScalarsByDevice(scalars)
        for i in range(len(first)):
            args = (*(lst[i] for lst in lists[1:]), *moved.on(first[i].device))
            getattr(first[i], f"{name}_")(*args, **kwargs)

    # out-of-place ------------------------------------------------------------------------------
    def add(self, a: Sequence[Tensor], b: Sequence[Tensor], alpha: float = 1.0) -> list[Tensor]:
        """a + alpha * b."""
        return self._map("add", [a, b], alpha=alpha)

    def add_scalar(self, a: Sequence[Tensor], s: Scalar) -> list[Tensor]:
        """a + s."""
        return self._map("add", [a], s)

    def mul(self, a: Sequence[Tensor], s: Scalar) -> list[Tensor]:
        """a * s (a Python number or a 0-d tensor)."""
        return self._map("mul", [a], s)

    def mul_list(self, a: Sequence[Tensor], b: Sequence[Tensor]) -> list[Tensor]:
        """a * b element-wise."""
        return self._map("mul", [a, b])

    def div(self, a: Sequence[Tensor], b: Sequence[Tensor]) -> list[Tensor]:
        """a / b element-wise."""
        return self._map("div", [a, b])

    def div_scalar(self, a: Sequence[Tensor], s: Scalar) -> list[Tensor]:
        """a / s."""
        return self._map("div", [a], s)

    def sqrt(self, a: Sequence[Tensor]) -> list[Tensor]:
        return self._map("sqrt", [a])

    def lerp(self, a: Sequence[Tensor], b: Sequence[Tensor], weight: float) -> list[Tensor]:
        """a + weight * (b - a)."""
        return self._map("lerp", [a, b], weight)

    def addcmul(
        self, a: Sequence[Tensor], b: Sequence[Tensor], c: Sequence[Tensor], value: float = 1.0
    ) -> list[Tensor]:
        """a + value * b * c."""
        return self._map("addcmul", [a, b, c], value=value)

    def addcdiv(
        self, a: Sequence[Tensor], b: Sequence[Tensor], c: Sequence[Tensor], value: float = 1.0
    ) -> list[Tensor]:
        """a + value * b / c."""
        return self._map("addcdiv", [a, b, c], value=value)

    def norms(self, a: Sequence[Tensor]) -> list[Tensor]:
        """The L2 norm of each tensor (0-d tensors; of the whole tensor for a DTensor)."""
        if _dtensor.any_dtensor(a):
            return _dtensor.norms(a)
        if self.foreach:
            return self._map("norm", [a])
        return [torch.linalg.vector_norm(t) for t in a]

    # in place ----------------------------------------------------------------------------------
    def add_(self, a: Sequence[Tensor], b: Sequence[Tensor], alpha: float = 1.0) -> None:
        self._map_("add", [a, b], alpha=alpha)

    def add_scalar_(self, a: Sequence[Tensor], s: Scalar) -> None:
        self._map_("add", [a], s)

    def mul_(self, a: Sequence[Tensor], s: Scalar) -> None:
        self._map_("mul", [a], s)

    def mul_list_(self, a: Sequence[Tensor], b: Sequence[Tensor]) -> None:
        self._map_("mul", [a, b])

    def div_(self, a: Sequence[Tensor], b: Sequence[Tensor]) -> None:
        self._map_("div", [a, b])

    def div_scalar_(self, a: Sequence[Tensor], s: Scalar) -> None:
        self._map_("div", [a], s)

    def sqrt_(self, a: Sequence[Tensor]) -> None:
        self._map_("sqrt", [a])

    def copy_(self, a: Sequence[Tensor], b: Sequence[Tensor]) -> None:
        """a <- b."""
        self._map_("copy", [a, b])

    def lerp_(self, a: Sequence[Tensor], b: Sequence[Tensor], weight: float) -> None:
        self._map_("lerp", [a, b], weight)

    def addcmul_(
        self, a: Sequence[Tensor], b: Sequence[Tensor], c: Sequence[Tensor], value: float = 1.0
    ) -> None:
        self._map_("addcmul", [a, b, c], value=value)

    def addcdiv_(
        self, a: Sequence[Tensor], b: Sequence[Tensor], c: Sequence[Tensor], value: float = 1.0
    ) -> None:
        self._map_("addcdiv", [a, b, c], value=value)


FOREACH = ListOps(foreach=True)
"""The ``torch._foreach_*`` backend: one call per op over all the leaves."""
LOOP = ListOps(foreach=False)
"""The per-leaf Python loop (the reference op order; the one used under ``torch.func``)."""


def backend(reference: bool = False) -> ListOps:
    """The per-leaf loop when asked for (the reference) or under a torch.func transform;
    the foreach backend otherwise."""
    return LOOP if reference or under_transform() else FOREACH


def _readable(t: Tensor) -> bool:
    """May this 0-d tensor be read as a Python number (eager, untransformed, no grad)?"""
    return not (torch.compiler.is_compiling() or under_transform() or t.requires_grad)


class Arith:
    """The :class:`ListOps` methods with one spelling for both modes: in place (writing
    into the first argument, which the caller must own) or out of place (new lists).

    Rules are written once as ``x = a.mul(x, s)``; ``inplace=True`` turns the same
    code into the allocation-free form that ``torch.optim`` uses.
    """

    def __init__(self, ops: ListOps, inplace: bool) -> None:
        self.ops = ops
        self.inplace = inplace

    def _do(self, name: str, first: list[Tensor], *args, **kwargs) -> list[Tensor]:
        if self.inplace:
            getattr(self.ops, name + "_")(first, *args, **kwargs)
            return first
        return getattr(self.ops, name)(first, *args, **kwargs)

    def add(self, a, b, alpha: float = 1.0):
        return self._do("add", a, b, alpha=alpha)

    def add_scalar(self, a, s):
        return self._do("add_scalar", a, s)

    def mul(self, a, s):
        return self._do("mul", a, s)

    def mul_list(self, a, b):
        return self._do("mul_list", a, b)

    def div(self, a, b):
        return self._do("div", a, b)

    def div_scalar(self, a, s):
        return self._do("div_scalar", a, s)

    def sqrt(self, a):
        return self._do("sqrt", a)

    def sqrt_into(self, scratch: list[Tensor], x: list[Tensor]) -> list[Tensor]:
        """``sqrt(x)``, leaving ``x`` as it is. In place it is written into ``scratch``, a
        donated list of the same shapes (the gradients, once the moments have them): a
        fresh 4-bytes-per-parameter buffer every step costs page faults on first touch
        (``torch.optim`` allocates one), which on a CPU can take longer than the sqrt."""
        fits = len(scratch) == len(x) and all(
            s.dtype == t.dtype and s.shape == t.shape and s.device == t.device
            for s, t in zip(scratch, x)
        )
        if not (self.inplace and fits):
            return self.ops.sqrt(x)
        self.ops.copy_(scratch, x)
        self.ops.sqrt_(scratch)
        return scratch

    def lerp(self, a, b, weight: float):
        return self._do("lerp", a, b, weight)

    def addcmul(self, a, b, c, value: float = 1.0):
        return self._do("addcmul", a, b, c, value=value)

    def addcdiv(self, a, b, c, value: float = 1.0):
        return self._do("addcdiv", a, b, c, value=value)

    def addcdiv_scaled(self, a, b, c, scale: Tensor):
        """``a + scale * b / c`` for a 0-d tensor ``scale``; ``c`` must be a temporary.

        Eagerly the scale is read as a Python number, as the originals pass it, so
        the rounding matches them; under ``torch.compile`` or a ``torch.func``
        transform it is folded into ``c`` instead (no graph break, last-bit
        differences only).
        """
        if not _readable(scale):
            return self.addcdiv(a, b, self.mul(c, 1.0 / scale))
        return self.addcdiv(a, b, c, value=float(scale))

    def add_scaled_self(self, a, scale: Tensor):
        """``a + scale * a`` (the originals' ``p.add_(-lr * wd, p)``), same rules as above."""
        if not _readable(scale):
            return self.mul(a, (1.0 + scale).to(a[0].dtype))
        return self.add(a, a, alpha=float(scale))
