"""Learning-rate schedules as pure functions of the step count.

A schedule maps a step count (a 0-d ``int64`` tensor, or an int) to a float64
multiplier tensor, built from torch ops only, so a compiled train step does not
recompile as the step changes.

Two families, each exact to its original:

* pytorch-transformers 1.0 (``LambdaLR`` multipliers, steps counted in
  updates): :func:`constant`, :func:`warmup_constant`, :func:`warmup_linear`,
  :func:`warmup_cosine`, :func:`warmup_cosine_with_hard_restarts`.
* pytorch-pretrained-bert 0.6.2 (used by ``bert_adam``/``openai_adam``;
  ``warmup`` is a *fraction* of ``t_total``, ``t_total < 0`` means no
  schedule): :func:`legacy` with names ``"warmup_linear"``, ``"warmup_cosine"``,
  ``"warmup_constant"``, ``"warmup_cosine_hard_restarts"``,
  ``"warmup_cosine_warmup_restarts"``, ``"none"``.

Example:
    >>> s = warmup_linear(warmup_steps=2, t_total=10)
    >>> [round(float(s(t)), 4) for t in range(1, 5)]
    [0.5, 1.0, 0.875, 0.75]
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

__all__ = [
    "Schedule",
    "constant",
    "warmup_constant",
    "warmup_linear",
    "warmup_cosine",
    "warmup_cosine_with_hard_restarts",
    "legacy",
    "LEGACY_SCHEDULES",
]

Schedule = Callable[[Tensor], Tensor]
"""A schedule: step count (0-d int64 tensor or int) -> lr multiplier (0-d float64 tensor)."""


def _step(count: Tensor | int) -> Tensor:
    return torch.as_tensor(count).to(torch.float64)


def _warmup(step: Tensor, warmup: float) -> Tensor:
    return step / max(1.0, float(warmup))


def constant() -> Schedule:
    """Multiplier 1 at every step (``ConstantLRSchedule``)."""
    return lambda count: torch.ones((), dtype=torch.float64) + 0 * _step(count)


def warmup_constant(warmup_steps: int) -> Schedule:
    """``step / warmup_steps`` during warmup, then 1 (``WarmupConstantSchedule``)."""
    _check_steps(warmup_steps=warmup_steps)

    def schedule(count: Tensor | int) -> Tensor:
        step = _step(count)
        return torch.where(step < warmup_steps, _warmup(step, warmup_steps), torch.ones_like(step))

    return schedule


def warmup_linear(warmup_steps: int, t_total: int) -> Schedule:
    """Linear warmup, then linear decay to 0 at ``t_total`` (``WarmupLinearSchedule``)."""
    _check_steps(warmup_steps=warmup_steps, t_total=t_total)

    def schedule(count: Tensor | int) -> Tensor:
        step = _step(count)
        decay = ((t_total - step) / max(1.0, float(t_total - warmup_steps))).clamp(min=0.0)
        return torch.where(step < warmup_steps, _warmup(step, warmup_steps), decay)

    return schedule


def _progress(step: Tensor, warmup_steps: int, t_total: int) -> Tensor:
    return (step - warmup_steps) / max(1.0, float(t_total - warmup_steps))


def warmup_cosine(warmup_steps: int, t_total: int, cycles: float = 0.5) -> Schedule:
    """Linear warmup, then cosine decay over ``cycles`` periods (``WarmupCosineSchedule``)."""
    _check_steps(warmup_steps=warmup_steps, t_total=t_total)

    def schedule(count: Tensor | int) -> Tensor:
        step = _step(count)
        progress = _progress(step, warmup_steps, t_total)
        cosine = (0.5 * (1.0 + torch.cos(math.pi * float(cycles) * 2.0 * progress))).clamp(min=0.0)
        return torch.where(step < warmup_steps, _warmup(step, warmup_steps), cosine)

    return schedule


def warmup_cosine_with_hard_restarts(
    warmup_steps: int, t_total: int, cycles: float = 1.0
) -> Schedule:
    """Linear warmup, then ``cycles`` cosine decays with hard restarts; 0 from ``t_total`` on."""
    _check_steps(warmup_steps=warmup_steps, t_total=t_total)

    def schedule(count: Tensor | int) -> Tensor:
        step = _step(count)
        progress = _progress(step, warmup_steps, t_total)
        cosine = 0.5 * (1.0 + torch.cos(math.pi * torch.remainder(float(cycles) * progress, 1.0)))
        after = torch.where(progress >= 1.0, torch.zeros_like(step), cosine.clamp(min=0.0))
        return torch.where(step < warmup_steps, _warmup(step, warmup_steps), after)

    return schedule


def _check_steps(**values: int) -> None:
    for name, v in values.items():
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise ValueError(f"{name} must be a non-negative int (a number of steps), got {v!r}")


# -- pytorch-pretrained-bert 0.6.2 -----------------------------------------------------------


def _legacy_warmup_linear(p: Tensor, w: float) -> Tensor:
    return torch.where(p < w, p / w if w else p, ((p - 1.0) / (w - 1.0)).clamp(min=0.0))


def _legacy_warmup_constant(p: Tensor, w: float) -> Tensor:
    return torch.where(p < w, p / w if w else p, torch.ones_like(p))


def _legacy_cosine(cycles: float) -> Callable[[Tensor, float], Tensor]:
    def f(p: Tensor, w: float) -> Tensor:
        after = (p - w) / (1.0 - w)
        return torch.where(
            p < w, p / w if w else p, 0.5 * (1.0 + torch.cos(math.pi * cycles * 2.0 * after))
        )

    return f


def _legacy_hard_restarts(cycles: float) -> Callable[[Tensor, float], Tensor]:
    def f(p: Tensor, w: float) -> Tensor:
        after = (p - w) / (1.0 - w)
        cosine = 0.5 * (1.0 + torch.cos(math.pi * torch.remainder(cycles * after, 1.0)))
        return torch.where(p < w, p / w if w else p, cosine)

    return f


def _legacy_warmup_restarts(cycles: float) -> Callable[[Tensor, float], Tensor]:
    def f(p: Tensor, w: float) -> Tensor:
        p = torch.remainder(p * cycles, 1.0)
        after = (p - w) / (1.0 - w)
        return torch.where(p < w, p / w if w else p, 0.5 * (1.0 + torch.cos(math.pi * after)))

    return f


LEGACY_SCHEDULES = (
    "none",
    "warmup_linear",
    "warmup_constant",
    "warmup_cosine",
    "warmup_cosine_hard_restarts",
    "warmup_cosine_warmup_restarts",
)
"""The schedule names :func:`legacy` takes (pytorch-pretrained-bert 0.6.2's ``SCHEDULES``)."""


def legacy(
    name: str | None = "warmup_linear",
    warmup: float = 0.002,
    t_total: int = -1,
    cycles: float | None = None,
) -> Schedule:
    """A schedule of pytorch-pretrained-bert 0.6.2, as a function of the step count.

    Args:
        name: one of :data:`LEGACY_SCHEDULES` (``None`` means ``"none"``).
        warmup: fraction of ``t_total`` spent warming up; -1 means none.
        t_total: planned number of updates; negative disables the schedule (multiplier 1).
        cycles: for the cosine schedules (defaults 0.5, 1, 1 as in 0.6.2).

    Past ``t_total`` the multipliers continue as 0.6.2 computes them (0 for
    warmup_linear, the cosine keeps turning).
    """
    name = "none" if name is None else name
    if name not in LEGACY_SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; expected one of {LEGACY_SCHEDULES}")
    if not (0.0 <= warmup < 1.0 or warmup == -1):
        raise ValueError(f"warmup must lie in [0, 1) or be -1, got {warmup}")
    if name == "warmup_cosine_warmup_restarts":
        c = 1.0 if cycles is None else cycles
        if warmup * c >= 1.0:
            raise ValueError(f"warmup * cycles must be < 1, got {warmup} * {c}")
        warmup = warmup * c if warmup >= 0 else warmup
    w = max(float(warmup), 0.0)
    shape = {
        "none": lambda p, w: torch.ones_like(p),
        "warmup_linear": _legacy_warmup_linear,
        "warmup_constant": _legacy_warmup_constant,
        "warmup_cosine": _legacy_cosine(0.5 if cycles is None else cycles),
        "warmup_cosine_hard_restarts": _legacy_hard_restarts(1.0 if cycles is None else cycles),
        "warmup_cosine_warmup_restarts": _legacy_warmup_restarts(1.0 if cycles is None else cycles),
    }[name]

    def schedule(count: Tensor | int) -> Tensor:
        step = _step(count)
        if t_total < 0:
            return torch.ones_like(step)
        return shape(step / float(t_total), w)

    return schedule
