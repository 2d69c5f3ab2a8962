"""DP-SGD (Abadi et al., 2016) as an optax-style transformation over per-example gradients.

``dp_aggregate(l2_clip, noise_multiplier, key)`` takes the per-example gradients
(every leaf ``(B, *shape)``, from :func:`ptfunc.research.per_example_grads`) and
returns one gradient tree (leaves ``shape``):

1. clip each example's gradient, as a whole tree, to global L2 norm ``l2_clip``:
   ``g_i * (l2_clip / max(||g_i||, l2_clip))`` (= ``min(1, C / ||g_i||)``, and 1
   for a zero gradient);
2. sum over the examples;
3. add Gaussian noise ``N(0, (noise_multiplier * l2_clip)^2)`` to every entry,
   drawn with ``ptfunc.random`` from ``fold_in(key, count)`` (then ``fold_in`` by
   the leaf's index in the tree), so a run is reproducible from ``key`` alone and
   every step draws fresh noise;
4. divide by the batch size B.

Chain it before any rule: ``optim.chain(dp_aggregate(1.0, 1.1, key), optim.sgd(0.1))``
(:func:`dp_sgd` is that chain). The state (:class:`DPState`) holds the step count,
so a resumed run draws the same noise as an uninterrupted one.

Privacy accounting (the epsilon of a run) is not computed here.

Example:
    >>> import torch, ptfunc
    >>> from ptfunc import optim, research
    >>> params = {"w": torch.zeros(2)}
    >>> opt = research.dp_sgd(0.5, l2_clip=1.0, noise_multiplier=0.0, key=ptfunc.random.key(0))
    >>> state = opt.init(params)
    >>> per_example = {"w": torch.tensor([[3.0, 4.0], [0.3, 0.4]])}   # norms 5 and 0.5
    >>> params, state = optim.step(opt, per_example, state, params)
    >>> params["w"]                       # -0.5 * mean([0.6, 0.8], [0.3, 0.4])
    tensor([-0.2250, -0.3000])
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from ..optim import GradientTransformation, chain, sgd
from ..optim.base import check_state
from ..random import Key, fold_in, normal
from ..tree import flatten, unflatten

__all__ = ["DPState", "dp_aggregate", "dp_sgd", "clip_per_example"]


class DPState(NamedTuple):
    """count: aggregations done (0-d int64); the noise of step t comes from fold_in(key, t)."""

    count: Tensor


def clip_per_example(leaves: list[Tensor], l2_clip: float) -> tuple[list[Tensor], Tensor]:
    """Scale each example (row of every leaf ``(B, ...)``) to global norm <= ``l2_clip``.

    Returns:
        the clipped leaves and the per-example norms before clipping ``(B,)``.
    """
    sq = torch.stack([x.reshape(x.shape[0], -1).pow(2).sum(1) for x in leaves]).sum(0)
    norms = sq.sqrt()
    factor = l2_clip / torch.clamp(norms, min=l2_clip)
    clipped = [x * factor.to(x.dtype).reshape(-1, *([1] * (x.dim() - 1))) for x in leaves]
    return clipped, norms


def dp_aggregate(l2_clip: float, noise_multiplier: float, key: Key) -> GradientTransformation:
    """Clip per-example gradients, sum, add Gaussian noise, average (see the module doc).

    Args:
        l2_clip: C, the bound on each example's global gradient norm (> 0).
        noise_multiplier: sigma; the noise std is ``sigma * C`` on the sum (>= 0).
        key: ``ptfunc.random`` key; the noise is a pure function of (key, step, leaf).

    Returns:
        a ``GradientTransformation`` whose ``update`` maps per-example gradients
        (leaves ``(B, *shape)``) to averaged noisy gradients (leaves ``shape``).
    """
    if not l2_clip > 0:
        raise ValueError(f"l2_clip must be > 0, got {l2_clip}")
    if not noise_multiplier >= 0:
        raise ValueError(f"noise_multiplier must be >= 0, got {noise_multiplier}")
    std = noise_multiplier * l2_clip

    def init(params: Any) -> DPState:
        return DPState(torch.zeros((), dtype=torch.int64))

    def update(updates: Any, state: DPState, params: Any = None, *, inplace: bool = False):
        check_state(state, DPState, "dp_aggregate")
        leaves, spec = flatten(updates)
        if not leaves:
            return updates, DPState(state.count + 1)
        batch = {x.shape[0] if x.dim() else None for x in leaves}
        if len(batch) != 1 or None in batch:
            raise ValueError(
                "dp_aggregate expects per-example gradients (every leaf with the same leading "
                f"batch axis), got leading sizes {batch}"
            )
        b = batch.pop()
        clipped, _ = clip_per_example(leaves, l2_clip)
        step_key = fold_in(key, state.count)
        out = []
        for i, x in enumerate(clipped):
            total = x.sum(0)
            if std > 0:
                k = fold_in(step_key, i).to(x.device)
                noise = normal(k, (total.numel(),), dtype=x.dtype).reshape(total.shape)
                total = total + std * noise
            out.append(total / b)
        return unflatten(spec, out), DPState(state.count + 1)

    return GradientTransformation(init, update)


def dp_sgd(
    lr: Any,
    *,
    l2_clip: float,
    noise_multiplier: float,
    key: Key,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
) -> GradientTransformation:
    """DP-SGD: ``chain(dp_aggregate(l2_clip, noise_multiplier, key), optim.sgd(lr, ...))``.

    ``update``/``optim.step`` take per-example gradients; ``params`` as usual.
    """
    return chain(
        dp_aggregate(l2_clip, noise_multiplier, key),
        sgd(lr, momentum=momentum, weight_decay=weight_decay),
    )
