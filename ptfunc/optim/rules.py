"""Optimizer rules with the originals' exact math, as ``GradientTransformation``s.

=================  ===============================================================
rule               matches
=================  ===============================================================
``adamw``          pytorch-transformers 1.0 ``AdamW`` (eps 1e-6, ``correct_bias``;
                   decay applied to the already-updated weights)
``adamw_torch``    ``torch.optim.AdamW`` (decay first, eps outside the bias correction)
``adam``           ``torch.optim.Adam`` (L2 ``weight_decay`` added to the gradient)
``sgd``            ``torch.optim.SGD`` (momentum, dampening, nesterov, weight decay)
``bert_adam``      pytorch-pretrained-bert 0.6.2 ``BertAdam``
``openai_adam``    pytorch-pretrained-bert 0.6.2 ``OpenAIAdam``
=================  ===============================================================

Keyword arguments keep the originals' names. ``lr`` is a number or a schedule
(a function of the step count returning the learning rate); 1.0-style rules
also take ``schedule=`` (a multiplier from :mod:`ptfunc.optim.schedules`).
``mask`` (a pytree of bools shaped like the params, or a function of the
params returning one) selects the leaves that get weight decay, e.g.
``mask=ptfunc.optim.no_decay_mask`` for BERT's recipe.

Every rule is written once against :class:`~ptfunc.optim.lists.ListOps`, so the
``torch._foreach_*`` path and the per-leaf reference (``reference=True``) are the same
math. The Adam-family rules also state their math as a :class:`~ptfunc.optim.kernels.KernelPlan`
for torch's fused Adam kernels (one pass per tensor, ``AdamW(fused=True)``'s speed):
``fused=True`` runs the kernel in eager mode whenever it can
(:func:`ptfunc.optim.kernels.usable`; vmap, torch.compile and differentiating a step take
the foreach path). It is the default of ``adamw_torch`` and ``adam``, whose reference is
torch's own fused kernel. The 1.0 / 0.6.2 rules default to ``fused=False``: the kernel
rounds in another order (its ``lerp`` moment update, eps and decay folded into its
constants), so its trajectories leave the originals' by float32 rounding (about 1e-6
relative after tens of steps); the foreach path is their exact op order.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor

from ..tree import flatten, map_with_names, unflatten
from ..tree import map as tree_map
from . import kernels
from .base import GradientTransformation, check_state, flatten_matching
from .kernels import KernelCall, KernelPlan
from .lists import Arith, backend
from .schedules import Schedule, legacy

__all__ = [
    "AdamState",
    "SGDState",
    "adamw",
    "adamw_torch",
    "adam",
    "sgd",
    "bert_adam",
    "openai_adam",
    "no_decay_mask",
]

Mask = Any  # a pytree of bools like the params, or a function params -> such a tree


class AdamState(NamedTuple):
    """count: updates done (0-d int64); lr: learning rate of the last update (0-d float64);
    mu, nu: first and second moment trees."""

    count: Tensor
    lr: Tensor
    mu: Any
    nu: Any


class SGDState(NamedTuple):
    """count, lr as in :class:`AdamState`; momentum: buffer tree (zeros when unused)."""

    count: Tensor
    lr: Tensor
    momentum: Any


def no_decay_mask(params: Any, no_decay: tuple[str, ...] = ("bias", "LayerNorm.weight")) -> Any:
    """True for leaves whose dotted name contains none of ``no_decay`` (1.0 examples' recipe)."""
    return map_with_names(lambda name, _: not any(nd in name for nd in no_decay), params)


# -- shared pieces ---------------------------------------------------------------------------


def _check_hyper(
    lr: Any, b1: float, b2: float, eps: float, weight_decay: float, eps_name: str = "eps"
) -> None:
    if not callable(lr) and (not isinstance(lr, (int, float)) or lr < 0):
        raise ValueError(f"lr must be a non-negative number or a schedule, got {lr!r}")
    for name, b in (("b1", b1), ("b2", b2)):
        if not 0.0 <= b < 1.0:
            raise ValueError(f"{name} (beta) must lie in [0, 1), got {b}")
    if not eps > 0.0:
        raise ValueError(f"{eps_name} must be > 0, got {eps}")
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")


def _lr_fn(lr: float | Schedule, schedule: Schedule | None) -> Callable[[Tensor], Tensor]:
    """count -> learning rate (float64 0-d tensor)."""
    base = (
        lr if callable(lr) else (lambda count, lr=float(lr): torch.tensor(lr, dtype=torch.float64))
    )
    if schedule is None:
        return lambda count: torch.as_tensor(base(count), dtype=torch.float64)
    return lambda count: torch.as_tensor(base(count), dtype=torch.float64) * schedule(count)


def _mask_leaves(mask: Mask, params: Any, n: int) -> list[bool]:
    if mask is None:
        return [True] * n
    tree = mask(params) if callable(mask) else mask
    leaves = flatten_matching(tree, params, "weight-decay mask")
    return [bool(m) for m in leaves]


def _subset(items: list[Any], keep: list[bool]) -> list[Any]:
    return [x for x, k in zip(items, keep) if k]


def _zeros_like_tree(params: Any) -> Any:
    return tree_map(torch.zeros_like, params)


def _scalar(x: Tensor | float, like: Tensor) -> Tensor:
    """A 0-d scalar in the params' floating dtype (the originals multiply in that dtype)."""
    return torch.as_tensor(x, dtype=like.dtype, device=like.device)


def _per_leaf_clip(a: Arith, grads: list[Tensor], max_norm: float) -> list[Tensor]:
    """``clip_grad_norm_`` applied to each tensor on its own (BertAdam, OpenAIAdam)."""
    coefs = [(max_norm / (n + 1e-6)).clamp(max=1.0) for n in a.ops.norms(grads)]
    return a.mul_list(grads, coefs)


def _init_adam(params: Any) -> AdamState:
    return AdamState(
        count=torch.zeros((), dtype=torch.int64),
        lr=torch.zeros((), dtype=torch.float64),
        mu=_zeros_like_tree(params),
        nu=_zeros_like_tree(params),
    )


def _moments(
    a: Arith, g: list[Tensor], m: list[Tensor], v: list[Tensor], b1: float, b2: float, lerp: bool
) -> tuple[list[Tensor], list[Tensor]]:
    """m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g * g (each original's op order)."""
    m = a.lerp(m, g, 1.0 - b1) if lerp else a.add(a.mul(m, b1), g, alpha=1.0 - b1)
    v = a.addcmul(a.mul(v, b2), g, g, value=1.0 - b2)
    return m, v


def _decay_subset(
    a: Arith, new: list[Tensor], keep: list[bool], rate: Tensor, first: bool = False
) -> list[Tensor]:
    """``x - rate * x`` for the leaves selected by ``keep`` (the others unchanged).

    ``first``: the ``torch.optim`` form ``x * (1 - rate)``; otherwise the 0.6/1.0
    form ``x.add_(-rate, x)``.
    """
    chosen = [x for x, k in zip(new, keep) if k]
    if not chosen:
        return new
    if first:
        done = a.mul(chosen, (1.0 - rate).to(chosen[0].dtype))
    else:
        done = a.add_scaled_self(chosen, -rate)
    scaled = iter(done)
    return [next(scaled) if k else x for x, k in zip(new, keep)]


def _adam_family(
    name: str,
    step: Callable[..., tuple[list[Tensor], list[Tensor], list[Tensor]]],
    lr_at: Callable[[Tensor], Tensor],
    mask: Mask,
    reference: bool,
    lr_after_increment: bool = False,
    plan: KernelPlan | None = None,
) -> GradientTransformation:
    """Wrap a list-level step ``(arith, new_params, g, m, v, count, lr, decay) -> (new, m, v)``
    into ``update`` (returns updates) and ``step`` (returns new params); ``plan`` runs the
    same math on torch's fused kernel when it can (see :mod:`ptfunc.optim.kernels`)."""

    def on_kernel(p, g, m, v, count, lr, decay, inplace: bool, direct: bool, factor):
        """(new or updates, m, v) from the fused kernel, or None to take the foreach path."""
        if plan is None or reference or not kernels.usable(p, g, m, v):
            return None
        work = p if (direct and inplace) else [x.clone() for x in p]
        if not inplace:  # the kernel writes its inputs: copy what the caller keeps
            m, v = [x.clone() for x in m], [x.clone() for x in v]
            if factor is not None:
                g, factor = torch._foreach_mul(g, factor), None
            elif plan.clip > 0:
                g = [x.clone() for x in g]
        with torch.no_grad():
            if not kernels.run(plan, work, g, m, v, count, lr, decay, factor):
                return None
            if not direct:  # the update is new - p, written over our copy
                torch._foreach_sub_(work, p)
        return work, m, v

    def run(grads: Any, state: AdamState, params: Any, inplace: bool, direct: bool, factor=None):
        check_state(state, AdamState, name)
        if params is None:
            raise ValueError(f"{name}.update needs params (for weight decay and the update)")
        p, spec = flatten(params)
        g = flatten_matching(grads, params, "grads")
        m = flatten_matching(state.mu, params, f"{name} state.mu")
        v = flatten_matching(state.nu, params, f"{name} state.nu")
        count = state.count + 1
        lr = lr_at(count if lr_after_increment else state.count)
        decay = _mask_leaves(mask, params, len(p))
        done = on_kernel(p, g, m, v, count, lr, decay, inplace, direct, factor)
        if done is not None:
            new, m, v = done
        else:
            ops = backend(reference)
            a = Arith(ops, inplace)
            if factor is not None:  # the grads are ours to scale when donated
                g = a.mul(g, factor.to(g[0].dtype)) if g else g
            start = p if (direct or not inplace) else ops.mul(p, 1.0)  # a private copy to mutate
            new, m, v = step(a, start, g, m, v, count, lr, decay)
            if not direct:  # the update is new - p, written over ``new`` when it is ours
                new = a.add(new, p, alpha=-1.0)
        state = AdamState(count, lr, unflatten(spec, m), unflatten(spec, v))
        return unflatten(spec, new), state

    def update(grads: Any, state: AdamState, params: Any = None, *, inplace: bool = False):
        return run(grads, state, params, inplace, direct=False)

    def fused_step(
        grads: Any,
        state: AdamState,
        params: Any,
        *,
        inplace: bool = False,
        grad_factor: Tensor | None = None,
    ):
        return run(grads, state, params, inplace, direct=True, factor=grad_factor)

    return GradientTransformation(_init_adam, update, fused_step)


def _eps_inside_plan(
    b1: float, b2: float, eps: float, weight_decay: float, correct_bias: bool, **kw: Any
) -> KernelPlan:
    """1.0's AdamW and OpenAIAdam on the AdamW kernel: ``eps`` added to ``sqrt(v)`` before
    the bias correction, decay applied to the updated weights (module docstring of
    :mod:`ptfunc.optim.kernels`)."""

    def call(count: Tensor, lr: Tensor, decay: bool) -> KernelCall | None:
        lr_f, t = float(lr), float(count)
        if correct_bias:
            eps_k, step = eps / math.sqrt(1.0 - b2**t), t
        else:
            eps_k, step = eps, kernels.NO_BIAS_CORRECTION_STEP
        if not (decay and weight_decay > 0.0):
            return KernelCall(lr_f, 0.0, eps_k, step)
        keep = 1.0 - lr_f * weight_decay
        if keep <= 0.0:
            return None
        return KernelCall(lr_f * keep, weight_decay / keep, eps_k, step)

    return KernelPlan(True, b1, b2, call, **kw)


# -- the rules -------------------------------------------------------------------------------


def adamw(
    lr: float | Schedule = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-6,
    weight_decay: float = 0.0,
    correct_bias: bool = True,
    *,
    schedule: Schedule | None = None,
    mask: Mask = None,
    reference: bool = False,
    fused: bool = False,
) -> GradientTransformation:
    """pytorch-transformers 1.0 ``AdamW``.

    Per step ``t``: moments; ``p -= lr_t * sqrt(1-b2^t)/(1-b1^t) * m / (sqrt(v) + eps)``
    (no bias factor when ``correct_bias=False``); then ``p -= lr_t * weight_decay * p``
    on the updated weights. ``lr_t = lr * schedule(t - 1)`` as ``LambdaLR`` steps it.
    ``fused=True``: torch's fused AdamW kernel with constants giving this math (1.0's
    trajectory up to float32 rounding; see the module docstring).
    """
    b1, b2 = betas
    _check_hyper(lr, b1, b2, eps, weight_decay)
    lr_at = _lr_fn(lr, schedule)

    def step(a, new, g, m, v, count, lr_t, decay):
        m, v = _moments(a, g, m, v, b1, b2, lerp=False)
        step_size = lr_t
        if correct_bias:
            t = count.to(torch.float64)
            step_size = lr_t * torch.sqrt(1.0 - b2**t) / (1.0 - b1**t)
        denom = a.add_scalar(a.sqrt_into(g, v), eps)  # g is no longer needed
        new = a.addcdiv_scaled(new, m, denom, -step_size)
        if weight_decay > 0.0:
            new = _decay_subset(a, new, decay, lr_t * weight_decay)
        return new, m, v

    plan = _eps_inside_plan(b1, b2, eps, weight_decay, correct_bias) if fused else None
    return _adam_family("adamw", step, lr_at, mask, reference, plan=plan)


def adamw_torch(
    lr: float | Schedule = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 1e-2,
    *,
    schedule: Schedule | None = None,
    mask: Mask = None,
    reference: bool = False,
    fused: bool = True,
) -> GradientTransformation:
    """``torch.optim.AdamW``: ``p *= 1 - lr*wd`` first, then the bias-corrected Adam step
    with ``eps`` added to ``sqrt(v_hat)``. ``fused`` (default): torch's fused kernel, as
    ``AdamW(fused=True)``, in eager mode where it can run; else the foreach path."""
    return _torch_adam(
        "adamw_torch", lr, betas, eps, weight_decay, True, schedule, mask, reference, fused
    )


def adam(
    lr: float | Schedule = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    *,
    schedule: Schedule | None = None,
    mask: Mask = None,
    reference: bool = False,
    fused: bool = True,
) -> GradientTransformation:
    """``torch.optim.Adam``: L2 ``weight_decay * p`` added to the gradient. ``fused``
    (default): torch's fused kernel, as ``Adam(fused=True)``, where it can run."""
    return _torch_adam(
        "adam", lr, betas, eps, weight_decay, False, schedule, mask, reference, fused
    )


def _torch_adam(name, lr, betas, eps, weight_decay, decoupled, schedule, mask, reference, fused):
    b1, b2 = betas
    _check_hyper(lr, b1, b2, eps, weight_decay)
    lr_at = _lr_fn(lr, schedule)

    def step(a, new, g, m, v, count, lr_t, decay):
        if weight_decay > 0.0 and decoupled:
            new = _decay_subset(a, new, decay, lr_t * weight_decay, first=True)
        elif weight_decay > 0.0:
            g = [gi + weight_decay * pi if k else gi for gi, pi, k in zip(g, new, decay)]
        m, v = _moments(a, g, m, v, b1, b2, lerp=True)
        t = count.to(torch.float64)
        bc1 = 1.0 - b1**t
        bc2_sqrt = torch.sqrt(1.0 - b2**t)
        denom = a.add_scalar(a.div_scalar(a.sqrt_into(g, v), _scalar(bc2_sqrt, new[0])), eps)
        return a.addcdiv_scaled(new, m, denom, -lr_t / bc1), m, v

    def call(count: Tensor, lr: Tensor, decay: bool) -> KernelCall:
        return KernelCall(float(lr), weight_decay if decay else 0.0, eps, float(count))

    plan = KernelPlan(decoupled, b1, b2, call) if fused else None
    return _adam_family(name, step, lr_at, mask, reference, plan=plan)


def _legacy_setup(lr, schedule, warmup, t_total, b1, b2, e, weight_decay):
    """Checks and the lr function shared by the 0.6.2 rules (schedule names or functions)."""
    _check_hyper(lr, b1, b2, e, weight_decay, eps_name="e")
    sched = schedule if callable(schedule) else legacy(schedule, warmup, t_total)
    return _lr_fn(lr, sched)


def _clipped_moments(a, g, m, v, b1, b2, max_grad_norm):
    """0.6.2's per-tensor ``clip_grad_norm_`` (when ``max_grad_norm > 0``), then moments."""
    if max_grad_norm > 0:
        g = _per_leaf_clip(a, g, max_grad_norm)
    return _moments(a, g, m, v, b1, b2, lerp=False)


def bert_adam(
    lr: float | Schedule,
    warmup: float = -1,
    t_total: int = -1,
    schedule: str | Schedule | None = "warmup_linear",
    b1: float = 0.9,
    b2: float = 0.999,
    e: float = 1e-6,
    weight_decay: float = 0.01,
    max_grad_norm: float = 1.0,
    *,
    mask: Mask = None,
    reference: bool = False,
    fused: bool = False,
) -> GradientTransformation:
    """pytorch-pretrained-bert 0.6.2 ``BertAdam``.

    Per tensor: ``clip_grad_norm_(g, max_grad_norm)``; moments; no bias correction;
    ``update = m / (sqrt(v) + e) + weight_decay * p``; ``p -= lr * schedule(step) * update``
    with the schedule read *before* the step count increments (so warmup starts at 0).
    ``schedule`` is a 0.6.2 name (``warmup``/``t_total`` as fractions/steps) or a
    schedule function. ``fused=True``: torch's AdamW kernel without bias correction, the
    clipping through its ``grad_scale`` (0.6.2's trajectory up to float32 rounding).
    """
    lr_at = _legacy_setup(lr, schedule, warmup, t_total, b1, b2, e, weight_decay)

    def step(a, new, g, m, v, count, lr_t, decay):
        m, v = _clipped_moments(a, g, m, v, b1, b2, max_grad_norm)
        upd = a.ops.div(m, a.add_scalar(a.ops.sqrt(v), e))  # a fresh buffer either way
        if weight_decay > 0.0:
            chosen = [i for i, k in enumerate(decay) if k]
            dec = a.add([upd[i] for i in chosen], [new[i] for i in chosen], alpha=weight_decay)
            for j, i in enumerate(chosen):
                upd[i] = dec[j]
        return a.add(new, a.mul(upd, _scalar(-lr_t, new[0]))), m, v

    # p - lr (m / (sqrt(v) + e) + wd p) is the AdamW kernel without bias correction.
    def call(count: Tensor, lr: Tensor, decay: bool) -> KernelCall:
        wd = weight_decay if decay else 0.0
        return KernelCall(float(lr), wd, e, kernels.NO_BIAS_CORRECTION_STEP)

    plan = KernelPlan(True, b1, b2, call, clip=max_grad_norm) if fused else None
    return _adam_family("bert_adam", step, lr_at, mask, reference, plan=plan)


def openai_adam(
    lr: float | Schedule,
    schedule: str | Schedule | None = "warmup_linear",
    warmup: float = -1,
    t_total: int = -1,
    b1: float = 0.9,
    b2: float = 0.999,
    e: float = 1e-8,
    weight_decay: float = 0.0,
    vector_l2: bool = False,
    max_grad_norm: float = -1,
    *,
    mask: Mask = None,
    reference: bool = False,
    fused: bool = False,
) -> GradientTransformation:
    """pytorch-pretrained-bert 0.6.2 ``OpenAIAdam``.

    The step count increments first; per-tensor clipping; bias-corrected Adam
    (``step = lr_t * sqrt(1-b2^t)/(1-b1^t)``, ``eps`` outside); then
    ``p -= lr_t * weight_decay * p`` on the updated weights, only for tensors of
    rank > 1 unless ``vector_l2``. ``fused=True``: torch's AdamW kernel (0.6.2's trajectory
    up to float32 rounding).
    """
    lr_at = _legacy_setup(lr, schedule, warmup, t_total, b1, b2, e, weight_decay)

    def step(a, new, g, m, v, count, lr_t, decay):
        m, v = _clipped_moments(a, g, m, v, b1, b2, max_grad_norm)
        t = count.to(torch.float64)
        step_size = lr_t * torch.sqrt(1.0 - b2**t) / (1.0 - b1**t)
        denom = a.add_scalar(a.sqrt_into(g, v), e)  # g is no longer needed
        new = a.addcdiv_scaled(new, m, denom, -step_size)
        if weight_decay > 0:
            keep = [k and (x.dim() > 1 or vector_l2) for x, k in zip(new, decay)]
            new = _decay_subset(a, new, keep, lr_t * weight_decay)
        return new, m, v

    plan = None
    if fused:
        plan = _eps_inside_plan(
            b1, b2, e, weight_decay, True, clip=max_grad_norm,
            decays=lambda leaf, masked: masked and (leaf.dim() > 1 or vector_l2),
        )  # fmt: skip
    return _adam_family(
        "openai_adam", step, lr_at, mask, reference, lr_after_increment=True, plan=plan
    )


def sgd(
    lr: float | Schedule = 1e-3,
    momentum: float = 0.0,
    dampening: float = 0.0,
    weight_decay: float = 0.0,
    nesterov: bool = False,
    *,
    schedule: Schedule | None = None,
    mask: Mask = None,
    reference: bool = False,
) -> GradientTransformation:
    """``torch.optim.SGD`` (the first step fills the momentum buffer with the gradient)."""
    if not callable(lr) and (not isinstance(lr, (int, float)) or lr < 0):
        raise ValueError(f"lr must be a non-negative number or a schedule, got {lr!r}")
    if momentum < 0 or weight_decay < 0 or not 0.0 <= dampening <= 1.0:
        raise ValueError("momentum and weight_decay must be >= 0 and dampening in [0, 1]")
    if nesterov and (momentum <= 0 or dampening != 0):
        raise ValueError("nesterov needs momentum > 0 and dampening == 0")
    lr_at = _lr_fn(lr, schedule)

    def init(params: Any) -> SGDState:
        return SGDState(
            torch.zeros((), dtype=torch.int64),
            torch.zeros((), dtype=torch.float64),
            _zeros_like_tree(params),
        )

    def update(grads: Any, state: SGDState, params: Any = None, *, inplace: bool = False):
        check_state(state, SGDState, "sgd")
        if params is None:
            raise ValueError("sgd.update needs params")
        p, spec = flatten(params)
        g = flatten_matching(grads, params, "grads")
        buf = flatten_matching(state.momentum, params, "sgd state.momentum")
        ops = backend(reference)
        lr_t = lr_at(state.count)
        if weight_decay > 0:
            decay = _mask_leaves(mask, params, len(p))
            g = [gi + weight_decay * pi if k else gi for gi, pi, k in zip(g, p, decay)]
        if momentum > 0:
            first = state.count == 0
            coef = torch.where(first, 1.0, 1.0 - dampening).to(p[0].dtype)
            buf = ops.add(ops.mul(buf, momentum), ops.mul(g, coef))
            g = ops.add(g, buf, alpha=momentum) if nesterov else buf
        u = ops.mul(g, _scalar(-lr_t, p[0]))
        new_state = SGDState(state.count + 1, lr_t, unflatten(spec, buf))
        return unflatten(spec, u), new_state

    return GradientTransformation(init, update)
