"""Tensor-parallel runtime: a TorchFunctionMode that inserts Megatron's collectives.

The models run unchanged on local params: every dense layer of ptfunc goes through
``F.linear`` (GPT-2's Conv1D as ``F.linear(x, w.t(), b)``) and every table through
``F.embedding``, so :class:`TPMode` recognises a registered local leaf (by ``data_ptr`` and
shape, also as a ``.t()`` view) when it reaches one of them and wraps the call:

* colwise: ``F.linear(copy(x), w, b)``, ``copy`` the identity forward and an all-reduce of
  the input's gradient backward;
* rowwise: ``reduce(F.linear(x, w)) + b``, ``reduce`` an all-reduce forward and the
  identity backward (the bias added once);
* vocab table in ``F.embedding``: ids outside this rank's rows looked up as row 0, their
  rows zeroed, the partial embeddings all-reduced (``padding_idx`` moved to the local row);
* vocab table (tied, or an untied ``lm_head``) in ``F.linear``: colwise over the vocabulary,
  then the logits all-gathered along the last dim (backward: this rank's slice), so the
  heads' own losses are unchanged; with ``loss_parallel`` the local logits are returned for
  :func:`vocab_parallel_cross_entropy`, which also computes every ``F.cross_entropy`` of
  them inside the mode (so the heads' ``labels=`` losses stay right).

Gradients come from plain autograd (``torch.autograd.grad`` / ``.backward``): the local
slices of the one-process gradients, replicated leaves' gradients whole and equal on every
rank. ``torch.func`` transforms (``grad``, ``vmap``) over the mode are not supported.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor
from torch.overrides import TorchFunctionMode

from .. import tree
from ..tree import Params
from ._comm import Group, rank, world_size
from ._tp_plan import TPPlan, TPRule

__all__ = ["TPMode", "current", "parallel", "vocab_parallel_cross_entropy"]

_ACTIVE: list[TPMode] = []


def current() -> TPMode | None:
    """The innermost active :class:`TPMode` (None outside one)."""
    return _ACTIVE[-1] if _ACTIVE else None


# -- differentiable collectives over the tp group ----------------------------------------------


def _all_reduce(x: Tensor, group: Group, op: Any = None) -> Tensor:
    out = x.contiguous().clone()
    if world_size(group) > 1:
        dist.all_reduce(out, op=dist.ReduceOp.SUM if op is None else op, group=group)
    return out


class _CopyToTP(torch.autograd.Function):
    """Identity forward, all-reduce (sum) of the gradient backward."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, group: Group) -> Tensor:
        ctx.group = group
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return _all_reduce(grad, ctx.group), None


class _ReduceFromTP(torch.autograd.Function):
    """All-reduce (sum) forward, identity backward."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, group: Group) -> Tensor:
        return _all_reduce(x, group)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return grad, None


class _GatherLast(torch.autograd.Function):
    """All-gather along the last dim forward, this rank's slice of the gradient backward."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, group: Group) -> Tensor:
        ctx.group, ctx.n = group, x.shape[-1]
        size = world_size(group)
        if size == 1:
            return x.clone()
        x = x.contiguous()
        parts = [torch.empty_like(x) for _ in range(size)]
        dist.all_gather(parts, x, group=group)
        return torch.cat(parts, dim=-1)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        start = rank(ctx.group) * ctx.n
        return grad.narrow(-1, start, ctx.n).contiguous(), None


def copy_to_tp(x: Tensor, group: Group = None) -> Tensor:
    """Identity forward; the gradient all-reduced over ``group`` backward."""
    return _CopyToTP.apply(x, group)


def reduce_from_tp(x: Tensor, group: Group = None) -> Tensor:
    """All-reduce (sum) over ``group`` forward; the identity backward."""
    return _ReduceFromTP.apply(x, group)


def gather_last(x: Tensor, group: Group = None) -> Tensor:
    """All-gather along the last dim (rank order) forward; this rank's slice backward."""
    return _GatherLast.apply(x, group)


# -- the mode ---------------------------------------------------------------------------------


def _ptr(tensor: Tensor) -> int:
    """``tensor.data_ptr()``, with a clear error for a tensor without storage."""
    try:
        return tensor.data_ptr()
    except RuntimeError as error:  # functorch wrappers, meta or fake tensors
        raise TypeError(
            "TPMode recognises leaves by their storage and needs plain tensors: torch.func "
            "transforms (grad, vmap) over a tensor-parallel call are not supported; use "
            f"torch.autograd.grad or .backward() ({error})"
        ) from None


class _Entry:
    __slots__ = ("ref", "shape", "rule")

    def __init__(self, tensor: Tensor, rule: TPRule) -> None:
        self.ref = weakref.ref(tensor)
        self.shape = tuple(tensor.shape)
        self.rule = rule


class TPMode(TorchFunctionMode):
    """Runs ptfunc models on tp-local params (see the module doc).

    Args:
        plan: the rules :meth:`register_tree` reads (may be None when only
            :meth:`register` is used).
        group: the tensor-parallel process group (None: the default group).
        loss_parallel: vocab read-outs return this rank's logits (..., V / tp) instead of
            gathering them; score them with :func:`vocab_parallel_cross_entropy`. The heads'
            own ``labels=`` losses stay right: inside the mode, ``F.cross_entropy`` of
            logits as wide as the local vocabulary slice is computed by
            :func:`vocab_parallel_cross_entropy` (mean reduction only; a ``weight``,
            ``label_smoothing`` or another reduction raises ValueError).

    ``with TPMode(plan, group) as mode: mode.register_tree(local); out = model.apply(local,
    ...)``; :func:`current` returns the innermost active mode.
    """

    def __init__(
        self, plan: TPPlan | None = None, group: Group = None, *, loss_parallel: bool = False
    ) -> None:
        super().__init__()
        self.plan, self.group, self.loss_parallel = plan, group, loss_parallel
        self.tp_rank, self.tp_size = rank(group), world_size(group)
        self._entries: dict[int, list[_Entry]] = {}
        self._copied: tuple[Any, bool, Tensor] | None = None  # (weakref x, grad mode, copy)
        self._partial = 0  # reduce_grad leaves registered (ever): scan the args of every op
        self._vocab_width: int | None = None  # last dim of the local logits (loss_parallel)

    # registry
    def register(self, tensor: Tensor, rule: TPRule) -> None:
        """Treat ``tensor`` (a tp-local leaf) by ``rule`` when it reaches F.linear/F.embedding."""
        if rule.kind == "replicate" and not rule.reduce_grad:
            return
        if rule.reduce_grad:
            self._partial += 1
        entries = self._entries.setdefault(_ptr(tensor), [])
        entries[:] = [e for e in entries if e.ref() is not None and e.ref() is not tensor]
        entries.append(_Entry(tensor, rule))

    def register_tree(self, params: Params, prefix: str = "") -> None:
        """Register every leaf of ``params`` by ``plan.rule(prefix + dotted path)``."""
        if self.plan is None:
            raise ValueError("register_tree needs the TPMode's plan")
        for path, leaf in tree.to_flat_dict(params).items():
            full = f"{prefix}.{path}" if prefix else path
            self.register(leaf, self.plan.rule(full))

    def unregister(self, tensor: Tensor) -> None:
        """Forget ``tensor``."""
        entries = self._entries.get(_ptr(tensor))
        if entries is None:
            return
        entries[:] = [e for e in entries if e.ref() is not None and e.ref() is not tensor]
        if not entries:
            del self._entries[_ptr(tensor)]

    def _lookup(self, w: Any) -> tuple[TPRule, bool] | None:
        """(rule, transposed) of a registered leaf that ``w`` is (or is ``.t()`` of)."""
        if not isinstance(w, Tensor) or not self._entries:
            return None
        entries = self._entries.get(_ptr(w))
        if not entries:
            return None
        shape = tuple(w.shape)
        for e in entries:
            if e.ref() is None:
                continue
            if shape == e.shape:
                return e.rule, False
            if len(shape) == 2 and shape == e.shape[::-1]:
                return e.rule, True
        return None

    def __enter__(self) -> TPMode:
        super().__enter__()
        _ACTIVE.append(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        _ACTIVE.remove(self)
        self._copied = None
        super().__exit__(*exc)

    # interception
    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        kwargs = kwargs or {}
        if func is F.linear or func is F.embedding:
            found = self._lookup(args[1] if len(args) > 1 else kwargs.get("weight"))
            if found is not None and found[0].kind != "replicate":
                if func is F.linear:
                    return self._linear(found[0], *args, **kwargs)
                return self._embedding(found[0], *args, **kwargs)
        if func is F.cross_entropy and self._vocab_width is not None:
            logits = args[0] if args else kwargs.get("input")
            if isinstance(logits, Tensor) and logits.dim() >= 1:
                if logits.shape[1 if logits.dim() >= 2 else 0] == self._vocab_width:
                    return self._cross_entropy(*args, **kwargs)
        if self._partial and torch.is_grad_enabled() and getattr(func, "__name__", "") != "__get__":
            args = tuple(self._reduce_grad(a) for a in args)
            kwargs = {k: self._reduce_grad(v) for k, v in kwargs.items()}
        return func(*args, **kwargs)

    def _reduce_grad(self, a: Any) -> Any:
        """``copy_to_tp(a)`` for a ``reduce_grad`` leaf (its partial gradients summed)."""
        if isinstance(a, Tensor) and a.requires_grad:
            found = self._lookup(a)
            if found is not None and found[0].reduce_grad:
                return copy_to_tp(a, self.group)
        return a

    def _copy(self, x: Tensor) -> Tensor:
        """``copy_to_tp(x)``, shared by the colwise layers that read the same ``x`` (q, k, v;
        gate, up) so the backward all-reduces their summed gradient once."""
        grad_mode = torch.is_grad_enabled()
        if self._copied is not None:
            ref, mode, y = self._copied
            if ref() is x and mode == grad_mode:
                return y
        y = copy_to_tp(x, self.group)
        self._copied = (weakref.ref(x), grad_mode, y)
        return y

    def _linear(
        self, rule: TPRule, x: Tensor, weight: Tensor, bias: Tensor | None = None
    ) -> Tensor:
        if rule.kind == "colwise":
            return F.linear(self._copy(x), weight, bias)
        if rule.kind == "rowwise":
            out = reduce_from_tp(F.linear(x, weight), self.group)
            return out if bias is None else out + bias
        if rule.kind == "vocab":
            logits = F.linear(self._copy(x), weight, bias)
            if not self.loss_parallel:
                return gather_last(logits, self.group)
            self._vocab_width = logits.shape[-1]
            return logits
        raise ValueError(f"a {rule.kind} leaf reached F.linear")

    def _cross_entropy(
        self, input: Tensor, target: Tensor, weight: Tensor | None = None,
        size_average: Any = None, ignore_index: int = -100, reduce: Any = None,
        reduction: str = "mean", label_smoothing: float = 0.0,
    ) -> Tensor:  # fmt: skip
        """``F.cross_entropy`` of local vocab logits: (C,), (N, C) or (N, C, d1, ...)."""
        if weight is not None or label_smoothing or reduction != "mean":
            raise ValueError(
                "TPMode(loss_parallel=True): F.cross_entropy of vocab-sharded logits supports "
                f"only the mean without weight or label_smoothing (got reduction={reduction!r}, "
                f"weight={'set' if weight is not None else None}, "
                f"label_smoothing={label_smoothing}); gather the logits (loss_parallel=False)"
            )
        if size_average is not None or reduce is not None:
            raise ValueError("TPMode(loss_parallel=True): size_average/reduce are not supported")
        want = input.shape[:1] + input.shape[2:] if input.dim() >= 2 else torch.Size()
        if target.shape != want:
            raise ValueError(
                "TPMode(loss_parallel=True): F.cross_entropy of vocab-sharded logits "
                f"{tuple(input.shape)} needs class-index labels {tuple(want)}, got "
                f"{tuple(target.shape)} (probabilities as targets are not supported)"
            )
        logits = input.movedim(1, -1) if input.dim() >= 2 else input
        return vocab_parallel_cross_entropy(logits, target, self.group, ignore_index)

    def _embedding(
        self, rule: TPRule, ids: Tensor, weight: Tensor, padding_idx: int | None = None,
        *args: Any, **kwargs: Any,
    ) -> Tensor:  # fmt: skip
        if rule.kind != "vocab":
            raise ValueError(f"a {rule.kind} leaf reached F.embedding (only vocab tables can)")
        rows = weight.shape[0]
        start = self.tp_rank * rows
        local = ids - start
        inside = (local >= 0) & (local < rows)
        if padding_idx is not None:
            padding_idx = padding_idx % (rows * self.tp_size) - start
            padding_idx = padding_idx if 0 <= padding_idx < rows else None
        out = F.embedding(torch.where(inside, local, 0), weight, padding_idx, *args, **kwargs)
        out = torch.where(inside[..., None], out, torch.zeros((), dtype=out.dtype))
        return reduce_from_tp(out, self.group)


def parallel(
    apply_fn: Callable[..., Any],
    plan: TPPlan,
    group: Group = None,
    *,
    loss_parallel: bool = False,
) -> Callable[..., Any]:
    """``fn(local_params, *args, **kwargs)``: ``apply_fn`` run under a :class:`TPMode` with
    ``local_params`` (this rank's :func:`split_params`) registered by ``plan``.

    Autograd through the result (``loss.backward()``, ``torch.autograd.grad``) gives the local
    pieces of the one-process gradients; replicated leaves get the whole gradient on every
    rank. ``loss_parallel``: see :class:`TPMode`.
    """

    def fn(local_params: Params, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("head_mask") is not None:
            raise ValueError(
                "tensor_parallel.parallel: head_mask is not supported (each rank holds only "
                "its slice of the heads); mask heads on one process, or prune them before "
                "split_params"
            )
        with TPMode(plan, group, loss_parallel=loss_parallel) as mode:
            mode.register_tree(local_params)
            return apply_fn(local_params, *args, **kwargs)

    return fn


def vocab_parallel_cross_entropy(
    local_logits: Tensor, labels: Tensor, group: Group = None, ignore_index: int = -100
) -> Tensor:
    """Mean cross-entropy of vocab-sharded logits, the full logits never built.

    ``local_logits`` (..., V / tp): this rank's vocabulary slice (rank order, as
    ``TPMode(loss_parallel=True)`` gives); ``labels`` (...) full-vocabulary ids, the same on
    every rank; ``ignore_index`` labels do not count. Equals ``F.cross_entropy`` of the
    gathered logits (float32 at least); every rank gets the same loss and its slice's gradient.
    """
    logits = local_logits.reshape(-1, local_logits.shape[-1])
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    labels = labels.reshape(-1)
    n = logits.shape[-1]
    start = rank(group) * n
    peak = _all_reduce(logits.detach().amax(-1), group, dist.ReduceOp.MAX)
    shifted = logits - peak[:, None]
    sum_exp = reduce_from_tp(shifted.exp().sum(-1), group)
    local = labels - start
    inside = (local >= 0) & (local < n)
    picked = shifted.gather(-1, torch.where(inside, local, 0)[:, None])[:, 0]
    target = reduce_from_tp(torch.where(inside, picked, torch.zeros((), dtype=picked.dtype)), group)
    keep = labels != ignore_index
    per_token = torch.where(keep, sum_exp.log() - target, torch.zeros((), dtype=target.dtype))
    return per_token.sum() / keep.sum()
