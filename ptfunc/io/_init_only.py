"""Initialise only some params of a model, bit-identical to a full ``model.init(key)``.

A checkpoint that lacks a few params (a fresh classifier head) needs those few
initialised, not the whole model: a full init next to the loaded weights doubles the
memory of a load (more, with the draws' temporaries).

:func:`init_only` runs ``init`` twice under a dispatch mode:

1. every aten op on the meta device (no memory), recording which ops read and write
   which storages (views and in-place writes included), and numbering the ops that
   allocate a large new tensor (more than :data:`SMALL` bytes);
2. for real, except that a large allocation the wanted leaves do not depend on is made
   on the meta device, and every op fed by a meta tensor runs on meta too. Small
   tensors (random keys, LayerNorm vectors) are always computed.

An op computed for real in the second run sees the same inputs as in a full init, so
the wanted leaves come out bit-identical. If the runs disagree (the large allocations
differ, a real tensor would be written from a meta one, a wanted leaf ends on meta,
or an op fails on meta), the whole model is initialised instead: more memory, never
wrong values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode

from ..random import Key
from ..tree import to_flat_dict

__all__ = ["init_only", "SMALL"]

SMALL = 1 << 16
"""Tensors of at most this many bytes are always computed (keys, biases, norms)."""

_META = torch.device("meta")


class _Abort(Exception):
    """The second run does not follow the first; fall back to a full init."""


def _storage(t: Tensor) -> int:
    return t.untyped_storage()._cdata


def _to_meta(value: Any) -> Any:
    """``value`` with every tensor replaced by a meta tensor of its shape, strides, dtype.

    (Aten arguments and results are tensors, scalars and lists or tuples of them; a
    walk by hand is several times faster than ``torch.utils._pytree`` here.)
    """
    if isinstance(value, Tensor):
        if value.is_meta:
            return value
        return torch.empty_strided(value.shape, value.stride(), dtype=value.dtype, device=_META)
    if isinstance(value, (list, tuple)):
        return type(value)(_to_meta(v) for v in value)
    if isinstance(value, dict):
        return {k: _to_meta(v) for k, v in value.items()}
    return value


def _tensors(tree: Any, out: list[Tensor] | None = None) -> list[Tensor]:
    """The tensors in a tree of aten arguments or results."""
    out = [] if out is None else out
    if isinstance(tree, Tensor):
        out.append(tree)
    elif isinstance(tree, (list, tuple)):
        for v in tree:
            _tensors(v, out)
    elif isinstance(tree, dict):
        for v in tree.values():
            _tensors(v, out)
    return out


def _written(func: Any, args: Any) -> list[Tensor]:
    """The tensor arguments ``func`` writes to (in-place and ``out=`` ops)."""
    return [
        arg
        for schema, arg in zip(func._schema.arguments, args)
        if isinstance(arg, Tensor) and schema.alias_info is not None and schema.alias_info.is_write
    ]


def _large_allocation(func: Any, out: Any) -> tuple[Any, list[tuple[int, ...]]] | None:
    """``(func, shapes)`` when ``func`` returns new (non-aliasing) tensors over SMALL bytes."""
    if all(r.alias_info is not None for r in func._schema.returns):
        return None
    outs = _tensors(out)
    if sum(t.numel() * t.element_size() for t in outs) <= SMALL:
        return None
    return func, [tuple(t.shape) for t in outs]


class _Run(TorchDispatchMode):
    """``wanted=None``: the recording run; else the run that computes ``wanted``."""

    def __init__(self, wanted: set[int] | None = None, record: list[Any] | None = None) -> None:
        super().__init__()
        self.wanted = wanted
        self.allocations: list[Any] = [] if record is None else record  # (func, shapes)
        self.count = 0  # large allocations so far
        self.deps: list[frozenset[int]] = []  # op -> ops it reads from
        self.allocation_of: dict[int, int] = {}  # op -> its number among large allocations
        self.writers: dict[int, set[int]] = {}  # storage -> ops that made or wrote it
        # The storages stay alive so that their ids are not reused. (Keeping the tensors
        # themselves would make torch hand back detached aliases: other ops.)
        self.keep: list[Any] = []

    @staticmethod
    def _meta_call(func: Any, args: Any, kwargs: dict[str, Any]) -> Any:
        args, kwargs = _to_meta(args), _to_meta(kwargs)
        if any(a.name == "device" for a in func._schema.arguments):
            kwargs = {**kwargs, "device": _META}
        return func(*args, **kwargs)

    def _next_allocation(self, found: Any) -> int:
        number = self.count
        self.count += 1
        if self.wanted is None:
            self.allocations.append(found)
        elif number >= len(self.allocations) or self.allocations[number] != found:
            raise _Abort(f"large allocation {number} differs between the runs")
        return number

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        if self.wanted is None:
            return self._record(func, args, kwargs)
        inputs = _tensors((args, kwargs))
        if any(t.is_meta for t in inputs):
            if any(not t.is_meta for t in _written(func, args)):
                raise _Abort(f"{func} would write a computed tensor from a meta one")
            out = self._meta_call(func, args, kwargs)
            found = _large_allocation(func, out)
            if found is not None:
                self._next_allocation(found)
            return out
        if all(r.alias_info is not None for r in func._schema.returns):
            return func(*args, **kwargs)
        shadow = self._meta_call(func, args, kwargs)
        found = _large_allocation(func, shadow)
        if found is not None and self._next_allocation(found) not in self.wanted:
            return shadow
        return func(*args, **kwargs)

    def _record(self, func: Any, args: Any, kwargs: dict[str, Any]) -> Any:
        deps: set[int] = set()
        for t in _tensors((args, kwargs)):
            if t.is_meta:
                deps |= self.writers.get(_storage(t), set())
        out = self._meta_call(func, args, kwargs)
        op = len(self.deps)
        self.deps.append(frozenset(deps))
        found = _large_allocation(func, out)
        if found is not None:
            self.allocation_of[op] = self._next_allocation(found)
        for t in [*_tensors(out), *_written(func, args)]:
            if t.is_meta:
                self.writers.setdefault(_storage(t), set()).add(op)
                self.keep.append(t.untyped_storage())
        return out

    def wanted_for(self, leaves: Iterable[Tensor]) -> set[int]:
        """The large allocations the given (meta) leaves of the recorded run depend on."""
        todo = [op for t in leaves for op in self.writers.get(_storage(t), ())]
        seen: set[int] = set()
        while todo:
            op = todo.pop()
            if op not in seen:
                seen.add(op)
                todo.extend(self.deps[op])
        return {self.allocation_of[op] for op in seen if op in self.allocation_of}


def init_only(init: Callable[[Key], Any], key: Key, names: Iterable[str]) -> dict[str, Tensor]:
    """``{name: to_flat_dict(init(key))[name]}`` for ``names``, computing little else.

    Args:
        init: a pure init function of a key (``model.init``).
        key: the key a full init would get.
        names: dotted param names to initialise.

    Returns:
        The leaves, bit-identical to a full init's.
    """
    names = list(names)
    if not names:
        return {}
    try:
        recorder = _Run()
        with recorder:
            recorded = to_flat_dict(init(key))
        wanted = recorder.wanted_for(recorded[name] for name in names)
        del recorded
        runner = _Run(wanted, recorder.allocations)
        with runner:
            flat = to_flat_dict(init(key))
        out = {name: flat[name] for name in names}
        if runner.count != len(recorder.allocations) or any(t.is_meta for t in out.values()):
            raise _Abort("the second run left a wanted leaf on meta")
        return out
    except (_Abort, NotImplementedError, RuntimeError, TypeError, ValueError, KeyError,
            AttributeError):  # fmt: skip
        full = to_flat_dict(init(key))
        return {name: full[name] for name in names}
