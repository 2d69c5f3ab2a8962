"""Projected adaptive log-softmax (Grave et al., 2017), the output layer of Transformer-XL.

The head scores the shortlist (ids below ``cutoffs[0]``) plus one logit per
tail cluster; a tail token's log-probability is its cluster's head
log-probability plus its log-probability inside the cluster. Each cluster
first projects the hidden state (``d_proj``) to its own width with
``out_projs[i]`` (when there is one), as in the seed's
``ProjectedAdaptiveLogSoftmax``.

Params (names of pytorch-transformers 1.0)::

    cluster_weight (n_clusters, d_embed), cluster_bias (n_clusters,)   when cutoffs
    out_layers: list of {"weight": (size, d_i), "bias": (size,)}
                (one layer over the whole vocabulary when div_val == 1)
    out_projs:  list of (d_proj, d_i) tensors, one per cluster, or None where a
                cluster has no projection (absent when none has)

Tied models pass the embedding's tensors in these slots (see
``ptfunc.archs.transfo_xl``); the functions here take the resolved tree.

Every cluster is scored for every position (no data-dependent gathers), so the
functions work under ``vmap``, ``jvp`` and ``torch.compile(fullgraph=True)``.
Log-softmaxes run in float32 at least (``losses.upcast``).

Example:
    >>> import torch, ptfunc
    >>> p = init(ptfunc.random.key(0), 10, 8, 4, [4, 7], div_val=2)
    >>> lp = log_probs(p, torch.randn(2, 4), [4, 7])
    >>> lp.shape, torch.allclose(lp.exp().sum(-1), torch.ones(2))
    (torch.Size([2, 10]), True)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..random import Key, split
from ..tree import Params
from .adaptive_embedding import (
    DEFAULT_PROJ_INIT,
    DEFAULT_WEIGHT_INIT,
    Initializer,
    cluster_bounds,
    cluster_dims,
)
from .initializers import zeros
from .losses import upcast

__all__ = ["init", "log_probs", "nll"]


def init(
    key: Key,
    n_token: int,
    d_embed: int,
    d_proj: int,
    cutoffs: Sequence[int],
    *,
    div_val: int = 1,
    init_weight: Initializer = DEFAULT_WEIGHT_INIT,
    init_proj: Initializer = DEFAULT_PROJ_INIT,
) -> Params:
    """Untied params of the layer (biases zero, as in the seed).

    Args: as :func:`ptfunc.layers.adaptive_embedding.init` (same clusters and widths).
    """
    bounds = cluster_bounds(n_token, cutoffs)
    n = len(bounds)
    dims = cluster_dims(d_embed, div_val, n) if div_val != 1 else [d_embed] * n
    k_cluster, k_layers, k_projs = split(key, 3)
    params: Params = {}
    if n > 1:
        params["cluster_weight"] = init_weight(k_cluster, (n - 1, d_embed))
        params["cluster_bias"] = zeros((n - 1,))
    sizes = [n_token] if div_val == 1 else [end - start for start, end in bounds]
    layer_keys = split(k_layers, len(sizes))
    params["out_layers"] = [
        {"weight": init_weight(k, (size, d)), "bias": zeros((size,))}
        for k, size, d in zip(layer_keys, sizes, dims)
    ]
    if div_val != 1 or d_proj != d_embed:
        params["out_projs"] = [init_proj(k, (d_proj, d)) for k, d in zip(split(k_projs, n), dims)]
    return params


def _logits(hidden: Tensor, weight: Tensor, bias: Tensor, proj: Tensor | None) -> Tensor:
    if proj is not None:
        hidden = F.linear(hidden, proj.t())
    return F.linear(hidden, weight, bias)


def _clusters(params: Params, cutoffs: Sequence[int]):
    """Yield ``(start, end, weight, bias, proj)`` per cluster; the head's rows include
    the cluster logits."""
    layers = params["out_layers"]
    n_token = sum(layer["weight"].shape[0] for layer in layers)
    bounds = cluster_bounds(n_token, cutoffs)
    projs = params.get("out_projs") or [None] * len(bounds)
    for i, (start, end) in enumerate(bounds):
        if len(layers) == 1:
            weight = layers[0]["weight"][start:end]
            bias = layers[0]["bias"][start:end]
        else:
            weight, bias = layers[i]["weight"], layers[i]["bias"]
        if i == 0 and len(bounds) > 1:
            weight = torch.cat([weight, params["cluster_weight"]])
            bias = torch.cat([bias, params["cluster_bias"]])
        yield start, end, weight, bias, projs[i]


def log_probs(params: Params, hidden: Tensor, cutoffs: Sequence[int]) -> Tensor:
    """Log-probabilities of the whole vocabulary.

    Args:
        params: the resolved params tree (see the module docstring).
        hidden: (..., d_proj) floating.
        cutoffs: the cluster boundaries the params were built with.

    Returns:
        (..., n_token) log-probabilities, float32 for half-precision inputs,
        else ``hidden.dtype``.
    """
    pieces = []
    head_lp = None
    for i, (_, end, weight, bias, proj) in enumerate(_clusters(params, cutoffs)):
        lp = F.log_softmax(upcast(_logits(hidden, weight, bias, proj)), dim=-1)
        if i == 0:
            head_lp = lp
            pieces.append(lp[..., :end])
        else:
            cluster = cutoffs[0] + i - 1
            pieces.append(head_lp[..., cluster : cluster + 1] + lp)
    return torch.cat(pieces, dim=-1)


def nll(params: Params, hidden: Tensor, labels: Tensor, cutoffs: Sequence[int]) -> Tensor:
    """Negative log-likelihood of each label, in input order.

    Args:
        params, cutoffs: as :func:`log_probs`.
        hidden: (..., d_proj) floating.
        labels: (...) int64; negative labels are ignored (loss 0).

    Returns:
        (...) per-position NLL, float32 for half-precision inputs, else ``hidden.dtype``.
    """
    out = None
    head_lp = None
    for i, (start, end, weight, bias, proj) in enumerate(_clusters(params, cutoffs)):
        lp = F.log_softmax(upcast(_logits(hidden, weight, bias, proj)), dim=-1)
        target = (labels - start).clamp(0, end - start - 1)
        picked = lp.gather(-1, target[..., None])[..., 0]
        if i == 0:
            head_lp = lp
            out = torch.zeros_like(picked)
        else:
            picked = picked + head_lp[..., cutoffs[0] + i - 1]
        out = torch.where((labels >= start) & (labels < end), -picked, out)
    return out
