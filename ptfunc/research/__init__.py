"""Research workflows over whole models: ensembles, per-example gradients, DP-SGD,
Hessian-vector products, fine-tuning a subset of the params, head importance and
activation-memory measurement.

Everything here is a pure function of params trees built on ``torch.func``
(``vmap``, ``grad``, ``jvp``) and ``ptfunc.optim``; it works for any ptfunc model.

=========================  ===================================================================
module                     what it gives
=========================  ===================================================================
``ensembles``              ``init_ensemble``, ``ensemble_apply``, ``init_stacked``,
                           ``ensemble_step``, ``member``, ``unstack``
``per_example``            ``per_example_grads``, ``per_example_grad_norms``, ``global_norms``
``dp``                     ``dp_aggregate`` (clip, sum, noise, mean), ``dp_sgd``
``hvp``                    ``hvp``, ``hessian_trace_estimate``
``freeze``                 ``trainable_mask``, ``partition``, ``combine``, ``with_frozen``,
                           ``freeze``
``bertology``              ``compute_head_stats`` (importance, entropy), ``mask_heads``,
                           ``prune_heads``, ``mask_heads_by_importance``,
                           ``plot_head_importance``
``remat``                  ``saved_tensor_bytes``, ``peak_tensor_bytes``, ``PeakTracker``
                           (measuring what ``apply(..., remat=True)`` saves)
=========================  ===================================================================

Example (per-example gradients of a tiny BERT classifier):
    >>> import torch, ptfunc
    >>> from ptfunc import research
    >>> from ptfunc.archs import bert
    >>> config = bert.BertConfig(vocab_size=30, hidden_size=8, num_hidden_layers=1,
    ...                          num_attention_heads=2, intermediate_size=16, num_labels=2)
    >>> model = bert.BertForSequenceClassification(config)
    >>> params = model.init(ptfunc.random.key(0))
    >>> ids, labels = torch.randint(1, 30, (4, 5)), torch.tensor([0, 1, 1, 0])
    >>> loss_fn = lambda p, batch: model.apply(p, batch[0], labels=batch[1]).loss
    >>> grads = research.per_example_grads(loss_fn, params, (ids, labels))
    >>> grads["classifier"]["weight"].shape
    torch.Size([4, 2, 8])
"""

from . import bertology, remat
from .bertology import compute_head_stats, mask_heads, mask_heads_by_importance
from .dp import DPState, clip_per_example, dp_aggregate, dp_sgd
from .ensembles import (
    ensemble_apply,
    ensemble_size,
    ensemble_step,
    init_ensemble,
    init_stacked,
    member,
    unstack,
)
from .freeze import combine, freeze, partition, trainable_mask, with_frozen
from .hvp import hessian_trace_estimate, hvp, rademacher_like
from .per_example import global_norms, per_example_grad_norms, per_example_grads

__all__ = [
    "bertology",
    "remat",
    "compute_head_stats",
    "mask_heads",
    "mask_heads_by_importance",
    "init_ensemble",
    "ensemble_apply",
    "ensemble_size",
    "init_stacked",
    "ensemble_step",
    "member",
    "unstack",
    "per_example_grads",
    "per_example_grad_norms",
    "global_norms",
    "DPState",
    "dp_aggregate",
    "dp_sgd",
    "clip_per_example",
    "hvp",
    "hessian_trace_estimate",
    "rademacher_like",
    "trainable_mask",
    "partition",
    "combine",
    "with_frozen",
    "freeze",
]
