"""torch's fused Adam kernels (``torch._fused_adamw_`` / ``torch._fused_adam_``) as a fast
path for the Adam-family rules: one pass over each tensor instead of a dozen foreach passes.

The AdamW kernel computes, per tensor (in its dtype, with ``t`` the step it is given)::

    m <- lerp(m, g, 1 - b1);  v <- b2 v + (1 - b2) g^2
    p <- p (1 - lr wd) - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)

and the Adam kernel the same with ``wd * p`` added to ``g`` first (L2). Every rule of
:mod:`ptfunc.optim.rules` is this algebra with other constants, which the rule states as a
:class:`KernelPlan`:

* no bias correction (BertAdam, ``correct_bias=False``): the step ``t = 1e30``, so both
  corrections are exactly 1;
* ``eps`` inside the bias correction (1.0's AdamW, OpenAIAdam:
  ``lr sqrt(bc2) / bc1 * m / (sqrt(v) + eps)``): ``eps / sqrt(bc2)`` for the kernel's eps;
* decay applied to the already-updated weights (1.0's ``p - lr wd p`` after the step):
  ``(p - u)(1 - lr wd) = p (1 - lr wd) - (1 - lr wd) u``, so the kernel's lr is
  ``lr (1 - lr wd)`` and its weight decay ``wd / (1 - lr wd)``;
* per-tensor gradient clipping (BertAdam, OpenAIAdam): the kernel's ``grad_scale``
  divides the gradient by ``1 / clip_coef`` (it writes the clipped gradient back).

The results equal the foreach path's to the last bits (the kernel rounds in another order);
the tests hold both to the originals' trajectories. The kernels run in eager mode only, on
dense float tensors whose moments have the params' dtype, outside ``torch.func``
transforms and when nothing needs a gradient; :func:`usable` says when, and the rules
fall back to the foreach path otherwise (vmap, torch.compile, differentiating a step).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from .._functorch import under_transform
from . import _dtensor

__all__ = ["KernelPlan", "KernelCall", "usable", "run", "fast_norms"]

NO_BIAS_CORRECTION_STEP = 1e30  # b ** 1e30 == 0.0 for every b < 1: corrections of exactly 1


class KernelCall(NamedTuple):
    """Constants of one kernel call: ``lr``, ``weight_decay``, ``eps`` and the step ``t``."""

    lr: float
    weight_decay: float
    eps: float
    step: float


class KernelPlan(NamedTuple):
    """How a rule runs on the kernel.

    ``decoupled``: the AdamW kernel (else Adam's, L2 decay added to the gradient).
    ``call(count, lr, decay) -> KernelCall | None``: the constants for the leaves with
    (``decay=True``) or without weight decay at step ``count`` (the incremented count,
    0-d int64) and learning rate ``lr`` (0-d float64); None when the rule's math cannot be
    expressed this step (then the foreach path runs). ``clip``: per-tensor max grad norm
    (<= 0: none). ``decays(leaf, masked) -> bool``: whether a leaf gets weight decay.
    """

    decoupled: bool
    b1: float
    b2: float
    call: Callable[[Tensor, Tensor, bool], KernelCall | None]
    clip: float = -1.0
    decays: Callable[[Tensor, bool], bool] = lambda leaf, masked: masked


def usable(*lists: Sequence[Tensor]) -> bool:
    """True when the fused kernel may run on these lists (params, grads, m, v): eager mode
    outside ``torch.func`` transforms, dense float tensors on the CPU or CUDA, the same
    dtype, device and shape across the lists, nothing that requires grad."""
    if torch.compiler.is_compiling() or under_transform():
        return False
    first = lists[0]
    if not first:
        return False
    kinds = [(x.dtype, x.device, x.shape, x.layout) for x in first]
    for dtype, device, layout in {(d, dev, lay) for d, dev, _, lay in kinds}:
        if not dtype.is_floating_point or device.type not in ("cpu", "cuda"):
            return False
        if layout != torch.strided:
            return False
    for xs in lists[1:]:
        if [(x.dtype, x.device, x.shape, x.layout) for x in xs] != kinds:
            return False
    return not (torch.is_grad_enabled() and any(x.requires_grad for xs in lists for x in xs))


def fast_norms(grads: list[Tensor]) -> list[float]:
    """Each tensor's L2 norm. float32 / float64 through BLAS dot products (a third faster
    than ``torch._foreach_norm`` on a CPU; the kernel path is held to the reference within
    rounding, not bitwise), other dtypes through ``torch._foreach_norm``."""
    if _dtensor.any_dtensor(grads):  # DTensors: whole-tensor norms (all-reduced)
        return torch.stack(_dtensor.norms(grads)).double().tolist()
    if all(g.dtype in (torch.float32, torch.float64) for g in grads):
        squares = torch.stack([torch.dot(g.reshape(-1), g.reshape(-1)) for g in grads])
        return squares.double().sqrt().tolist()
    return torch.stack(torch._foreach_norm(grads)).double().tolist()


def _clip_scales(grads: list[Tensor], max_norm: float) -> list[float]:
    """``1 / clip_coef`` per tensor, 1.0 for the unclipped (``clip_grad_norm_``'s rule)."""
    norms = fast_norms(grads)
    return [(n + 1e-6) / max_norm if max_norm / (n + 1e-6) < 1.0 else 1.0 for n in norms]


def run(
    plan: KernelPlan,
    p: list[Tensor],
    g: list[Tensor],
    m: list[Tensor],
    v: list[Tensor],
    count: Tensor,
    lr: Tensor,
    masked: list[bool],
    factor: Tensor | None = None,
) -> bool:
    """Update ``p``, ``m``, ``v`` in place (and ``g`` where scaled); False (nothing done)
    when the plan has no kernel constants for this step. ``factor`` (0-d): the grads are
    multiplied by it first (a global-norm clipping coefficient), through the kernel's
    ``grad_scale``."""
    norm_of = g  # per-tensor clipping needs whole-tensor norms (of the DTensors)
    if _dtensor.any_dtensor(p, g, m, v):  # the kernel on the local shards (aliases)
        p, g, m, v = (_dtensor.localize(x) for x in (p, g, m, v))
    decay = [plan.decays(x, k) for x, k in zip(p, masked)]
    calls = {flag: plan.call(count, lr, flag) for flag in set(decay)}
    if any(c is None for c in calls.values()):
        return False
    if factor is not None and plan.clip > 0:  # per-tensor norms of the scaled grads
        torch._foreach_mul_(g, factor)
        factor = None
    scales = _clip_scales(norm_of, plan.clip) if plan.clip > 0 else [1.0] * len(p)
    if factor is not None:
        inverse = float(1.0 / factor)
        scales = [inverse] * len(p)
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, x in enumerate(p):
        groups[(x.device, x.dtype, decay[i], scales[i])].append(i)
    kernel = torch._fused_adamw_ if plan.decoupled else torch._fused_adam_
    for (device, _, flag, scale), idx in groups.items():
        c = calls[flag]
        step = torch.tensor(c.step, dtype=torch.float32, device=device)
        grad_scale = None
        if scale != 1.0:
            grad_scale = torch.tensor(scale, dtype=torch.float32, device=device)
        kernel(
            [p[i] for i in idx], [g[i] for i in idx], [m[i] for i in idx],
            [v[i] for i in idx], [], [step] * len(idx),
            lr=c.lr, beta1=plan.b1, beta2=plan.b2, weight_decay=c.weight_decay, eps=c.eps,
            amsgrad=False, maximize=False, grad_scale=grad_scale,
        )  # fmt: skip
    return True
