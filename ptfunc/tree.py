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
    "flatten",
    "unflatten",
    "to_flat_dict",
    "map_with_names",
    "from_flat_dict",
    "stack",
    "unstack",
    "check_no_alias",
    "size",
    "astype",
]

Params = dict[str, Any]
"""A nested dict (with lists for layer stacks) whose leaves are tensors."""


def map(fn: Callable[..., Any], tree: Any, *rest: Any) -> Any:  # noqa: A001 - mirrors jax.tree.map
    """Apply ``fn`` to every leaf (and the matching leaves of ``rest``); same structure out."""
    return optree.tree_map(fn, tree, *rest)


def leaves(tree: Any) -> list[Any]:
    """The leaves of ``tree`` in optree's canonical order (dict keys sorted)."""
    return optree.tree_leaves(tree)


def structure(tree: Any) -> optree.PyTreeSpec:
    """The treespec of ``tree`` (for ``optree.tree_unflatten``)."""
    return optree.tree_structure(tree)


def flatten(tree: Any) -> tuple[list[Any], Any]:
    """``(leaves, spec)`` in optree's order (dict keys sorted); see :func:`unflatten`.

    Eagerly this is optree's C flatten. While ``torch.compile`` traces, a plain
    Python walk with the same leaf order is used instead, which Dynamo traces
    reliably (its optree support mishandles dicts whose insertion order is not
    sorted, such as ``{"weight": ..., "bias": ...}``).
    """
    if torch.compiler.is_compiling():
        leaves: list[Any] = []
        return leaves, _py_flatten(tree, leaves)
    return optree.tree_flatten(tree)


def unflatten(spec: Any, leaves: list[Any]) -> Any:
    """Inverse of :func:`flatten`."""
    if isinstance(spec, optree.PyTreeSpec):
        return optree.tree_unflatten(spec, leaves)
    it = iter(leaves)
    return _py_unflatten(spec, it)


def _py_flatten(node: Any, out: list[Any]) -> tuple:
    if isinstance(node, dict):
        keys = sorted(node)
        return (
            "dict",
            type(node),
            tuple(node),
            tuple(keys),
            tuple(_py_flatten(node[k], out) for k in keys),
        )
    if isinstance(node, (list, tuple)):
        kind = type(node)
        return ("seq", kind, tuple(_py_flatten(v, out) for v in node))
    if node is None:
        return ("none",)
    out.append(node)
    return ("leaf",)


def _py_unflatten(spec: tuple, it: Any) -> Any:
    tag = spec[0]
    if tag == "leaf":
        return next(it)
    if tag == "none":
        return None
    if tag == "dict":
        _, kind, original, keys, children = spec
        values = {k: _py_unflatten(c, it) for k, c in zip(keys, children)}
        return kind((k, values[k]) for k in original)
    _, kind, children = spec
    items = [_py_unflatten(c, it) for c in children]
    return kind(*items) if hasattr(kind, "_fields") else kind(items)


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


def map_with_names(fn: Callable[[str, Any], Any], tree: Any, prefix: str = "") -> Any:
    """``fn(dotted_name, leaf)`` at every leaf; same structure out (dicts, lists, tuples).

    Example:
        >>> map_with_names(lambda n, x: n, {"a": [1, 2], "b": {"c": 3}})
        {'a': ['a.0', 'a.1'], 'b': {'c': 'b.c'}}
    """
    join = (lambda k: f"{prefix}.{k}") if prefix else str
    if isinstance(tree, Mapping):
        return type(tree)((k, map_with_names(fn, v, join(k))) for k, v in tree.items())
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):
        return type(tree)(*(map_with_names(fn, v, join(k)) for k, v in zip(tree._fields, tree)))
    if isinstance(tree, (list, tuple)):
        return type(tree)(map_with_names(fn, v, join(i)) for i, v in enumerate(tree))
    if tree is None:
        return None
    return fn(prefix, tree)


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
