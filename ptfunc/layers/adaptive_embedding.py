"""Adaptive input embeddings (Baevski & Auli, 2019), the input layer of Transformer-XL.

The vocabulary is cut into clusters at ``cutoffs``: ids in ``[0, c_0)``,
``[c_0, c_1)``, ..., ``[c_last, n_token)``. With ``div_val > 1`` cluster ``i`` has
its own table of width ``d_embed // div_val**i`` and its own projection to
``d_proj``, so rare words cost fewer parameters. With ``div_val == 1`` there is
one table for the whole vocabulary (the cutoffs only matter to the output
softmax), projected only when ``d_proj != d_embed``. The output is scaled by
``sqrt(d_proj)``, as in the seed.

Params (names of pytorch-transformers 1.0's ``AdaptiveEmbedding``)::

    emb_layers: list of {"weight": (cluster_size_i, d_emb_i)}
    emb_projs:  list of (d_proj, d_emb_i) tensors (absent when there is none)

Every cluster is looked up for every id and the right one kept with
``torch.where``: shapes never depend on the values of the ids, so ``vmap`` and
``torch.compile(fullgraph=True)`` see a static graph (the seed gathers with
``nonzero``, whose output size is data-dependent).

Example:
    >>> import torch, ptfunc
    >>> p = init(ptfunc.random.key(0), 10, 8, 4, [4, 7], div_val=2)
    >>> [t["weight"].shape[1] for t in p["emb_layers"]]
    [8, 4, 2]
    >>> apply(p, torch.tensor([[0, 5, 9]])).shape
    torch.Size([1, 3, 4])
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..random import Key, split
from ..tree import Params
from .initializers import normal

__all__ = [
    "Initializer",
    "DEFAULT_WEIGHT_INIT",
    "DEFAULT_PROJ_INIT",
    "cluster_bounds",
    "cluster_dims",
    "init",
    "apply",
]

Initializer = Callable[[Key, tuple[int, ...]], Tensor]
"""``init(key, shape) -> tensor``: how a weight is drawn (injectable, Haiku-style)."""

DEFAULT_WEIGHT_INIT: Initializer = functools.partial(normal, std=0.02)
"""N(0, 0.02): the seed's ``init_std`` default for tables."""
DEFAULT_PROJ_INIT: Initializer = functools.partial(normal, std=0.01)
"""N(0, 0.01): the seed's ``proj_init_std`` default for projections."""


def cluster_bounds(n_token: int, cutoffs: Sequence[int]) -> list[tuple[int, int]]:
    """``[(start, end), ...]`` of each cluster: the shortlist, then one per cutoff.

    >>> cluster_bounds(10, [4, 7])
    [(0, 4), (4, 7), (7, 10)]
    """
    ends = [*cutoffs, n_token]
    starts = [0, *cutoffs]
    if any(e <= s for s, e in zip(starts, ends)):
        raise ValueError(
            f"cutoffs must increase strictly within (0, n_token={n_token}), got {list(cutoffs)}"
        )
    return list(zip(starts, ends))


def cluster_dims(d_embed: int, div_val: int, n_clusters: int) -> list[int]:
    """Embedding width of each cluster: ``d_embed // div_val**i`` (all ``d_embed`` when 1)."""
    dims = [d_embed // div_val**i for i in range(n_clusters)]
    if min(dims) < 1:
        raise ValueError(
            f"d_embed={d_embed} with div_val={div_val} leaves an empty cluster width {dims}"
        )
    return dims


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
    """Tables (and projections) for ``n_token`` ids, output width ``d_proj``.

    Args:
        key: random key.
        n_token: vocabulary size.
        d_embed: width of the first cluster's table.
        d_proj: output width (the model width).
        cutoffs: cluster boundaries, strictly increasing in ``(0, n_token)``.
        div_val: width divisor between consecutive clusters (1: one shared table).
        init_weight: initialiser of the tables.
        init_proj: initialiser of the projections.
    """
    bounds = cluster_bounds(n_token, cutoffs)
    if div_val == 1:
        k_emb, k_proj = split(key)
        params: Params = {"emb_layers": [{"weight": init_weight(k_emb, (n_token, d_embed))}]}
        if d_proj != d_embed:
            params["emb_projs"] = [init_proj(k_proj, (d_proj, d_embed))]
        return params
    dims = cluster_dims(d_embed, div_val, len(bounds))
    keys = split(key, 2 * len(bounds))
    return {
        "emb_layers": [
            {"weight": init_weight(keys[2 * i], (end - start, dims[i]))}
            for i, (start, end) in enumerate(bounds)
        ],
        "emb_projs": [init_proj(keys[2 * i + 1], (d_proj, d)) for i, d in enumerate(dims)],
    }


def apply(params: Params, ids: Tensor) -> Tensor:
    """ids (...) int64 in ``[0, n_token)`` -> embeddings (..., d_proj) in the tables' dtype.

    The cluster boundaries follow from the tables' row counts. Ids outside the
    vocabulary are not checked here (see ``embedding.check_ids``).
    """
    tables = [t["weight"] for t in params["emb_layers"]]
    projs: Sequence[Tensor | None] = params.get("emb_projs", [None] * len(tables))
    if len(tables) == 1:
        out = F.embedding(ids, tables[0])
        if projs[0] is not None:
            out = F.linear(out, projs[0])
    else:
        out = None
        start = 0
        for table, proj in zip(tables, projs, strict=True):
            end = start + table.shape[0]
            local = (ids - start).clamp(0, table.shape[0] - 1)
            emb = F.linear(F.embedding(local, table), proj)
            inside = ((ids >= start) & (ids < end))[..., None]
            out = emb if out is None else torch.where(inside, emb, out)
            start = end
    return out * (out.shape[-1] ** 0.5)
