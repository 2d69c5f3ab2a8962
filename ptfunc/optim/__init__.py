"""Functional optimizers (optax-style ``init``/``update`` pairs) and schedules.

Example:
    >>> import torch, ptfunc
    >>> params = {"w": torch.ones(3)}
    >>> opt = ptfunc.optim.adamw(lr=0.1, weight_decay=0.01)
    >>> state = opt.init(params)
    >>> grads = {"w": torch.tensor([1.0, -1.0, 0.0])}
    >>> updates, state = opt.update(grads, state, params)
    >>> params = ptfunc.optim.apply_updates(params, updates)
    >>> int(state.count), [round(x, 4) for x in params["w"].tolist()]
    (1, [0.8991, 1.0989, 0.999])
"""

from . import schedules
from .base import (
    EmptyState,
    GradientTransformation,
    apply_updates,
    chain,
    current_lr,
    identity,
    step,
)
from .rules import (
    AdamState,
    SGDState,
    adam,
    adamw,
    adamw_torch,
    bert_adam,
    no_decay_mask,
    openai_adam,
    sgd,
)
from .transforms import (
    add_decayed_weights,
    clip_by_global_norm,
    clip_by_norm_per_leaf,
    masked,
    scale,
    scale_by_adam,
    scale_by_schedule,
)

__all__ = [
    "GradientTransformation",
    "EmptyState",
    "identity",
    "chain",
    "apply_updates",
    "step",
    "current_lr",
    "schedules",
    "scale",
    "scale_by_schedule",
    "scale_by_adam",
    "add_decayed_weights",
    "clip_by_global_norm",
    "clip_by_norm_per_leaf",
    "masked",
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
