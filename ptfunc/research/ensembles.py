"""Ensembles: N models as one params tree with a leading member axis, run by ``vmap``.

``init_ensemble`` stacks N independently initialised members (``stacked["w"]`` has
shape ``(N, *w.shape)``); ``ensemble_apply`` evaluates all members in one
``torch.func.vmap``; ``ensemble_step`` takes one training step of every member
(``vmap`` of ``grad`` and the optimizer update, with the optimizer state stacked
the same way by ``init_stacked``); ``member`` and ``unstack`` give members back
as ordinary params trees.

Example:
    >>> import torch, ptfunc
    >>> from ptfunc import optim, research
    >>> def init(key):
    ...     return {"w": ptfunc.random.normal(key, (3,)), "b": torch.zeros(())}
    >>> def loss_fn(p, x, y):
    ...     return ((x @ p["w"] + p["b"] - y) ** 2).mean()
    >>> stacked = research.init_ensemble(init, 4, key=ptfunc.random.key(0))
    >>> stacked["w"].shape
    torch.Size([4, 3])
    >>> x, y = torch.ones(5, 3), torch.zeros(5)
    >>> research.ensemble_apply(loss_fn, stacked, x, y).shape
    torch.Size([4])
    >>> opt = optim.sgd(lr=0.1)
    >>> state = research.init_stacked(opt, stacked)
    >>> stacked, state, losses = research.ensemble_step(loss_fn, opt, stacked, state, x, y)
    >>> losses.shape, research.member(stacked, 2)["w"].shape
    (torch.Size([4]), torch.Size([3]))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.func import grad_and_value, vmap

from .. import tree
from ..optim import GradientTransformation, step
from ..random import Key, split
from ..tree import Params

__all__ = [
    "init_ensemble",
    "ensemble_apply",
    "init_stacked",
    "ensemble_step",
    "member",
    "unstack",
    "ensemble_size",
]

InDims = int | None | Sequence[Any]


def _init_fn(model_or_init_fn: Any) -> Callable[[Key], Params]:
    init = getattr(model_or_init_fn, "init", model_or_init_fn)
    if not callable(init):
        raise TypeError(
            "init_ensemble expects a Model (with .init) or a function key -> params, "
            f"got {type(model_or_init_fn).__name__}"
        )
    return init


def init_ensemble(model_or_init_fn: Any, keys_or_n: Key | int, *, key: Key | None = None) -> Params:
    """Initialise N members and stack them along a new leading axis.

    Args:
        model_or_init_fn: a ``Model`` (its ``init`` is used) or any ``key -> params``.
        keys_or_n: a batch of keys ``int64 (N, 2)`` (one per member), or a count N,
            in which case ``key`` is split into N keys.
        key: the key to split when ``keys_or_n`` is a count.

    Returns:
        a params tree whose every leaf has shape ``(N, *member_shape)``. Member ``i``
        equals ``init(keys[i])`` exactly (initialisation runs once per member; it is
        not vmapped, since initialisers draw from a seeded ``torch.Generator``).

    Raises:
        ValueError: a count without ``key``, or a count below 1.
        TypeError: keys that are not an ``int64 (N, 2)`` tensor.
    """
    init = _init_fn(model_or_init_fn)
    if isinstance(keys_or_n, int) and not isinstance(keys_or_n, bool):
        if key is None:
            raise ValueError("init_ensemble(init, n) needs key= to split into n member keys")
        if keys_or_n < 1:
            raise ValueError(f"an ensemble needs at least 1 member, got {keys_or_n}")
        keys = split(key, keys_or_n)
    else:
        keys = keys_or_n
    if not isinstance(keys, Tensor) or keys.dtype != torch.int64 or keys.dim() != 2:
        got = f"shape {tuple(keys.shape)}, {keys.dtype}" if isinstance(keys, Tensor) else keys
        raise TypeError(f"expected member keys as an int64 tensor (N, 2), got {got}")
    return tree.stack([init(k) for k in keys])


def ensemble_size(stacked: Params) -> int:
    """N, the length of the leading axis shared by every leaf of ``stacked``."""
    leaves = tree.leaves(stacked)
    if not leaves:
        raise ValueError("an ensemble needs at least one tensor leaf")
    sizes = {x.shape[0] if x.dim() else None for x in leaves}
    if len(sizes) != 1 or None in sizes:
        raise ValueError(f"ensemble leaves must share a leading member axis, got sizes {sizes}")
    return sizes.pop()


def _dims(in_dims: InDims, n_inputs: int) -> tuple[Any, ...]:
    if isinstance(in_dims, (int, type(None))):
        return (in_dims,) * n_inputs
    in_dims = tuple(in_dims)
    if len(in_dims) != n_inputs:
        raise ValueError(f"in_dims has {len(in_dims)} entries for {n_inputs} inputs")
    return in_dims


def ensemble_apply(
    apply_fn: Callable[..., Any],
    stacked_params: Params,
    *inputs: Any,
    in_dims: InDims = None,
    chunk_size: int | None = None,
    **options: Any,
) -> Any:
    """``apply_fn(member_params, *inputs, **options)`` for every member, in one ``vmap``.

    Args:
        apply_fn: ``model.apply`` (or a model, or any function of params first).
        stacked_params: from :func:`init_ensemble` or ``ptfunc.tree.stack``.
        inputs: positional inputs. By default (``in_dims=None``) every member sees
            the same inputs; ``in_dims=0`` gives each member its own slice (e.g.
            stacked dropout keys ``(N, 2)`` or one batch per member), or pass one
            entry per input (ints, None, or pytrees of them, as ``torch.func.vmap``).
        options: keyword options, shared by all members (not vmapped).
        chunk_size: evaluate this many members at a time (``vmap``'s memory knob).

    Returns:
        the outputs of ``apply_fn`` with a leading member axis on every tensor.
    """

    def one(params: Params, *xs: Any) -> Any:
        return apply_fn(params, *xs, **options)

    dims = (0, *_dims(in_dims, len(inputs)))
    return vmap(one, in_dims=dims, chunk_size=chunk_size)(stacked_params, *inputs)


def init_stacked(opt: GradientTransformation, stacked_params: Params) -> Any:
    """The optimizer state of every member, stacked like the params.

    Equal to ``tree.stack([opt.init(p) for p in unstack(stacked_params)])``: step
    counts become ``(N,)`` int64 tensors, moments ``(N, *shape)``. Each leaf is
    its own contiguous tensor, so the state can be saved (``ptfunc.train_state``)
    and updated in place.
    """
    return tree.stack([opt.init(p) for p in unstack(stacked_params)])


def ensemble_step(
    loss_fn: Callable[..., Tensor],
    opt: GradientTransformation,
    stacked_params: Params,
    stacked_state: Any,
    *batch: Any,
    in_dims: InDims = None,
    chunk_size: int | None = None,
) -> tuple[Params, Any, Tensor]:
    """One training step of every member: ``vmap`` of ``grad`` and ``optim.step``.

    For each member ``i`` this computes ``loss_fn(params_i, *batch_i)`` and its
    gradient, then ``optim.step(opt, grads_i, state_i, params_i)`` (functional; the
    optimizer's foreach kernels fall back to per-leaf ops under ``vmap``).

    Args:
        loss_fn: ``(params, *batch) -> scalar`` loss of one member.
        opt: any ``ptfunc.optim`` rule or chain.
        stacked_params, stacked_state: from :func:`init_ensemble` / :func:`init_stacked`.
        batch: inputs; shared by all members unless ``in_dims`` says otherwise
            (see :func:`ensemble_apply`). Per-member dropout keys go here with
            ``in_dims`` 0 for that entry.

    Returns:
        ``(new stacked params, new stacked state, losses (N,))``.
    """

    def one(params: Params, state: Any, *xs: Any) -> tuple[Params, Any, Tensor]:
        grads, loss = grad_and_value(loss_fn)(params, *xs)
        new_params, new_state = step(opt, grads, state, params)
        return new_params, new_state, loss

    dims = (0, 0, *_dims(in_dims, len(batch)))
    return vmap(one, in_dims=dims, chunk_size=chunk_size)(stacked_params, stacked_state, *batch)


def member(stacked: Any, i: int) -> Any:
    """Member ``i`` of a stacked tree (params or optimizer state), as views."""
    return tree.map(lambda x: x[i], stacked)


def unstack(stacked: Any) -> list[Any]:
    """All members of a stacked tree, in order (``ptfunc.tree.unstack``)."""
    return tree.unstack(stacked)
