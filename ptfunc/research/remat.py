"""Measure what activation checkpointing (``apply(..., remat=True)``) saves.

Two measurements, both of memory (never time), both usable on CPU:

- :func:`saved_tensor_bytes`: bytes autograd keeps for the backward pass of
  ``fn``'s result, counted by a ``torch.autograd.graph.saved_tensors_hooks``
  pack hook (each storage once). Plain autograd only: ``torch.func.grad``
  refuses saved-tensor hooks. Under ``remat=True`` the tensors saved *inside* a
  checkpointed layer go to the checkpoint's own hook (which keeps no data), so
  this counts what is saved outside the layers; the layer inputs that the
  checkpoints hold for recomputation are not counted (they are in
  :func:`peak_tensor_bytes`).
- :func:`peak_tensor_bytes`: the peak of the bytes of tensor storages created
  by ``fn`` and alive at once, over every op ``fn`` runs (forward, backward and
  recomputation): a ``TorchDispatchMode`` records each op's outputs and polls
  which storages are still alive after each op. This is the real peak of
  activation memory (inputs and params that exist before the call are not
  counted), works under ``torch.func`` transforms, and on any device.

Example:
    >>> import torch, ptfunc
    >>> from ptfunc.archs import bert
    >>> from ptfunc.research.remat import peak_tensor_bytes
    >>> c = bert.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=4,
    ...                     num_attention_heads=2, intermediate_size=32)
    >>> model = bert.BertModel(c)
    >>> params = model.init(ptfunc.random.key(0))
    >>> ids = torch.randint(0, 50, (2, 64))
    >>> def step(remat):
    ...     loss = lambda p: model.apply(p, ids, remat=remat).last_hidden_state.square().sum()
    ...     return torch.func.grad(loss)(params)
    >>> peak_tensor_bytes(step, True) < peak_tensor_bytes(step, False)
    True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode

from .. import tree

__all__ = ["saved_tensor_bytes", "peak_tensor_bytes", "PeakTracker"]


def saved_tensor_bytes(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
    """Bytes autograd saves for backward while ``fn(*args, **kwargs)`` runs (each storage once).

    Run ``fn`` as the forward pass only (no ``.backward()`` inside); plain autograd.

    Returns:
        The number of bytes of the distinct storages packed for backward.
    """
    seen: dict[int, int] = {}

    def pack(t: Tensor) -> Tensor:
        storage = t.untyped_storage()
        seen[storage.data_ptr() if storage.nbytes() else id(storage)] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(*args, **kwargs)
    return sum(seen.values())


class PeakTracker(TorchDispatchMode):
    """Dispatch mode tracking live bytes of the storages its ops create.

    Attributes:
        current: bytes of tracked storages alive after the last op.
        peak: the largest ``current`` seen.
    """

    def __init__(self) -> None:
        super().__init__()
        self._live: dict[int, tuple[StorageWeakRef, int]] = {}
        self.current = 0
        self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        out = func(*args, **(kwargs or {}))
        inputs = {_storage_ptr(t) for t in tree.leaves((args, kwargs)) if isinstance(t, Tensor)}
        for t in tree.leaves(out):
            # views and in-place results share an input's storage: nothing was allocated
            if isinstance(t, Tensor) and not t.is_meta and _storage_ptr(t) not in inputs:
                self._track(t)
        self._update()
        return out

    def _track(self, t: Tensor) -> None:
        storage = t.untyped_storage()
        ref = StorageWeakRef(storage)
        old = self._live.get(ref.cdata)
        if old is None or old[0].expired():
            self._live[ref.cdata] = (ref, storage.nbytes())

    def _update(self) -> None:
        for k in [k for k, (ref, _) in self._live.items() if ref.expired()]:
            del self._live[k]
        self.current = sum(n for _, n in self._live.values())
        self.peak = max(self.peak, self.current)


def _storage_ptr(t: Tensor) -> int:
    return 0 if t.is_meta else t.untyped_storage().data_ptr()


def peak_tensor_bytes(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
    """Peak bytes of tensor storages created by ``fn(*args, **kwargs)`` and alive at once.

    ``fn`` should run the whole step (forward and backward, e.g. ``torch.func.grad``
    or ``loss.backward()``). Storages that existed before the call are not counted.
    """
    with PeakTracker() as tracker:
        fn(*args, **kwargs)
    return tracker.peak
