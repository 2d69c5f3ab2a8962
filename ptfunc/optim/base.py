"""The optax-style core: ``GradientTransformation(init, update)``, ``chain``, ``apply_updates``.

``state = opt.init(params)``; ``updates, state = opt.update(grads, state, params)``;
``params = apply_updates(params, updates)``. States are NamedTuples of tensors
(with a 0-d ``int64`` step count), so they save with ``ptfunc.io.save`` and
restore with ``ptfunc.io.load(path, like=opt.init(params))``.

``update(..., inplace=True)`` donates buffers: the state's tensors and the
grads are overwritten and must not be used again. That is how a training loop
gets ``torch.optim``'s speed; the default is purely functional, so a step can be
differentiated through (meta-learning).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import torch
from torch import Tensor

from ..tree import flatten, unflatten
from .lists import backend

__all__ = [
    "GradientTransformation",
    "EmptyState",
    "identity",
    "chain",
    "apply_updates",
    "step",
    "flatten_matching",
    "check_state",
    "current_lr",
]


class InitFn(Protocol):
    def __call__(self, params: Any) -> Any: ...


class UpdateFn(Protocol):
    def __call__(
        self, updates: Any, state: Any, params: Any = None, *, inplace: bool = False
    ) -> tuple[Any, Any]: ...


class GradientTransformation(NamedTuple):
    """A pair of pure functions: ``init(params) -> state`` and
    ``update(updates, state, params=None, *, inplace=False) -> (updates, state)``.

    Rules may also give ``fused(grads, state, params, *, inplace=False, grad_factor=None)
    -> (params, state)``, which writes the new params directly (what :func:`step` uses;
    ``grad_factor``, a 0-d tensor, multiplies the grads first, folded into the rule's
    kernel where it has one). A transformation that only multiplies every update by one
    factor may give ``factor(updates, state, params) -> (factor, state)``, so a
    :func:`chain` of it and a rule steps in one pass (gradient clipping by global norm)."""

    init: InitFn
    update: UpdateFn
    fused: Callable[..., tuple[Any, Any]] | None = None
    factor: Callable[..., tuple[Tensor, Any]] | None = None


class EmptyState(NamedTuple):
    """State of a stateless transformation."""


def identity() -> GradientTransformation:
    """Leaves updates unchanged."""

    def init(params: Any) -> EmptyState:
        return EmptyState()

    def update(updates: Any, state: Any, params: Any = None, *, inplace: bool = False):
        return updates, state

    return GradientTransformation(init, update)


def chain(*transforms: GradientTransformation) -> GradientTransformation:
    """Apply transformations in order; the state is the tuple of their states.

    When the last one is a rule with a direct step (``fused``), :func:`step` of the chain
    runs the others' ``update`` and then that step; a single scaling transformation
    before it (``clip_by_global_norm``) is folded into the rule's kernel as a gradient
    factor, so clipping costs one pass over the gradients (their norms)."""

    def init(params: Any) -> tuple[Any, ...]:
        return tuple(t.init(params) for t in transforms)

    def check(state: Any) -> None:
        if not isinstance(state, tuple) or len(state) != len(transforms):
            raise TypeError(
                f"chain of {len(transforms)} transformations got a state that is not a "
                f"{len(transforms)}-tuple; was it made by another optimizer?"
            )

    def update(updates: Any, state: Any, params: Any = None, *, inplace: bool = False):
        check(state)
        new_states = []
        for t, s in zip(transforms, state):
            updates, s = t.update(updates, s, params, inplace=inplace)
            new_states.append(s)
        return updates, tuple(new_states)

    def fused(grads: Any, state: Any, params: Any, *, inplace: bool = False):
        check(state)
        *first, last = transforms
        if len(first) == 1 and first[0].factor is not None:
            factor, s0 = first[0].factor(grads, state[0], params)
            params, s1 = last.fused(grads, state[1], params, inplace=inplace, grad_factor=factor)
            return params, (s0, s1)
        new_states = []
        for t, s in zip(first, state[:-1]):
            grads, s = t.update(grads, s, params, inplace=inplace)
            new_states.append(s)
        params, s = last.fused(grads, state[-1], params, inplace=inplace)
        return params, (*new_states, s)

    has_step = bool(transforms) and transforms[-1].fused is not None
    return GradientTransformation(init, update, fused if has_step else None)


def flatten_matching(tree: Any, like: Any, what: str) -> list[Tensor]:
    """Leaves of ``tree``, which must have the structure of ``like`` (clear error otherwise)."""
    leaves, spec = flatten(tree)
    like_spec = flatten(like)[1]
    if spec != like_spec:
        raise ValueError(
            f"{what} do not have the structure of the params: got {spec}, expected {like_spec}"
        )
    return leaves


def check_state(state: Any, expected: type, rule: str) -> None:
    """Refuse a state made by another optimizer (or restored into the wrong one)."""
    if type(state) is not expected:
        raise TypeError(
            f"{rule} expects its own state ({expected.__name__}), got {type(state).__name__}; "
            "restore a saved state with ptfunc.io.load(path, like=opt.init(params))"
        )


def apply_updates(params: Any, updates: Any, *, inplace: bool = False) -> Any:
    """``params + updates`` leaf by leaf.

    Functional by default (differentiable). ``inplace=True`` adds into the
    params' tensors with ``torch._foreach_add_`` under ``no_grad`` and returns them.
    """
    p_leaves, spec = flatten(params)
    u_leaves = flatten_matching(updates, params, "updates")
    ops = backend()
    if inplace:
        with torch.no_grad():
            ops.add_(p_leaves, u_leaves)
        return params
    return unflatten(spec, ops.add(p_leaves, u_leaves))


def step(
    opt: GradientTransformation, grads: Any, state: Any, params: Any, *, inplace: bool = False
) -> tuple[Any, Any]:
    """One optimizer step: ``(new params, new state)``.

    Equal to ``update`` then ``apply_updates``; rules with a fused form skip the
    intermediate updates tree. ``inplace=True`` overwrites params, grads and state
    buffers (``torch.optim``'s cost); the default is functional and differentiable.
    """
    if opt.fused is not None:
        return opt.fused(grads, state, params, inplace=inplace)
    updates, state = opt.update(grads, state, params, inplace=inplace)
    return apply_updates(params, updates, inplace=inplace), state


def current_lr(state: Any) -> Tensor | None:
    """The learning rate of the last update, found in a state (or chain of states)."""
    if hasattr(state, "lr") and isinstance(state.lr, Tensor):
        return state.lr
    if isinstance(state, tuple):
        for s in state:
            lr = current_lr(s)
            if lr is not None:
                return lr
    return None


ScheduleFn = Callable[[Tensor], Tensor]
