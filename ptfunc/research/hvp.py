"""Hessian-vector products over a params tree, and Hutchinson's estimate of the trace.

``hvp(loss_fn, params, vector, *args)`` is ``H v`` where ``H`` is the Hessian of
``loss_fn(params, *args)`` w.r.t. the whole params tree and ``v`` a tree like
``params``: forward-over-reverse, ``jvp(grad(loss_fn), (params,), (v,))``, which
costs about one gradient and never forms ``H``. ptfunc models switch their
attention to a differentiable path under ``jvp`` by themselves.

Example:
    >>> import torch, ptfunc
    >>> from ptfunc import research
    >>> def loss_fn(p):                       # 0.5 a^2 + a b + 2 b^2 -> H = [[1, 1], [1, 4]]
    ...     a, b = p["a"], p["b"]
    ...     return 0.5 * a**2 + a * b + 2 * b**2
    >>> params = {"a": torch.tensor(1.0), "b": torch.tensor(2.0)}
    >>> research.hvp(loss_fn, params, {"a": torch.tensor(1.0), "b": torch.tensor(0.0)})
    {'a': tensor(1.), 'b': tensor(1.)}
    >>> diag = lambda p: 0.5 * p["a"] ** 2 + 2 * p["b"] ** 2   # H = diag(1, 4): exact
    >>> key = ptfunc.random.key(0)
    >>> float(research.hessian_trace_estimate(diag, params, key=key, num_samples=2))
    5.0
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.func import grad, jvp

from .. import tree
from ..random import Key, bernoulli, fold_in
from ..tree import Params

__all__ = ["hvp", "hessian_trace_estimate", "rademacher_like"]


def hvp(loss_fn: Callable[..., Tensor], params: Params, vector: Params, *args: Any) -> Params:
    """``H v``: the Hessian of ``loss_fn(params, *args)`` times the tree ``vector``.

    Args:
        loss_fn: ``(params, *args) -> scalar``.
        params: float leaves; ``vector`` has the same structure, shapes and dtypes.
        args: further arguments, held fixed.

    Returns:
        a tree like ``params``.
    """
    return jvp(lambda p: grad(loss_fn)(p, *args), (params,), (vector,))[1]


def rademacher_like(key: Key, params: Params) -> Params:
    """A tree like ``params`` of independent +-1 entries (leaf ``i`` from ``fold_in(key, i)``)."""
    leaves, spec = tree.flatten(params)
    signs = [
        # drawn flat: ptfunc.random.bits cannot reshape to a 0-d shape
        bernoulli(fold_in(key, i).to(x.device), 0.5, (x.numel(),)).reshape(x.shape).to(x.dtype) * 2
        - 1
        for i, x in enumerate(leaves)
    ]
    return tree.unflatten(spec, signs)


def hessian_trace_estimate(
    loss_fn: Callable[..., Tensor],
    params: Params,
    *args: Any,
    key: Key,
    num_samples: int = 16,
) -> Tensor:
    """Hutchinson's estimate ``mean_s <v_s, H v_s>`` with Rademacher ``v_s`` of the Hessian trace.

    Unbiased; the variance falls as ``1 / num_samples``. Sample ``s`` uses
    ``rademacher_like(fold_in(key, s), params)``, so the estimate is reproducible.

    Returns:
        a 0-d float tensor.
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    total = torch.zeros((), dtype=torch.float64)
    for s in range(num_samples):
        v = rademacher_like(fold_in(key, s), params)
        hv = hvp(loss_fn, params, v, *args)
        total = total + sum(
            (a * b).sum().double().cpu() for a, b in zip(tree.leaves(v), tree.leaves(hv))
        )
    return total / num_samples
