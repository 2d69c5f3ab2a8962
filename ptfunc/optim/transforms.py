"""Composable building blocks (optax-style): scale, schedules, Adam scaling, decay, clipping, masks.

Chain them to build a rule, e.g. an AdamW with global clipping and BERT's decay mask::

    opt = chain(
        clip_by_global_norm(1.0),
        scale_by_adam(b1=0.9, b2=0.999, eps=1e-8),
        masked(add_decayed_weights(0.01), no_decay_mask),
        scale_by_schedule(lambda count: -5e-5 * warmup_linear(100, 1000)(count)),
    )

Updates are returned out of place unless ``inplace=True`` donates the incoming
updates (and state buffers), as in :mod:`ptfunc.optim.base`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor

from .._functorch import under_transform
from ..tree import flatten, unflatten
from ..tree import map as tree_map
from .base import GradientTransformation, check_state, flatten_matching
from .kernels import fast_norms
from .lists import backend

__all__ = [
    "scale",
    "scale_by_schedule",
    "scale_by_adam",
    "add_decayed_weights",
    "clip_by_global_norm",
    "clip_by_norm_per_leaf",
    "masked",
    "ScaleByAdamState",
    "ScheduleState",
    "MaskedState",
]


class ScheduleState(NamedTuple):
    """count: updates done; lr: the last factor applied (read with ``current_lr``)."""

    count: Tensor
    lr: Tensor


class ScaleByAdamState(NamedTuple):
    """State of :func:`scale_by_adam`: the step count and the first and second moments
    ``mu``, ``nu`` (trees shaped as the params)."""

    count: Tensor
    mu: Any
    nu: Any


class MaskedState(NamedTuple):
    """State of :func:`masked`: the inner transformation's state, over the masked leaves."""

    inner: Any


def _stateless(
    fn: Callable[[list[Tensor], list[Tensor] | None, bool], list[Tensor]],
    needs_params: bool = False,
) -> GradientTransformation:
    def init(params: Any) -> tuple[()]:
        return ()

    def update(updates: Any, state: Any, params: Any = None, *, inplace: bool = False):
        leaves, spec = flatten(updates)
        p = None
        if needs_params:
            if params is None:
                raise ValueError("this transformation needs params")
            p = flatten_matching(params, updates, "params")
        return unflatten(spec, fn(leaves, p, inplace)), state

    return GradientTransformation(init, update)


def scale(step_size: float) -> GradientTransformation:
    """Multiply updates by a constant (use a negative one for descent)."""

    def fn(u, p, inplace):
        ops = backend()
        if inplace:
            ops.mul_(u, step_size)
            return u
        return ops.mul(u, step_size)

    return _stateless(fn)


def scale_by_schedule(schedule: Callable[[Tensor], Tensor]) -> GradientTransformation:
    """Multiply updates by ``schedule(count)`` (count = updates done before this one)."""

    def init(params: Any) -> ScheduleState:
        return ScheduleState(
            torch.zeros((), dtype=torch.int64), torch.zeros((), dtype=torch.float64)
        )

    def update(updates: Any, state: ScheduleState, params: Any = None, *, inplace: bool = False):
        check_state(state, ScheduleState, "scale_by_schedule")
        factor = torch.as_tensor(schedule(state.count), dtype=torch.float64)
        leaves, spec = flatten(updates)
        if leaves:
            f = factor.to(leaves[0].dtype)
            ops = backend()
            leaves = (ops.mul_(leaves, f) or leaves) if inplace else ops.mul(leaves, f)
        return unflatten(spec, leaves), ScheduleState(state.count + 1, factor)

    return GradientTransformation(init, update)


def scale_by_adam(
    b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, bias_correction: bool = True
) -> GradientTransformation:
    """Adam's direction ``m_hat / (sqrt(v_hat) + eps)`` (no learning rate, no sign)."""
    if not (0 <= b1 < 1 and 0 <= b2 < 1) or eps <= 0:
        raise ValueError(f"need 0 <= b1, b2 < 1 and eps > 0, got b1={b1}, b2={b2}, eps={eps}")

    def init(params: Any) -> ScaleByAdamState:
        zeros = tree_map(torch.zeros_like, params)
        return ScaleByAdamState(
            torch.zeros((), dtype=torch.int64), zeros, tree_map(torch.zeros_like, params)
        )

    def update(updates: Any, state: ScaleByAdamState, params: Any = None, *, inplace: bool = False):
        check_state(state, ScaleByAdamState, "scale_by_adam")
        g, spec = flatten(updates)
        m = flatten_matching(state.mu, updates, "scale_by_adam state.mu")
        v = flatten_matching(state.nu, updates, "scale_by_adam state.nu")
        ops = backend()
        if inplace:
            ops.lerp_(m, g, 1.0 - b1)
            ops.mul_(v, b2)
            ops.addcmul_(v, g, g, value=1.0 - b2)
        else:
            m = ops.lerp(m, g, 1.0 - b1)
            v = ops.addcmul(ops.mul(v, b2), g, g, value=1.0 - b2)
        count = state.count + 1
        m_hat, v_hat = m, v
        if bias_correction:
            t = count.to(torch.float64)
            m_hat = ops.mul(m, (1.0 / (1.0 - b1**t)).to(g[0].dtype)) if g else m
            v_hat = ops.mul(v, (1.0 / (1.0 - b2**t)).to(g[0].dtype)) if g else v
        u = ops.div(m_hat, ops.add_scalar(ops.sqrt(v_hat), eps))
        return unflatten(spec, u), ScaleByAdamState(count, unflatten(spec, m), unflatten(spec, v))

    return GradientTransformation(init, update)


def add_decayed_weights(weight_decay: float) -> GradientTransformation:
    """``updates + weight_decay * params`` (decoupled decay when chained before the lr)."""

    def fn(u, p, inplace):
        ops = backend()
        if inplace:
            ops.add_(u, p, alpha=weight_decay)
            return u
        return ops.add(u, p, alpha=weight_decay)

    return _stateless(fn, needs_params=True)


def clip_by_global_norm(max_norm: float) -> GradientTransformation:
    """Scale all updates by ``min(1, max_norm / (global_norm + 1e-6))``
    (``torch.nn.utils.clip_grad_norm_`` over the whole tree)."""
    if max_norm <= 0:
        raise ValueError(f"max_norm must be > 0, got {max_norm}")

    def coefficient(total: Tensor) -> Tensor:
        return (max_norm / (total + 1e-6)).clamp(max=1.0)

    def global_norm(u: list[Tensor]) -> Tensor:
        return torch.linalg.vector_norm(torch.stack(backend().norms(u)))

    def fn(u, p, inplace):
        if not u:
            return u
        ops = backend()
        coef = coefficient(global_norm(u))
        if inplace:
            ops.mul_(u, coef)
            return u
        return ops.mul(u, coef)

    def factor(updates: Any, state: Any, params: Any = None) -> tuple[Tensor, Any]:
        """The coefficient alone, for a chain's one-pass step; the norms through BLAS where
        the leaves allow it (``kernels.fast_norms``: a third faster on a CPU)."""
        leaves = flatten(updates)[0]
        if not leaves:
            return torch.ones(()), state
        if under_transform() or torch.compiler.is_compiling():
            return coefficient(global_norm(leaves)), state
        total = math.sqrt(sum(n * n for n in fast_norms(leaves)))
        return coefficient(torch.tensor(total, dtype=torch.float64)).float(), state

    return _stateless(fn)._replace(factor=factor)


def clip_by_norm_per_leaf(max_norm: float) -> GradientTransformation:
    """Clip each leaf to norm ``max_norm`` on its own (BertAdam's per-tensor clipping)."""
    if max_norm <= 0:
        raise ValueError(f"max_norm must be > 0, got {max_norm}")

    def fn(u, p, inplace):
        ops = backend()
        coefs = [(max_norm / (n + 1e-6)).clamp(max=1.0) for n in ops.norms(u)]
        if inplace:
            ops.mul_list_(u, coefs)
            return u
        return ops.mul_list(u, coefs)

    return _stateless(fn)


def masked(inner: GradientTransformation, mask: Any) -> GradientTransformation:
    """Apply ``inner`` to the leaves where ``mask`` is True; pass the others through.

    ``mask`` is a pytree of bools shaped like the params, or a function of the
    params returning one (e.g. ``no_decay_mask``). Masked-out leaves get no state.
    """

    def _flags(params: Any) -> list[bool]:
        tree = mask(params) if callable(mask) else mask
        return [bool(x) for x in flatten_matching(tree, params, "mask")]

    def _pick(tree: Any, flags: list[bool]) -> list[Any]:
        return [x for x, f in zip(flatten(tree)[0], flags) if f]

    def init(params: Any) -> MaskedState:
        return MaskedState(inner.init(_pick(params, _flags(params))))

    def update(updates: Any, state: MaskedState, params: Any = None, *, inplace: bool = False):
        check_state(state, MaskedState, "masked")
        if params is None and callable(mask):
            raise ValueError("masked with a mask function needs params")
        flags = _flags(params if params is not None else updates)
        leaves, spec = flatten(updates)
        sub = [x for x, f in zip(leaves, flags) if f]
        sub_params = None if params is None else _pick(params, flags)
        new_sub, inner_state = inner.update(sub, state.inner, sub_params, inplace=inplace)
        it = iter(new_sub)
        merged = [next(it) if f else x for x, f in zip(leaves, flags)]
        return unflatten(spec, merged), MaskedState(inner_state)

    return GradientTransformation(init, update)
