"""Functional fine-tuning of a subset of the params: masks, partition and combine.

``mask = trainable_mask(params, ["classifier", "bert.pooler"])`` marks the leaves to
train (a tree of bools); ``trainable, frozen = partition(params, mask)`` splits the
tree in two trees of the same structure, each holding ``()`` where the other has
its leaves (``()`` is a node without leaves for optree and ``torch.func``, which
refuse ``None``); ``combine(trainable, frozen)`` puts them back. Gradients and the
optimizer then see only the trainable part::

    loss_of_trainable = lambda t, *batch: loss_fn(combine(t, frozen), *batch)
    grads = ptfunc.func.grad(loss_of_trainable)(trainable, *batch)
    state = opt.init(trainable)               # no state for frozen leaves
    trainable, state = optim.step(opt, grads, state, trainable)

:func:`freeze` is the other route: an optimizer that updates the masked leaves
only (zero updates elsewhere) while gradients are still taken for all leaves.

Example:
    >>> import torch
    >>> from ptfunc import research
    >>> params = {"body": {"w": torch.ones(2)}, "head": {"w": torch.ones(2), "b": torch.ones(1)}}
    >>> mask = research.trainable_mask(params, "head")
    >>> mask
    {'body': {'w': False}, 'head': {'w': True, 'b': True}}
    >>> trainable, frozen = research.partition(params, mask)
    >>> trainable["body"], sorted(trainable["head"])
    ({'w': ()}, ['b', 'w'])
    >>> research.combine(trainable, frozen)["body"]["w"] is params["body"]["w"]
    True
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import Tensor

from .. import tree
from ..optim import EmptyState, GradientTransformation, chain, masked
from ..optim.base import flatten_matching
from ..tree import Params

__all__ = ["trainable_mask", "partition", "combine", "with_frozen", "freeze"]

Predicate = Callable[[str, Tensor], bool]


def _matcher(spec: str | Iterable[str] | Predicate) -> Predicate:
    if callable(spec):
        return spec
    patterns = [spec] if isinstance(spec, str) else list(spec)
    if not all(isinstance(p, str) for p in patterns):
        raise TypeError(
            "trainable_mask expects a predicate (name, leaf) -> bool, a pattern or a list of "
            f"patterns, got {spec!r}"
        )

    def match(name: str, _leaf: Tensor) -> bool:
        return any(
            fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(name, p + ".*") for p in patterns
        )

    return match


def trainable_mask(params: Params, predicate_or_patterns: str | Iterable[str] | Predicate) -> Any:
    """A tree of bools like ``params``: True for the leaves to train.

    Args:
        params: the params tree.
        predicate_or_patterns: ``fn(dotted_name, leaf) -> bool``; or glob patterns over
            dotted names (``fnmatch``), where a pattern also selects everything under
            it: ``"classifier"`` matches ``classifier.weight``, ``"*.bias"`` every bias,
            ``"bert.encoder.layer.1[01]"`` layers 10 and 11.

    Raises:
        ValueError: patterns that select no leaf (a misspelt name).
    """
    match = _matcher(predicate_or_patterns)
    mask = tree.map_with_names(lambda n, x: bool(match(n, x)), params)
    if not callable(predicate_or_patterns) and not any(tree.leaves(mask)):
        raise ValueError(
            f"patterns {predicate_or_patterns!r} select no parameter; names look like "
            f"{list(tree.to_flat_dict(params))[:4]}"
        )
    return mask


def _mask_flags(params: Params, mask: Any) -> list[bool]:
    tree_mask = mask(params) if callable(mask) else mask
    return [bool(m) for m in flatten_matching(tree_mask, params, "mask")]


def partition(params: Params, mask: Any) -> tuple[Params, Params]:
    """Split ``params`` into ``(trainable, frozen)`` by ``mask`` (bool tree or function of params).

    Both halves keep the structure of ``params``; a leaf sits in one half and ``()``
    takes its place in the other. Leaves are the original tensors (no copies).
    """
    leaves, spec = tree.flatten(params)
    flags = _mask_flags(params, mask)
    trainable = [x if f else () for x, f in zip(leaves, flags)]
    frozen = [() if f else x for x, f in zip(leaves, flags)]
    return tree.unflatten(spec, trainable), tree.unflatten(spec, frozen)


def _is_hole(x: Any) -> bool:
    return type(x) is tuple and not x


def _merge(a: Any, b: Any, path: str) -> Any:
    if _is_hole(a):
        return b
    if _is_hole(b):
        return a
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        if set(a) != set(b):
            raise ValueError(
                f"combine: keys differ at {path or 'the root'}: {sorted(a)} vs {sorted(b)}"
            )
        return type(a)((k, _merge(a[k], b[k], f"{path}.{k}" if path else str(k))) for k in a)
    if isinstance(a, (list, tuple)) and type(a) is type(b) and len(a) == len(b):
        items = [
            _merge(x, y, f"{path}.{i}" if path else str(i)) for i, (x, y) in enumerate(zip(a, b))
        ]
        return type(a)(*items) if hasattr(a, "_fields") else type(a)(items)
    raise ValueError(
        f"combine: both halves hold a value at {path or 'the root'}; were they made by partition?"
    )


def combine(trainable: Params, frozen: Params) -> Params:
    """Inverse of :func:`partition`: one tree with every leaf (no copies).

    Raises:
        ValueError: both halves hold a leaf at the same path, or structures differ.
    """
    return _merge(trainable, frozen, "")


def with_frozen(loss_fn: Callable[..., Any], frozen: Params) -> Callable[..., Any]:
    """``lambda trainable, *args, **kw: loss_fn(combine(trainable, frozen), *args, **kw)``."""

    def loss_of_trainable(trainable: Params, *args: Any, **kwargs: Any) -> Any:
        return loss_fn(combine(trainable, frozen), *args, **kwargs)

    return loss_of_trainable


def _set_to_zero() -> GradientTransformation:
    def init(params: Any) -> EmptyState:
        return EmptyState()

    def update(updates: Any, state: Any, params: Any = None, *, inplace: bool = False):
        return tree.map(torch.zeros_like, updates), state

    return GradientTransformation(init, update)


def freeze(inner: GradientTransformation, mask: Any) -> GradientTransformation:
    """An optimizer that applies ``inner`` to the masked (trainable) leaves and gives the
    others zero updates, so they never change: ``chain(masked(inner, mask), masked(zero,
    not mask))``. ``inner`` keeps state for the trainable leaves only.

    Unlike ``optim.masked`` alone (which passes unmasked updates through unchanged),
    frozen leaves here get exact zeros whatever their gradient.
    """
    if callable(mask):

        def frozen(params: Any) -> Any:
            return tree.map(lambda m: not m, mask(params))
    else:
        frozen = tree.map(lambda m: not m, mask)
    return chain(masked(inner, mask), masked(_set_to_zero(), frozen))
