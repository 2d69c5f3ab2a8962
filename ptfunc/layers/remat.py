"""Activation checkpointing ("remat") for one call: keep the inputs, recompute the rest.

``checkpoint(fn, *args, enabled=True)`` returns ``fn(*args)``; when a gradient
will be taken, the activations inside ``fn`` are not kept for the backward
pass but recomputed from ``args`` when it runs. Every architecture wraps each
of its layers with it under ``apply(..., remat=True)``, so memory held for the
backward pass grows with the number of layers times the layer *input* only,
instead of every attention matrix and feed-forward activation of every layer.

Rules for ``fn``:

- every tensor ``fn`` reads must come in through ``args`` (pytrees of tensors,
  ``None`` and Python scalars are fine); ``fn`` may close over static values
  only (a config, booleans, an activation function). A tensor captured by a
  closure would get no gradient on the recompute path used under
  ``torch.func.grad``.
- ``fn`` must be deterministic given ``args``. ptfunc's dropout draws its mask
  from an explicit key passed in ``args``, so the recomputed masks are the
  masks of the first pass (no RNG state to save and restore).
- the output is a pytree of tensors (``None`` leaves allowed).

Two mechanisms, chosen per call:

- plain autograd (``loss.backward()``, ``torch.autograd.grad``), eager or under
  ``torch.compile``: ``torch.utils.checkpoint.checkpoint(use_reentrant=False)``.
- inside any ``torch.func`` transform (``grad``, ``vjp``, ``jacrev``, ``vmap``,
  ``jvp``): ``grad``/``vjp`` refuse saved-tensor hooks, which non-reentrant
  checkpointing is built on ("torch.func.{grad, vjp, jacrev, hessian} don't yet
  support saved tensor hooks"); reentrant checkpointing is an old-style
  ``autograd.Function`` that they refuse too; and under ``vmap`` with a plain
  ``.backward()`` outside, non-reentrant checkpointing recomputes outside the
  vmap and fails. So a small ``autograd.Function`` of our own runs ``fn``
  without recording it, saves only its inputs, and in the backward pass
  recomputes ``fn`` under ``torch.func.vjp``. It has a vmap rule (generated)
  and a forward-mode rule, so ``vmap(grad(...))`` (per-example gradients),
  ``jvp(grad(...))`` and ``grad(grad(...))`` (Hessian-vector products) work.
  Second derivatives through it are taken through the recomputation, so they
  agree with the direct call to rounding (not bitwise).

With grad mode off and no transform active, ``fn`` is simply called.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint as _torch_checkpoint

from .. import tree
from .._functorch import under_transform

__all__ = ["checkpoint"]

T = TypeVar("T")


def checkpoint(fn: Callable[..., T], *args: Any, enabled: bool = True) -> T:
    """``fn(*args)``, recomputing its activations in the backward pass when ``enabled``.

    Args:
        fn: a pure function of ``args`` (see the module docstring).
        *args: pytrees of tensors, ``None`` or Python scalars.
        enabled: False calls ``fn(*args)`` directly (the ``remat=False`` path).

    Returns:
        ``fn(*args)``, bit for bit the value of the direct call; gradients equal
        those of the direct call (same ops in the same order, recomputed).

    Example:
        >>> import torch
        >>> w = torch.randn(3, 3, requires_grad=True)
        >>> y = checkpoint(lambda w, x: torch.tanh(x @ w), w, torch.ones(2, 3))
        >>> y.sum().backward()
        >>> w.grad.shape
        torch.Size([3, 3])
    """
    if not enabled:
        return fn(*args)
    if under_transform():
        return _functorch_checkpoint(fn, args)
    if torch.is_grad_enabled():
        return _torch_checkpoint(fn, *args, use_reentrant=False, preserve_rng_state=False)
    return fn(*args)


class _Spec:
    """Carries the output treespec out of ``_Remat.forward``.

    A plain object, not a list: ``autograd.Function.apply`` rebuilds pytree
    arguments under functorch, so a list would be copied and stay empty.
    """

    spec: Any = None


def _functorch_checkpoint(fn: Callable[..., T], args: tuple) -> T:
    leaves, in_spec = tree.flatten(args)
    tensors = [i for i, x in enumerate(leaves) if isinstance(x, Tensor)]

    def run(*ts: Tensor) -> tuple[Any, ...]:
        """fn over the tensor leaves, everything else fixed; flat tuple of outputs."""
        full = list(leaves)
        for i, t in zip(tensors, ts):
            full[i] = t
        out_leaves, out_spec = tree.flatten(fn(*tree.unflatten(in_spec, full)))
        box.spec = out_spec
        return tuple(out_leaves)

    box = _Spec()
    flat = _Remat.apply(run, len(tensors), *[leaves[i] for i in tensors])
    return tree.unflatten(box.spec, list(flat))


def _higher_order_wanted(tensors: tuple[Tensor, ...]) -> bool:
    """Whether the backward pass being run must itself be differentiable.

    True when grad mode is on in the backward pass and someone records it: a second
    ``torch.func`` grad/jvp level, or plain autograd (``create_graph=True``, or
    tensors that require grad beneath a single ``torch.func.grad``).
    """
    if not torch.is_grad_enabled():
        return False
    try:
        from torch._C._functorch import TransformType, get_unwrapped, is_functorch_wrapped_tensor
        from torch._functorch.pyfunctorch import retrieve_all_functorch_interpreters
    except ImportError:  # pragma: no cover - other torch layouts: keep the graph, to be safe
        return True
    kinds = (TransformType.Grad, TransformType.Jvp)
    levels = sum(i.key() in kinds for i in retrieve_all_functorch_interpreters())
    if levels != 1:
        return True  # 0: plain autograd with create_graph=True; 2+: nested transforms
    for t in tensors:
        while is_functorch_wrapped_tensor(t):
            t = get_unwrapped(t)
        if t.requires_grad:
            return True
    return False


def _differentiable(ts: tuple[Tensor, ...]) -> list[int]:
    return [i for i, t in enumerate(ts) if t.is_floating_point() or t.is_complex()]


def _restrict(run: Callable[..., tuple], ts: tuple[Tensor, ...], idx: list[int]) -> Callable:
    """``run`` as a function of the tensors at ``idx`` only (the others fixed)."""

    def g(*d: Tensor) -> tuple[Tensor, ...]:
        full = list(ts)
        for i, t in zip(idx, d):
            full[i] = t
        return run(*full)

    return g


class _Remat(torch.autograd.Function):
    """``run(*tensors)`` whose backward (and forward-mode) pass recomputes ``run``."""

    generate_vmap_rule = True

    @staticmethod
    def forward(run: Callable[..., tuple], n: int, *ts: Tensor) -> tuple[Tensor, ...]:
        return run(*ts)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: Any) -> None:
        ctx.run = inputs[0]
        ctx.save_for_backward(*inputs[2:])
        ctx.save_for_forward(*inputs[2:])

    @staticmethod
    def backward(ctx: Any, *cotangents: Tensor) -> tuple[Tensor | None, ...]:
        ts = ctx.saved_tensors
        idx = _differentiable(ts)
        # torch.func.grad always differentiates with create_graph=True; recording the
        # recomputation for a derivative nobody takes would keep every layer's
        # activations alive until the end of the backward pass, undoing remat.
        record = _higher_order_wanted(ts + tuple(cotangents))
        with torch.set_grad_enabled(record):
            _, vjp_fn = torch.func.vjp(_restrict(ctx.run, ts, idx), *[ts[i] for i in idx])
            grads = vjp_fn(tuple(cotangents))
        out: list[Tensor | None] = [None] * len(ts)
        for i, g in zip(idx, grads):
            out[i] = g
        return (None, None, *out)

    @staticmethod
    def jvp(ctx: Any, run_t: Any, n_t: Any, *tangents: Tensor | None) -> tuple[Tensor, ...]:
        ts = ctx.saved_tensors
        idx = [i for i in _differentiable(ts) if tangents[i] is not None]
        primals = tuple(ts[i] for i in idx)
        _, out_t = torch.func.jvp(
            _restrict(ctx.run, ts, idx), primals, tuple(tangents[i] for i in idx)
        )
        return out_t
