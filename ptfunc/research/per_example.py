"""Per-example gradients and their norms, for any loss over a params tree.

``per_example_grads(loss_fn, params, batch)`` is ``vmap(grad(loss_fn))`` over the
examples of ``batch``: leaf ``w`` of the result has shape ``(B, *w.shape)`` and
row ``i`` is the gradient of the loss of example ``i`` alone. It is the basis
of DP-SGD (:mod:`ptfunc.research.dp`), gradient-norm diagnostics and influence
estimates.

ptfunc models take batched inputs ``(batch, seq)``. Under ``vmap`` each example
arrives without its batch axis, so by default (``keep_batch_dim=True``) every
vmapped leaf of the example gets it back as a batch of one (``ids[None]``) before
``loss_fn`` sees it: ``loss_fn`` is written exactly as for a normal batch. With
``keep_batch_dim=False`` the example arrives squeezed (``ids`` of shape
``(seq,)``) and ``loss_fn`` handles it, e.g. to pass a per-example dropout
key (a ``(2,)`` key must not be given a batch axis).

Example:
    >>> import torch
    >>> from ptfunc import research
    >>> params = {"w": torch.tensor([1.0, 2.0])}
    >>> def loss_fn(p, batch):
    ...     x, y = batch                                   # x (b, 2), y (b,)
    ...     return ((x @ p["w"] - y) ** 2).mean()
    >>> x, y = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), torch.zeros(3)
    >>> research.per_example_grads(loss_fn, params, (x, y))["w"]
    tensor([[2., 0.],
            [0., 4.],
            [6., 6.]])
    >>> research.per_example_grad_norms(loss_fn, params, (x, y))
    tensor([2.0000, 4.0000, 8.4853])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor
from torch.func import grad, grad_and_value, vmap

from .. import tree
from ..tree import Params

__all__ = ["per_example_grads", "per_example_grad_norms", "global_norms"]


def _add_batch_axis(batch: Any, in_dims: Any) -> Any:
    """``x[None]`` for every leaf vmapped over (in_dim not None); shared leaves unchanged.

    ``in_dims`` is a pytree prefix of ``batch`` (as for ``torch.func.vmap``).
    """
    if in_dims is None:
        return batch
    if isinstance(in_dims, int):
        return tree.map(lambda x: x.unsqueeze(0), batch)
    if isinstance(in_dims, Mapping) and isinstance(batch, Mapping):
        return type(batch)((k, _add_batch_axis(v, in_dims[k])) for k, v in batch.items())
    if isinstance(in_dims, (list, tuple)) and isinstance(batch, (list, tuple)):
        items = [_add_batch_axis(v, d) for v, d in zip(batch, in_dims, strict=True)]
        return type(batch)(*items) if hasattr(batch, "_fields") else type(batch)(items)
    raise ValueError(f"in_dims {in_dims!r} is not a pytree prefix of the batch")


def _example_fn(loss_fn: Callable[..., Tensor], in_dims: Any, keep_batch_dim: bool):
    if not keep_batch_dim:
        return loss_fn

    def example_loss(params: Params, example: Any) -> Tensor:
        return loss_fn(params, _add_batch_axis(example, in_dims))

    return example_loss


def per_example_grads(
    loss_fn: Callable[[Params, Any], Tensor],
    params: Params,
    batch: Any,
    *,
    in_dims: Any = 0,
    keep_batch_dim: bool = True,
    return_loss: bool = False,
    chunk_size: int | None = None,
) -> Any:
    """Gradient of ``loss_fn(params, example)`` for every example of ``batch``.

    Args:
        loss_fn: ``(params, batch) -> scalar``; ``batch`` is any pytree of tensors
            (a tuple ``(ids, labels)``, a dict of model options...).
        params: the params tree (float leaves); gradients are taken w.r.t. all of it
            (partition it with :mod:`ptfunc.research.freeze` to restrict them).
        batch: the examples, batched along axis ``in_dims``.
        in_dims: ``torch.func.vmap``'s in_dims for ``batch``: 0 (default), or a pytree
            prefix of ``batch`` with None for leaves shared by all examples.
        keep_batch_dim: give each vmapped leaf a batch axis of 1 (``x[None]``) so that
            ``loss_fn`` sees a batch of one example (default); False: squeezed.
        return_loss: also return the per-example losses ``(B,)``.
        chunk_size: run this many examples at a time (``vmap``'s memory knob).

    Returns:
        a tree like ``params`` whose leaves have shape ``(B, *leaf.shape)``; with
        ``return_loss``, ``(grads, losses)``.
    """
    fn = _example_fn(loss_fn, in_dims, keep_batch_dim)
    if return_loss:
        grads, losses = vmap(grad_and_value(fn), in_dims=(None, in_dims), chunk_size=chunk_size)(
            params, batch
        )
        return grads, losses
    return vmap(grad(fn), in_dims=(None, in_dims), chunk_size=chunk_size)(params, batch)


def global_norms(grads: Any) -> Tensor:
    """L2 norm over the whole tree, per row: ``(B,)`` from leaves ``(B, ...)`` (float32+).

    Example:
        >>> import torch
        >>> global_norms({"a": torch.tensor([[3.0], [0.0]]), "b": torch.tensor([[4.0], [1.0]])})
        tensor([5., 1.])
    """
    leaves = tree.leaves(grads)
    if not leaves:
        raise ValueError("global_norms needs a tree with at least one tensor leaf")
    sq = [x.reshape(x.shape[0], -1).float().pow(2).sum(1) for x in leaves]
    return torch.stack(sq).sum(0).sqrt()


def per_example_grad_norms(
    loss_fn: Callable[[Params, Any], Tensor],
    params: Params,
    batch: Any,
    *,
    in_dims: Any = 0,
    keep_batch_dim: bool = True,
    chunk_size: int | None = None,
) -> Tensor:
    """Global L2 norm (across every leaf) of each example's gradient: ``(B,)`` float32.

    Same arguments as :func:`per_example_grads`. With ``chunk_size``, only that many
    per-example gradient trees are alive at once.
    """
    fn = _example_fn(loss_fn, in_dims, keep_batch_dim)

    def norm(params: Params, example: Any) -> Tensor:
        g = tree.leaves(grad(fn)(params, example))
        return torch.stack([x.float().pow(2).sum() for x in g]).sum().sqrt()

    return vmap(norm, in_dims=(None, in_dims), chunk_size=chunk_size)(params, batch)
