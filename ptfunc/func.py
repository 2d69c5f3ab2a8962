"""``grad`` and ``grad_and_value``: ``torch.func``'s, with a leaner top-level backward.

``torch.func.grad`` always runs the reverse pass with ``create_graph=True`` so that it nests
under other transforms. At the top level that costs memory and time: every activation the
forward saved stays alive until the whole backward is done, and the backward's own
intermediates are recorded for a second derivative nobody asks for. On GPT-2-small at 8x128
that is 1.56x the peak tensor memory of ``loss.backward()`` (``benchmarks/suite.py``'s memory
rows), and the extra pages cost time.

These functions take the same arguments and return the same values. When no ``torch.func``
transform is active, ``torch.compile`` is not tracing and no argument requires grad, they
run one plain reverse pass (``torch.autograd.grad``, ``create_graph=False``) that frees each
saved activation as soon as it has been used, as ``loss.backward()`` does. Anywhere else
(under ``vmap`` for per-example gradients, inside another ``grad``, while compiling) they
are ``torch.func.grad`` / ``grad_and_value`` themselves.

One difference remains at the top level: gradients computed by the fast path cannot be
differentiated again through tensors the function captures from outside that require grad
(a closure). For such higher-order uses call ``torch.func.grad``.

Example:
    >>> import torch
    >>> from ptfunc import func
    >>> f = lambda p: (p["w"] ** 2).sum()
    >>> func.grad(f)({"w": torch.tensor([1.0, 2.0])})["w"]
    tensor([2., 4.])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from . import tree
from ._functorch import under_transform

__all__ = ["grad", "grad_and_value"]

Argnums = int | tuple[int, ...]


def grad_and_value(
    fn: Callable[..., Any], argnums: Argnums = 0, has_aux: bool = False
) -> Callable[..., Any]:
    """``fn``'s gradient with respect to ``args[argnums]`` and its value.

    ``fn`` returns a scalar tensor, or ``(scalar, aux)`` with ``has_aux``. The returned
    function gives ``(grads, value)`` or ``(grads, (value, aux))``; ``grads`` has the
    structure of ``args[argnums]`` (a tuple of such when ``argnums`` is a tuple) and holds
    zeros where ``fn`` does not depend on a leaf. Same contract as
    :func:`torch.func.grad_and_value`.
    """
    transformed = torch.func.grad_and_value(fn, argnums=argnums, has_aux=has_aux)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not _top_level(args, kwargs):
            return transformed(*args, **kwargs)
        return _eager_grad_and_value(fn, argnums, has_aux, args, kwargs)

    return wrapped


def grad(fn: Callable[..., Any], argnums: Argnums = 0, has_aux: bool = False) -> Callable[..., Any]:
    """``fn``'s gradient with respect to ``args[argnums]`` (``(grads, aux)`` with
    ``has_aux``). Same contract as :func:`torch.func.grad`; see :func:`grad_and_value`."""
    both = grad_and_value(fn, argnums=argnums, has_aux=has_aux)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        grads, value = both(*args, **kwargs)
        return (grads, value[1]) if has_aux else grads

    return wrapped


def _top_level(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """True when the plain reverse pass gives what ``torch.func`` would: no transform, not
    compiling, and no argument (positional or keyword) that an outer graph records."""
    if torch.compiler.is_compiling() or under_transform():
        return False
    leaves = tree.leaves((args, kwargs))
    return not any(isinstance(t, Tensor) and t.requires_grad for t in leaves)


def _eager_grad_and_value(
    fn: Callable[..., Any],
    argnums: Argnums,
    has_aux: bool,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    positions = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    for i in positions:
        if not -len(args) <= i < len(args):
            raise ValueError(f"argnums={argnums} is out of range for {len(args)} positional args")
    args = list(args)
    specs, leaves = [], []
    for i in positions:
        flat, spec = tree.flatten(args[i])
        flat = [_fresh_leaf(t) for t in flat]
        args[i] = tree.unflatten(spec, flat)
        specs.append((spec, len(flat)))
        leaves += flat
    with torch.enable_grad():
        out = fn(*args, **kwargs)
    value, aux = _split_output(out, has_aux)
    if value.requires_grad:
        found = torch.autograd.grad(value, leaves, allow_unused=True)
    else:  # fn does not depend on the arguments at all
        found = (None,) * len(leaves)
    grads = [torch.zeros_like(t) if g is None else g for g, t in zip(found, leaves, strict=True)]
    out_trees, start = [], 0
    for spec, n in specs:
        out_trees.append(tree.unflatten(spec, grads[start : start + n]))
        start += n
    grads_out = out_trees[0] if isinstance(argnums, int) else tuple(out_trees)
    value = value.detach()
    if has_aux:
        return grads_out, (value, tree.map(_detach, aux))
    return grads_out, value


def _fresh_leaf(x: Any) -> Any:
    if not isinstance(x, Tensor):
        raise TypeError(
            f"grad: the differentiated arguments must hold only tensors, got {type(x).__name__}"
        )
    if not (x.is_floating_point() or x.is_complex()):
        raise TypeError(
            f"grad: can only differentiate floating-point tensors, got one of dtype {x.dtype}"
        )
    return x.detach().requires_grad_()


def _detach(x: Any) -> Any:
    return x.detach() if isinstance(x, Tensor) else x


def _split_output(out: Any, has_aux: bool) -> tuple[Tensor, Any]:
    if has_aux:
        if not (isinstance(out, tuple) and len(out) == 2):
            raise ValueError(
                "grad_and_value(f, has_aux=True): f must return a (scalar tensor, aux) pair"
            )
        value, aux = out
    else:
        value, aux = out, None
    if not isinstance(value, Tensor) or value.dim() != 0:
        got = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
        raise ValueError(f"grad_and_value(f): f must return a scalar tensor, got {got}")
    return value, aux
