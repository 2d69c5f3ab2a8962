"""Parameter trees: nested dicts and lists of tensors, handled with optree.

A params tree is a nested ``dict[str, ...]`` whose leaves are tensors; stacks of
layers are lists. The dotted path of a leaf (``encoder.layer.3.attention.self.
query.weight``) is its name in a checkpoint, so :func:`to_flat_dict` and
:func:`from_flat_dict` are the bridge between trees and files.

Example:
    >>> import torch
    >>> from ptfunc import tree
    >>> p = {"layer": [{"w": torch.ones(2)}, {"w": torch.zeros(2)}], "b": torch.ones(1)}
    >>> sorted(tree.to_flat_dict(p))
    ['b', 'layer.0.w', 'layer.1.w']
    >>> tree.from_flat_dict(tree.to_flat_dict(p))["layer"][1]["w"]
    tensor([0., 0.])
    >>> tree.stack([p, p])["layer"][0]["w"].shape
    torch.Size([2, 2])
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import optree
import torch
from torch import Tensor

__all__ = [
    "Params",
    "map",
    "leaves",
    "structure",
    "to_flat_dict",
    "from_flat_dict",
    "stack",
    "unstack",
    "check_no_alias",
    "size",
    "astype",
]

Params = dict[str, Any]
"""A nested dict (with lists for layer stacks) whose leaves are tensors."""

_builtin_map = map


def map(fn: Callable[..., Any], tree: Any, *rest: Any) -> Any:  # noqa: A001 - mirrors jax.tree.map
    """Apply ``fn`` to every leaf (and the matching leaves of ``rest``); same structure out."""
    return optree.tree_map(fn, tree, *rest)


def leaves(tree: Any) -> list[Any]:
    """The leaves of ``tree`` in optree's canonical order (dict keys sorted)."""
    return optree.tree_leaves(tree)


def structure(tree: Any) -> optree.PyTreeSpec:
    """The treespec of ``tree`` (for ``optree.tree_unflatten``)."""
    return optree.tree_structure(tree)


def _walk(node: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(node, Mapping):
        items = ((str(k), v) for k, v in node.items())
    elif isinstance(node, tuple) and hasattr(node, "_fields"):
        items = zip(node._fields, node)
    elif isinstance(node, (list, tuple)):
        items = ((str(i), v) for i, v in enumerate(node))
    elif node is None:
        return
    else:
        out[prefix] = node
        return
    for k, v in items:
        _walk(v, f"{prefix}.{k}" if prefix else k, out)


def to_flat_dict(tree: Any) -> dict[str, Any]:
    """Flatten a tree into ``{dotted.name: leaf}``.

    List and tuple indices become digits, NamedTuple fields their names
    (``mu.encoder.layer.0.weight``); ``None`` and empty containers hold no leaf.
    """
    out: dict[str, Any] = {}
    _walk(tree, "", out)
    return out


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    node = {k: _listify(v) for k, v in node.items()}
    keys = list(node)
    if keys and all(k.isdigit() for k in keys):
        indices = sorted(int(k) for k in keys)
        if indices == list(range(len(indices))):
            return [node[str(i)] for i in indices]
    return node


def from_flat_dict(flat: Mapping[str, Any], *, like: Any = None) -> Any:
    """Inverse of :func:`to_flat_dict`.

    Without ``like``, levels keyed ``0..n-1`` become lists and the rest dicts.
    With ``like`` (a tree of the wanted structure, e.g. a fresh ``opt.init(params)``),
    the leaves are put into that structure by name, and the names and shapes
    must match exactly.

    Raises:
        ValueError: a name is both a leaf and a prefix of another name; or, with
            ``like``, names or shapes differ (both are named).
    """
    if like is not None:
        return _into(flat, like)
    root: dict[str, Any] = {}
    for name, value in flat.items():
        parts = name.split(".")
        node = root
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ValueError(f"name {name!r} nests under a leaf {part!r}")
            node = child
        if parts[-1] in node:
            raise ValueError(f"name {name!r} is both a leaf and a prefix of other names")
        node[parts[-1]] = value
    return _listify(root)


def _into(flat: Mapping[str, Any], like: Any) -> Any:
    template = to_flat_dict(like)
    missing = sorted(set(template) - set(flat))
    unexpected = sorted(set(flat) - set(template))
    if missing or unexpected:
        raise ValueError(
            f"the names do not match the expected structure: missing {missing[:8]}, "
            f"unexpected {unexpected[:8]}"
        )
    for name, ref in template.items():
        got = flat[name]
        if isinstance(ref, Tensor) and (not isinstance(got, Tensor) or got.shape != ref.shape):
            shape = tuple(got.shape) if isinstance(got, Tensor) else type(got).__name__
            raise ValueError(f"{name}: expected shape {tuple(ref.shape)}, got {shape}")
    leaves, spec = optree.tree_flatten(like)
    order = list(to_flat_dict(optree.tree_unflatten(spec, list(range(len(leaves))))).items())
    values: list[Any] = [None] * len(leaves)
    for name, index in order:
        values[index] = flat[name]
    return optree.tree_unflatten(spec, values)


def stack(trees: Iterable[Any]) -> Any:
    """Stack trees of the same structure along a new leading axis (e.g. an ensemble for vmap)."""
    trees = list(trees)
    if not trees:
        raise ValueError("stack needs at least one tree")
    return optree.tree_map(lambda *xs: torch.stack(xs), *trees)


def unstack(tree: Any) -> list[Any]:
    """Inverse of :func:`stack`: split every leaf along its leading axis."""
    flat, spec = optree.tree_flatten(tree)
    if not flat:
        return []
    n = flat[0].shape[0]
    if any(x.shape[:1] != (n,) for x in flat):
        raise ValueError("unstack needs every leaf to share the same leading dimension")
    return [optree.tree_unflatten(spec, [x[i] for x in flat]) for i in range(n)]


def _extent(t: Tensor) -> tuple[int, int]:
    """Byte range [start, stop) that a tensor covers inside its storage."""
    size = t.element_size()
    start = t.storage_offset() * size
    if t.numel() == 0:
        return start, start
    span = 1 + sum((n - 1) * abs(s) for n, s in zip(t.shape, t.stride()))
    return start, start + span * size


def check_no_alias(tree: Any) -> None:
    """Refuse trees where two paths share memory.

    A tied weight must be one leaf read twice by ``apply``, never the same
    tensor at two paths: optree would see two leaves, an optimizer would step
    it twice and safetensors would refuse to write it.

    Raises:
        ValueError: naming the two paths that overlap.
    """
    seen: dict[tuple[str, int], list[tuple[int, int, str]]] = {}
    for name, leaf in to_flat_dict(tree).items():
        if not isinstance(leaf, Tensor) or leaf.numel() == 0:
            continue
        storage = leaf.untyped_storage()
        where = (str(leaf.device), storage.data_ptr())
        start, stop = _extent(leaf)
        for other_start, other_stop, other in seen.get(where, []):
            if start < other_stop and other_start < stop:
                raise ValueError(
                    f"parameters {other!r} and {name!r} share memory; store a tied weight "
                    "once and read it from one path"
                )
        seen.setdefault(where, []).append((start, stop, name))


def size(tree: Any) -> int:
    """Total number of elements over all tensor leaves."""
    return sum(x.numel() for x in optree.tree_leaves(tree) if isinstance(x, Tensor))


def astype(tree: Any, dtype: torch.dtype) -> Any:
    """Cast every floating-point leaf to ``dtype`` (integer leaves are kept)."""
    return optree.tree_map(lambda x: x.to(dtype) if x.is_floating_point() else x, tree)
