"""Tensor parallelism (Megatron-LM style) for the decoder LLMs, BERT and GPT-2.

Two parts:

* plans (:mod:`._tp_plan`): :class:`TPRule` / :class:`TPPlan` say which leaf is cut along
  which dim; :func:`plan_for` gives the plans of Llama, Mistral, Qwen2, Qwen3, GPT-NeoX,
  BERT and GPT-2; :func:`split_params` / :func:`merge_params` cut and rebuild trees;
* the runtime (:mod:`._tp_runtime`): :class:`TPMode` intercepts ``F.linear`` and
  ``F.embedding`` on registered local leaves and inserts the collectives, so the models run
  unchanged on local params; :func:`parallel` wraps an ``apply``;
  :func:`vocab_parallel_cross_entropy` scores vocab-sharded logits.

A step over a 2-D mesh (data x tensor)::

    mesh = init_device_mesh("cpu", (dp, tp), mesh_dim_names=("dp", "tp"))
    tp_group, dp_group = mesh.get_group("tp"), mesh.get_group("dp")
    plan = plan_for(model)
    local = split_params(params, plan, mesh.get_local_rank("tp"), tp)
    for p in tree.leaves(local): p.requires_grad_(True)
    loss = parallel(model.apply, plan, tp_group)(local, ids, labels=ids).loss
    grads = torch.autograd.grad(loss, tree.leaves(local))    # local pieces
    # then average the grads over dp_group (all_reduce / dp) and step any ptfunc optimizer

Limits: plain autograd only (``torch.func.grad``/``vmap`` over the mode are not supported);
``remat=True`` recomputes outside the mode unless the backward runs inside it; dropout on the
sharded activations (attention probabilities) draws masks of the local shape, so training
with dropout is not the one-process computation; ``head_mask`` raises ValueError (each rank
holds only its heads). With ``loss_parallel=True`` the heads' ``labels=`` losses are computed
vocab-parallel (their ``F.cross_entropy`` is intercepted), so they equal one process's.

Example (one process: a group of one, the collectives are no-ops):
    >>> import torch, ptfunc
    >>> from ptfunc.archs import llama
    >>> c = llama.LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32,
    ...                       num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2)
    >>> model = llama.LlamaForCausalLM(c)
    >>> params = model.init(ptfunc.random.key(0))
    >>> plan = plan_for(model)
    >>> local = split_params(params, plan, 0, 1)
    >>> ids = torch.tensor([[1, 2, 3]])
    >>> out = parallel(model.apply, plan)(local, ids)
    >>> torch.allclose(out.logits, model.apply(params, ids).logits)
    True
"""

from ._tp_plan import TPPlan, TPRule, merge_params, plan_for, split_params
from ._tp_runtime import (
    TPMode,
    copy_to_tp,
    current,
    gather_last,
    parallel,
    reduce_from_tp,
    vocab_parallel_cross_entropy,
)

__all__ = [
    "TPRule",
    "TPPlan",
    "plan_for",
    "split_params",
    "merge_params",
    "TPMode",
    "current",
    "parallel",
    "vocab_parallel_cross_entropy",
    "copy_to_tp",
    "reduce_from_tp",
    "gather_last",
]
