"""FSDP2-style training on a params tree of DTensors: gather each layer just before use.

:func:`shard` turns a params tree (the same full tree on every rank) into a tree of
``torch.distributed.tensor.DTensor`` s on a ``DeviceMesh``: on a 1-D mesh every leaf is
``Shard(0)`` (``torch.chunk`` pieces: the first ranks hold ``ceil(n / world)`` rows, the
last ones fewer or none), 0-d leaves ``Replicate()``. With a tensor-parallel plan
(:mod:`.tensor_parallel`) on a ``("dp", "tp")`` mesh the tp placement comes from the
plan and the dp placement shards another dim (module docs of :func:`shard`). The
optimizers of :mod:`ptfunc.optim` step such trees as they are (on the local shards), and
DCP saves them directly.

:func:`value_and_grad` runs a pure ptfunc loss on the sharded tree. The tree is cut into
*units*: by default every element of every list in the tree (the layers:
``params["layers"][i]``, ``params["bert"]["encoder"]["layer"][i]``, ``params["h"][i]``)
is one unit and the remaining leaves form the root unit. The loss sees a lazy view of the
tree (a ``dict`` / ``list`` subclass), so a model runs unchanged:

* **forward**: the root unit is gathered first; a layer unit is gathered when the model
  reads ``layers[i]``: its local shards (cast to ``param_dtype``) are padded to the ceil
  size, packed into one flat buffer and all-gathered over the dp group in one
  ``all_gather_single``, then copied out into one contiguous unit buffer of which
  each leaf is a view. The gather is an ``autograd.Function``; reading unit ``i`` starts
  the asynchronous gather of unit ``i + 1`` (prefetch) and frees the others, so at most
  the root and two layer units are resident;
* **saved tensors**: ``torch.autograd.graph.saved_tensors_hooks`` recognise a tensor that
  autograd saves for the backward (a ``linear``'s weight) by its storage, a live unit
  buffer, and keep only ``(unit, offset, size, stride)``; the backward re-gathers the unit
  when it first needs it (prefetching the unit before it in forward order) and hands out
  ``as_strided`` views of the new buffer. The gathered params are not kept for the
  backward;
* **backward**: when a unit's gradients are complete, the gather's backward writes them
  into the padded flat layout (in ``reduce_dtype``) and starts an asynchronous
  ``reduce_scatter_single`` over the dp group, overlapping the rest of the backward; all
  are waited for at the end, divided by the dp world size (each rank's loss is the mean
  over its local batch, so the result is the gradient of the mean over the global
  batch) and returned as DTensors placed as the params.

This runs under plain autograd (``torch.autograd.grad``), not ``torch.func``:
``torch.func`` transforms refuse saved-tensor hooks. Without a process group (or on a
1-rank mesh, or on a tree of plain tensors) it is the ordinary gradient (with the
``param_dtype`` cast).

Example (one process, plain tensors: the ordinary gradient):
    >>> import torch
    >>> from ptfunc.distributed import fsdp
    >>> params = {"layers": [{"w": torch.ones(3)}, {"w": torch.full((3,), 2.0)}]}
    >>> loss_fn = lambda p, x: sum((layer["w"] * x).sum() for layer in p["layers"])
    >>> loss, grads = fsdp.value_and_grad(loss_fn)(params, torch.arange(3.0))
    >>> float(loss), grads["layers"][1]["w"]
    (9.0, tensor([0., 1., 2.]))
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from ._comm import _ALL_GATHER, _REDUCE_SCATTER  # the *_single collectives (torch >= 2.13)
from ._strided import strided_shard

__all__ = ["shard", "full_params", "value_and_grad", "FSDPStats"]

Path = tuple  # keys (str) and list indices (int) from the root


def _dotted(path: Path) -> str:
    return ".".join(str(k) for k in path)


def _dtensor_api():
    try:
        from torch.distributed.device_mesh import DeviceMesh
        from torch.distributed.tensor import DTensor, Replicate, Shard
    except ImportError as err:  # pragma: no cover - torch without distributed
        raise RuntimeError("ptfunc.distributed.fsdp needs torch.distributed.tensor") from err
    return DTensor, Shard, Replicate, DeviceMesh


def _walk(node: Any, path: Path, out: list[tuple[Path, Tensor]]) -> None:
    if isinstance(node, dict):
        for k, v in node.items():
            _walk(v, (*path, k), out)
    elif isinstance(node, (list, tuple)):
        for i, v in enumerate(node):
            _walk(v, (*path, i), out)
    elif isinstance(node, Tensor):
        out.append((path, node))
    elif node is not None:
        raise TypeError(f"params leaf {_dotted(path)!r} is a {type(node).__name__}, not a tensor")


def _rebuild(node: Any, path: Path, fn: Callable[[Path, Tensor], Any]) -> Any:
    if isinstance(node, dict):
        return type(node)((k, _rebuild(v, (*path, k), fn)) for k, v in node.items())
    if isinstance(node, (list, tuple)):
        items = [_rebuild(v, (*path, i), fn) for i, v in enumerate(node)]
        return type(node)(*items) if hasattr(node, "_fields") else type(node)(items)
    if node is None:
        return None
    return fn(path, node)


def _chunk(n: int, world: int, r: int) -> tuple[int, int, int]:
    """``torch.chunk`` of ``n`` rows into ``world``: (ceil size, start, length) of piece r."""
    c = math.ceil(n / world) if n else 0
    start = min(r * c, n)
    return c, start, max(0, min(c, n - start))


# -- shard / full_params ---------------------------------------------------------------------


def _mesh_dims(mesh: Any, plan: Any) -> tuple[int | None, int | None]:
    """(dp mesh dim, tp mesh dim) of ``mesh`` (None where absent); checks the mesh and plan."""
    names = mesh.mesh_dim_names
    if mesh.ndim == 1 and (names is None or names[0] == "dp"):
        if plan is not None:
            raise ValueError(
                "a tensor-parallel plan needs a mesh with a dim named 'tp' "
                f"(('dp', 'tp') or ('tp',)), got dims {names}"
            )
        return 0, None
    if mesh.ndim == 1 and names[0] == "tp":
        if plan is None:
            raise ValueError("a mesh named ('tp',) needs a tensor-parallel plan")
        return None, 0
    if mesh.ndim == 2 and names is not None and sorted(names) == ["dp", "tp"]:
        if plan is None:
            raise ValueError("a ('dp', 'tp') mesh needs a tensor-parallel plan (plan=...)")
        return names.index("dp"), names.index("tp")
    raise ValueError(
        "shard needs a 1-D mesh (unnamed, ('dp',) or ('tp',)) or a 2-D mesh named "
        f"('dp', 'tp'); got {mesh.ndim} dims named {names}"
    )


def _placements(path: str, x: Tensor, plan: Any, dp: int | None, tp: int | None, mesh: Any):
    """(placements, tp dim or None, dp dim or None) of one leaf."""
    _, Shard, Replicate, _ = _dtensor_api()
    tdim, blocks = None, 1
    if tp is not None:
        rule = plan.rule(path)
        if rule.kind != "replicate" and rule.dim is not None and x.dim() > 0:
            tdim, blocks = rule.dim % x.dim(), getattr(rule, "fused", 1)
    ddim = None
    if dp is not None and x.dim() > 0:
        free = [d for d in range(x.dim()) if d != tdim]
        ddim = free[0] if free else None
    placements = [Replicate()] * mesh.ndim
    if tdim is not None:  # fused blocks, each cut over tp: a strided shard
        placements[tp] = Shard(tdim) if blocks == 1 else strided_shard(tdim, blocks)
    if ddim is not None:
        placements[dp] = Shard(ddim)
    return placements, tdim, ddim


def shard(params: Any, mesh: Any, plan: Any = None) -> Any:
    """This rank's pieces of ``params`` as a tree of DTensors on ``mesh``.

    Args:
        params: a params tree (nested dicts / lists of tensors), the same full values on
            every rank (initialise from the same key, or broadcast first).
        mesh: a ``torch.distributed.device_mesh.DeviceMesh``. 1-D (unnamed or ``("dp",)``)
            without a plan: FSDP, every leaf ``Shard(0)`` (``torch.chunk`` pieces; 0-d
            leaves ``Replicate()``). 2-D named ``("dp", "tp")`` or 1-D ``("tp",)`` with a
            ``TPPlan``: placements ``[dp, tp]``; the tp placement is ``Shard(rule.dim)``
            from ``plan.rule(path)`` (``Replicate()`` for replicated leaves); the dp
            placement is ``Shard(d)`` on the first dim ``d`` that is not the tp dim
            (``Replicate()`` for 1-D tp-split leaves and 0-d leaves).
        plan: a :class:`~.tensor_parallel.TPPlan` or None. A fused rule (GPT-2's
            ``c_attn``, ``fused`` blocks ``[q|k|v]``) gives each tp rank
            ``plan.split(...)``'s piece ``[q_r|k_r|v_r]``: its tp placement is
            ``_StridedShard(dim, split_factor=fused)``, so the DTensor's global value is
            the natural tensor (``full_tensor()``, :func:`full_params` and DCP checkpoints
            see ``[q|k|v]`` whatever the tp size).

    Returns:
        The tree with DTensor leaves of the params' shapes and dtypes (local tensors on
        the mesh's device, contiguous copies).
    """
    DTensor, _, _, DeviceMesh = _dtensor_api()
    if not isinstance(mesh, DeviceMesh):
        raise TypeError(f"shard needs a DeviceMesh, got {type(mesh).__name__}")
    dp, tp = _mesh_dims(mesh, plan)
    tp_size = mesh.size(tp) if tp is not None else 1
    tp_rank = mesh.get_local_rank(tp) if tp is not None else 0
    dp_size = mesh.size(dp) if dp is not None else 1
    dp_rank = mesh.get_local_rank(dp) if dp is not None else 0
    if plan is not None:
        plan.check(params, tp_size)
    device = torch.device(mesh.device_type)
    if device.type == "cuda":
        device = torch.device("cuda", torch.cuda.current_device())

    def one(path: Path, x: Tensor) -> Tensor:
        if isinstance(x, DTensor):
            raise TypeError(f"params leaf {_dotted(path)!r} is already a DTensor")
        name = _dotted(path)
        placements, tdim, ddim = _placements(name, x, plan, dp, tp, mesh)
        piece = x.detach()
        if tdim is not None:
            piece = plan.split(name, piece, tp_rank, tp_size)
        if ddim is not None:
            _, start, length = _chunk(piece.shape[ddim], dp_size, dp_rank)
            piece = piece.narrow(ddim, start, length)
        local = piece.to(device).contiguous().clone()
        return DTensor.from_local(
            local, mesh, placements, run_check=False, shape=x.shape, stride=x.stride()
        )

    return _rebuild(params, (), one)


def full_params(sharded: Any, plan: Any = None) -> Any:
    """The full tree of plain tensors (``DTensor.full_tensor()`` of every leaf: a collective
    that every rank of the mesh must call). Plain leaves pass through. ``plan`` is accepted
    for older callers and not needed: fused leaves are strided shards whose global value
    is already the natural layout."""
    DTensor, _, _, _ = _dtensor_api()

    def one(path: Path, x: Tensor) -> Tensor:
        return x.full_tensor() if isinstance(x, DTensor) else x

    return _rebuild(sharded, (), one)


# -- the layout of a call ----------------------------------------------------------------------


@dataclass
class _Leaf:
    """One leaf of a unit: where its local shard goes in the flat gather segment and where
    its gathered tensor lies in the unit buffer."""

    path: Path
    ref: Tensor  # the DTensor (or plain tensor) in the sharded tree
    local: Tensor  # its local shard
    dim: int | None  # tensor dim sharded over dp (None: replicated over dp)
    shape: torch.Size  # gathered shape (over dp; the tp-local shape under TP)
    pad_shape: tuple  # the local shard padded to the ceil size along ``dim``
    length: int  # this rank's length along ``dim``
    seg_offset: int = 0  # in the dtype group's flat segment (sharded leaves)
    rep_offset: int = 0  # in the dtype group's replicated part
    buf_offset: int = 0  # in the unit buffer

    @property
    def pad_numel(self) -> int:
        return math.prod(self.pad_shape)


@dataclass
class _Group:
    """The leaves of a unit with one gather dtype: one flat all-gather, one buffer."""

    dtype: torch.dtype
    leaves: list[int]  # indices into the unit's leaves
    seg: int = 0  # flat segment length per rank (sharded leaves)
    rep: int = 0  # replicated leaves' total numel
    size: int = 0  # unit buffer numel


@dataclass
class _Unit:
    index: int
    path: Path
    node: Any  # the subtree of the sharded tree (rebuilt with the gathered leaves)
    leaves: list[_Leaf]
    groups: list[_Group] = field(default_factory=list)


@dataclass
class FSDPStats:
    """What the last call of a :func:`value_and_grad` function did.

    ``gathers``: unit all-gathers started (forward and backward re-gathers);
    ``prefetched``: of those, started ahead of use (prefetch); ``regathers``: gathers in
    the backward; ``reduces``: reduce-scatters; ``peak_units``: the most gathered buffers
    of layer units (all but the root) alive at once, counted by weak references when a
    unit is gathered (a memory measurement: a buffer lives while anything holds a view of
    it, e.g. the loop variable of ``for layer in params["layers"]``); ``peak_inflight``:
    the most prefetches in flight at once; ``units``: the number of units, root
    included."""

    gathers: int = 0
    prefetched: int = 0
    regathers: int = 0
    reduces: int = 0
    peak_units: int = 0
    peak_inflight: int = 0
    units: int = 0


class _Ref:
    """A saved tensor that is a view of a unit buffer, kept as its coordinates."""

    __slots__ = ("unit", "group", "offset", "size", "stride")

    def __init__(self, unit: int, group: int, t: Tensor) -> None:
        self.unit, self.group = unit, group
        self.offset, self.size, self.stride = t.storage_offset(), t.size(), t.stride()


class _Pending:
    """A lazy unit in the view of the tree."""

    __slots__ = ("unit",)

    def __init__(self, unit: int) -> None:
        self.unit = unit


class _Run:
    """The state of one forward + backward: units, gathered buffers, pending collectives."""

    def __init__(
        self,
        sharded: Any,
        units: Sequence[str] | None,
        param_dtype: torch.dtype | None,
        reduce_dtype: torch.dtype | None,
        prefetch: bool,
        tp_plan: Any,
    ) -> None:
        DTensor = _dtensor_api()[0]
        self.param_dtype, self.reduce_dtype, self.prefetch = param_dtype, reduce_dtype, prefetch
        self.tp_plan = tp_plan
        leaves: list[tuple[Path, Tensor]] = []
        _walk(sharded, (), leaves)
        self.sharded = sharded
        meshes = {id(x.device_mesh): x.device_mesh for _, x in leaves if isinstance(x, DTensor)}
        if len(meshes) > 1:
            raise ValueError("all DTensor leaves must live on one DeviceMesh")
        if meshes and len(meshes) == 1 and any(not isinstance(x, DTensor) for _, x in leaves):
            bad = next(_dotted(p) for p, x in leaves if not isinstance(x, DTensor))
            raise TypeError(f"params leaf {bad!r} is a plain tensor among DTensors")
        self.mesh = next(iter(meshes.values()), None)
        self.dp = self.group = None
        self.world, self.rank = 1, 0
        if self.mesh is not None:
            names = self.mesh.mesh_dim_names
            if self.mesh.ndim == 1 and (names is None or names[0] == "dp"):
                self.dp = 0
            elif names is not None and "dp" in names:
                self.dp = names.index("dp")
            if self.dp is not None and self.mesh.size(self.dp) > 1:
                self.group = self.mesh.get_group(self.dp)
                self.world = self.mesh.size(self.dp)
                self.rank = self.mesh.get_local_rank(self.dp)
        self.units = self._make_units(sharded, units)
        self.unit_at = {u.path: u.index for u in self.units}
        self.cache: dict[int, list[Tensor]] = {}  # unit -> gathered leaves (views of buffers)
        self.buffers: dict[int, list[Tensor]] = {}  # unit -> its group buffers
        self.inflight: dict[int, list[tuple[Any, Tensor]]] = {}  # unit -> (work, flat)
        self.storages: dict[int, tuple[int, int]] = {}  # storage ptr -> (unit, group)
        self.alive: list[weakref.ref] = []
        self.order: list[int] = []  # units in forward access order
        self.backward = False
        self.reduced: list[tuple[int, list[tuple[Any, Tensor, Any, Tensor]]]] = []
        self.stats = FSDPStats(units=len(self.units))
        self.tp_mode = None

    # -- units ---------------------------------------------------------------------------------

    def _make_units(self, sharded: Any, units: Sequence[str] | None) -> list[_Unit]:
        wanted = None if units is None else {str(u) for u in units}
        found: list[tuple[Path, Any]] = []
        root: list[tuple[Path, Tensor]] = []

        def visit(node: Any, path: Path, in_list: bool) -> None:
            is_unit = in_list if wanted is None else _dotted(path) in wanted
            if path and is_unit:
                found.append((path, node))
            elif isinstance(node, dict):
                for k, v in node.items():
                    visit(v, (*path, k), False)
            elif isinstance(node, (list, tuple)):
                for i, v in enumerate(node):
                    visit(v, (*path, i), True)
            elif isinstance(node, Tensor):
                root.append((path, node))

        visit(sharded, (), False)
        if wanted is not None:
            missing = wanted - {_dotted(p) for p, _ in found}
            if missing:
                raise ValueError(f"units name no subtree of the params: {sorted(missing)}")
        out = [self._unit(0, (), root, None)]
        for path, node in found:
            leaves: list[tuple[Path, Tensor]] = []
            _walk(node, path, leaves)
            out.append(self._unit(len(out), path, leaves, node))
        return out

    def _unit(self, index: int, path: Path, leaves: list[tuple[Path, Tensor]], node) -> _Unit:
        DTensor, Shard, _, _ = _dtensor_api()
        made = []
        for p, x in leaves:
            if isinstance(x, DTensor):
                local = x.to_local().detach()
                place = x.placements[self.dp] if self.dp is not None else None
                dim = place.dim if isinstance(place, Shard) and self.world > 1 else None
            else:
                local, dim = x.detach(), None
            shape = list(local.shape)
            pad = list(local.shape)
            length = 0
            if dim is not None:
                n = x.shape[dim]  # dp-sharded dims are never tp-split: the global size
                c, _, length = _chunk(n, self.world, self.rank)
                shape[dim], pad[dim] = n, c
            made.append(_Leaf(p, x, local, dim, torch.Size(shape), tuple(pad), length))
        unit = _Unit(index, path, node, made)
        by_dtype: dict[torch.dtype, list[int]] = {}
        for i, leaf in enumerate(made):
            by_dtype.setdefault(self._compute_dtype(leaf.local), []).append(i)
        for dtype, idx in by_dtype.items():
            g = _Group(dtype, idx)
            for i in idx:
                leaf = made[i]
                if leaf.dim is None:
                    leaf.rep_offset, g.rep = g.rep, g.rep + leaf.local.numel()
                else:
                    leaf.seg_offset, g.seg = g.seg, g.seg + leaf.pad_numel
                leaf.buf_offset, g.size = g.size, g.size + math.prod(leaf.shape)
            unit.groups.append(g)
        return unit

    def _compute_dtype(self, x: Tensor) -> torch.dtype:
        if self.param_dtype is not None and x.is_floating_point():
            return self.param_dtype
        return x.dtype

    # -- gathering -----------------------------------------------------------------------------

    def _start(self, u: int) -> list[tuple[Any, Tensor]]:
        """Launch unit u's all-gathers (async); returns (work or None, gathered flat) per group."""
        unit = self.units[u]
        self.stats.gathers += 1
        out = []
        for g in unit.groups:
            seg = torch.zeros(g.seg, dtype=g.dtype, device=self._device(unit))
            for i in g.leaves:
                leaf = unit.leaves[i]
                if leaf.dim is None:
                    continue
                view = seg[leaf.seg_offset : leaf.seg_offset + leaf.pad_numel].view(leaf.pad_shape)
                view.narrow(leaf.dim, 0, leaf.length).copy_(leaf.local)
            if self.world == 1 or g.seg == 0:
                out.append((None, seg))
                continue
            flat = torch.empty(self.world * g.seg, dtype=g.dtype, device=seg.device)
            work = _ALL_GATHER(flat, seg, group=self.group, async_op=True)
            out.append((work, flat))
        return out

    def _device(self, unit: _Unit) -> torch.device:
        return unit.leaves[0].local.device if unit.leaves else torch.device("cpu")

    def _finish(self, u: int, started: list[tuple[Any, Tensor]]) -> list[Tensor]:
        """Wait for unit u's gathers and copy out: its buffers; the leaves as views."""
        unit = self.units[u]
        buffers = []
        leaves: list[Tensor] = [None] * len(unit.leaves)  # type: ignore[list-item]
        for gi, (g, (work, flat)) in enumerate(zip(unit.groups, started)):
            if work is not None:
                work.wait()
            buf = torch.empty(g.size, dtype=g.dtype, device=flat.device)
            rows = flat.view(self.world, g.seg) if g.seg else None
            for i in g.leaves:
                leaf = unit.leaves[i]
                dst = buf[leaf.buf_offset : leaf.buf_offset + math.prod(leaf.shape)]
                dst = dst.view(leaf.shape)
                if leaf.dim is None:
                    dst.copy_(leaf.local)
                else:
                    part = rows[:, leaf.seg_offset : leaf.seg_offset + leaf.pad_numel]
                    part = part.reshape(self.world, *leaf.pad_shape).movedim(0, leaf.dim)
                    merged = list(leaf.pad_shape)
                    merged[leaf.dim] *= self.world
                    part = part.reshape(merged).narrow(leaf.dim, 0, leaf.shape[leaf.dim])
                    dst.copy_(part)
                leaves[i] = dst
            buffers.append(buf)
            self.storages[buf.untyped_storage().data_ptr()] = (u, gi)
            self.alive.append((u, weakref.ref(buf)))
        self.buffers[u] = buffers
        self._count()
        return leaves

    def _count(self) -> None:
        """Peak of the layer units whose gathered buffers are alive (weak references: a
        buffer lives while anything holds a view of it) and of the gathers in flight."""
        self.alive = [(u, w) for u, w in self.alive if w() is not None]
        live = {u for u, w in self.alive if u != 0 and w().untyped_storage().nbytes()}
        self.stats.peak_units = max(self.stats.peak_units, len(live))
        self.stats.peak_inflight = max(self.stats.peak_inflight, len(self.inflight))

    def _gathered(self, u: int) -> list[Tensor]:
        """Unit u's gathered leaves (waiting for its prefetch, or gathering now)."""
        started = self.inflight.pop(u, None)
        if started is None:
            started = self._start(u)
        else:
            self.stats.prefetched += 1
        return self._finish(u, started)

    def _prefetch(self, u: int | None) -> None:
        if u is None or not self.prefetch or u in self.buffers or u in self.inflight:
            return
        self.inflight[u] = self._start(u)
        self._count()

    def _evict_except(self, keep: set[int]) -> None:
        """Drop the gathered units not in ``keep``. In the forward their storage is freed
        at once (``resize_(0)``, as FSDP2 does): the model may still hold references for a
        moment (``zip`` and ``enumerate`` keep their last tuples), and nothing reads them
        again (autograd saved only their coordinates). In the backward the references are
        dropped and autograd frees the views it unpacked when its nodes are done."""
        for u in [u for u in self.buffers if u not in keep]:
            leaves = self.cache.pop(u, None)
            if leaves is not None and self.tp_mode is not None:
                for t in leaves:
                    self.tp_mode.unregister(t)
            for buf in self.buffers.pop(u):
                storage = buf.untyped_storage()
                self.storages.pop(storage.data_ptr(), None)
                if not self.backward and u in self.order:
                    storage.resize_(0)
        for u in [u for u in self.inflight if u not in keep]:
            for work, _ in self.inflight.pop(u):
                if work is not None:
                    work.wait()  # collectives complete in order on every rank

    # -- forward ------------------------------------------------------------------------------

    def get(self, u: int, dummy: Tensor) -> list[Tensor]:
        """Unit u's gathered leaves in the forward (through the autograd gather)."""
        if u not in self.order:
            self.order.append(u)
        if u not in self.cache:
            self._evict_except({0, u} | set(self.inflight))
            leaves = _Gather.apply(self, u, dummy)
            self.cache[u] = list(leaves)
            self._register_tp(u)
        if u != 0:
            self._evict_except({0, u} | set(self.inflight))
        self._prefetch(u + 1 if u + 1 < len(self.units) else None)
        return self.cache[u]

    def _register_tp(self, u: int) -> None:
        if self.tp_mode is None:
            return
        for leaf, t in zip(self.units[u].leaves, self.cache[u]):
            rule = self.tp_plan.rule(_dotted(leaf.path))
            if rule.kind != "replicate":
                self.tp_mode.register(t, rule)

    def value(self, u: int, dummy: Tensor) -> Any:
        unit = self.units[u]
        by_path = dict(zip((leaf.path for leaf in unit.leaves), self.get(u, dummy)))
        return _rebuild(unit.node, unit.path, lambda p, _: by_path[p])

    def view(self, dummy: Tensor) -> Any:
        root = dict(zip((leaf.path for leaf in self.units[0].leaves), self.get(0, dummy)))

        def build(node: Any, path: Path) -> Any:
            if path and path in self.unit_at:
                return _Pending(self.unit_at[path])
            if isinstance(node, dict):
                return _LazyDict(self, dummy, {k: build(v, (*path, k)) for k, v in node.items()})
            if isinstance(node, (list, tuple)):
                return _LazyList(self, dummy, [build(v, (*path, i)) for i, v in enumerate(node)])
            return None if node is None else root[path]

        return build(self.sharded, ())

    # -- saved tensors ---------------------------------------------------------------------------

    def pack(self, t: Tensor) -> Any:
        try:
            hit = self.storages.get(t.untyped_storage().data_ptr())
        except (RuntimeError, NotImplementedError):  # tensors without a storage
            return t
        if hit is None:
            return t
        u, gi = hit
        if t.dtype != self.units[u].groups[gi].dtype:
            return t
        return _Ref(u, gi, t)

    def unpack(self, saved: Any) -> Tensor:
        if not isinstance(saved, _Ref):
            return saved
        u = saved.unit
        if u not in self.buffers:
            self.stats.regathers += 1
            self._evict_except({u} | set(self.inflight))
            self._gathered(u)
        elif self.backward:
            self._evict_except({u} | set(self.inflight))
        if self.backward:
            pos = self.order.index(u) if u in self.order else 0
            self._prefetch(self.order[pos - 1] if pos > 0 else None)
        buf = self.buffers[u][saved.group]
        return buf.as_strided(saved.size, saved.stride, saved.offset)

    # -- backward ------------------------------------------------------------------------------

    def reduce(self, u: int, grads: Sequence[Tensor | None]) -> None:
        """Start unit u's reduce-scatters (async) from its gathered leaves' gradients."""
        unit = self.units[u]
        self.stats.reduces += 1
        started = []
        for g in unit.groups:
            rdtype = self.reduce_dtype or unit.leaves[g.leaves[0]].local.dtype
            dev = self._device(unit)
            full = torch.zeros(self.world, g.seg, dtype=rdtype, device=dev)
            rep = torch.zeros(g.rep, dtype=rdtype, device=dev)
            for i in g.leaves:
                leaf, grad = unit.leaves[i], grads[i]
                if grad is None:
                    continue
                if leaf.dim is None:
                    rep[leaf.rep_offset : leaf.rep_offset + grad.numel()].copy_(grad.reshape(-1))
                    continue
                dst = full[:, leaf.seg_offset : leaf.seg_offset + leaf.pad_numel]
                merged = list(leaf.pad_shape)
                merged[leaf.dim] *= self.world
                padded = torch.zeros(merged, dtype=rdtype, device=dev)
                padded.narrow(leaf.dim, 0, leaf.shape[leaf.dim]).copy_(grad)
                split = list(leaf.pad_shape)
                split[leaf.dim : leaf.dim + 1] = [self.world, leaf.pad_shape[leaf.dim]]
                rows = padded.reshape(split).movedim(leaf.dim, 0)
                dst.copy_(rows.reshape(self.world, leaf.pad_numel))
            if self.world == 1:
                started.append((None, full.view(-1), None, rep))
                continue
            out = torch.empty(g.seg, dtype=rdtype, device=dev)
            w1 = None
            if g.seg:
                w1 = _REDUCE_SCATTER(out, full.view(-1), group=self.group, async_op=True)
            w2 = dist.all_reduce(rep, group=self.group, async_op=True) if g.rep else None
            started.append((w1, out, w2, rep))
        self.reduced.append((u, started))

    def results(self) -> Any:
        """Wait for every reduce-scatter; the gradient tree (DTensors placed as the params)."""
        DTensor = _dtensor_api()[0]
        for u in list(self.inflight):
            for work, _ in self.inflight.pop(u):
                if work is not None:
                    work.wait()
        sums: dict[tuple[int, int], Tensor] = {}
        for u, started in self.reduced:
            unit = self.units[u]
            for g, (w1, out, w2, rep) in zip(unit.groups, started):
                for w in (w1, w2):
                    if w is not None:
                        w.wait()
                for i in g.leaves:
                    leaf = unit.leaves[i]
                    if leaf.dim is None:
                        n = leaf.local.numel()
                        piece = rep[leaf.rep_offset : leaf.rep_offset + n].view(leaf.local.shape)
                    else:
                        piece = out[leaf.seg_offset : leaf.seg_offset + leaf.pad_numel]
                        piece = piece.view(leaf.pad_shape).narrow(leaf.dim, 0, leaf.length)
                    key = (u, i)
                    sums[key] = piece if key not in sums else sums[key] + piece
        by_path: dict[Path, Tensor] = {}
        for unit in self.units:
            for i, leaf in enumerate(unit.leaves):
                got = sums.get((unit.index, i))
                if got is None:
                    grad = torch.zeros_like(leaf.local)
                else:
                    grad = (got / self.world if self.world > 1 else got).to(leaf.local.dtype)
                    grad = grad.contiguous()
                if isinstance(leaf.ref, DTensor):
                    grad = DTensor.from_local(
                        grad, leaf.ref.device_mesh, leaf.ref.placements, run_check=False,
                        shape=leaf.ref.shape, stride=leaf.ref.stride(),
                    )  # fmt: skip
                by_path[leaf.path] = grad
        return _rebuild(self.sharded, (), lambda p, _: by_path[p])


class _Gather(torch.autograd.Function):
    """Unit u's gathered leaves (forward); its gradients reduce-scattered (backward)."""

    @staticmethod
    def forward(ctx, run: _Run, u: int, dummy: Tensor):  # type: ignore[override]
        leaves = run._gathered(u)
        ctx.run, ctx.u = run, u
        ctx.mark_non_differentiable(*[t for t in leaves if not t.is_floating_point()])
        return tuple(leaves)

    @staticmethod
    def backward(ctx, *grads):  # type: ignore[override]
        run: _Run = ctx.run
        run.reduce(ctx.u, grads)
        if run.backward:  # the unit's gradients are complete: its params are done with
            run._evict_except((set(run.buffers) - {ctx.u}) | set(run.inflight))
        return None, None, torch.zeros(0)


class _LazyDict(dict):
    """A dict whose lazy entries gather their unit when read."""

    def __init__(self, run: _Run, dummy: Tensor, items: dict) -> None:
        super().__init__(items)
        self._run, self._dummy = run, dummy

    def _resolve(self, v: Any) -> Any:
        return self._run.value(v.unit, self._dummy) if isinstance(v, _Pending) else v

    def __getitem__(self, k: Any) -> Any:
        return self._resolve(super().__getitem__(k))

    def get(self, k: Any, default: Any = None) -> Any:
        return self[k] if k in self else default

    def __iter__(self):  # not dict's own: dict(view) and {**view} then read __getitem__
        return super().__iter__()

    def values(self):  # type: ignore[override]
        return [self[k] for k in self]

    def items(self):  # type: ignore[override]
        return [(k, self[k]) for k in self]


class _LazyList(list):
    """A list whose lazy elements gather their unit when read (one at a time when iterated)."""

    def __init__(self, run: _Run, dummy: Tensor, items: list) -> None:
        super().__init__(items)
        self._run, self._dummy = run, dummy

    def _resolve(self, v: Any) -> Any:
        return self._run.value(v.unit, self._dummy) if isinstance(v, _Pending) else v

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self._resolve(v) for v in super().__getitem__(i)]
        return self._resolve(super().__getitem__(i))

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]


# -- value_and_grad ----------------------------------------------------------------------------


def value_and_grad(
    loss_fn: Callable[..., Tensor],
    *,
    units: Sequence[str] | None = None,
    param_dtype: torch.dtype | None = None,
    reduce_dtype: torch.dtype | None = None,
    prefetch: bool = True,
    plan: Any = None,
) -> Callable[..., tuple[Tensor, Any]]:
    """``fn(sharded, *args, **kwargs) -> (loss, grads)`` for a loss on a sharded params tree.

    Args:
        loss_fn: ``loss_fn(params, *args, **kwargs) -> 0-d tensor``, any pure ptfunc loss
            (the mean over this rank's batch). It gets a lazy view of the params (module
            docstring); it must read the layers through the tree (``for layer in
            params["layers"]``), not hold all of them at once.
        units: dotted paths of the subtrees that are gathered as one unit each (e.g.
            ``["encoder.layer.0", ...]``); None: every element of every list in the tree.
            The leaves outside every unit form the root unit, gathered first.
        param_dtype: gather and compute in this floating dtype (``torch.bfloat16``) from the
            shards' dtype (fp32 master params); None: the shards' dtype.
        reduce_dtype: dtype of the gradient reduce-scatter; None: the shards' dtype. The
            gradients are returned in the shards' dtype.
        prefetch: gather the next unit (forward) / the previous one (backward) while the
            current one computes.
        plan: the ``TPPlan`` of a ``("dp", "tp")`` mesh: the gathered leaves are the
            tp-local tensors; they are registered in ``tensor_parallel.current()`` (the
            innermost active ``TPMode``; one is entered over the mesh's tp group when none
            is active).

    Returns:
        ``fn``: ``(loss, grads)``, the loss detached (``loss_fn``'s dtype) and ``grads`` a
        tree like ``sharded`` (DTensors with the params' placements, the shards' dtype)
        holding the gradient averaged over the dp ranks. ``fn.stats`` is the
        :class:`FSDPStats` of the last call.

    Plain autograd (``torch.autograd.grad``) runs the backward; do not call ``fn`` under
    ``torch.func`` transforms (they refuse saved-tensor hooks).
    """
    if param_dtype is not None and not param_dtype.is_floating_point:
        raise TypeError(f"param_dtype must be a floating dtype, got {param_dtype}")
    if reduce_dtype is not None and not reduce_dtype.is_floating_point:
        raise TypeError(f"reduce_dtype must be a floating dtype, got {reduce_dtype}")

    def fn(sharded: Any, *args: Any, **kwargs: Any) -> tuple[Tensor, Any]:
        run = _Run(sharded, units, param_dtype, reduce_dtype, prefetch, plan)
        dummy = torch.zeros(0, requires_grad=True)
        with _tp_context(run, plan) as mode:
            run.tp_mode = mode
            with (
                torch.enable_grad(),
                torch.autograd.graph.saved_tensors_hooks(run.pack, run.unpack),
            ):
                view = run.view(dummy)
                loss = loss_fn(view, *args, **kwargs)
                del view
            if not isinstance(loss, Tensor) or loss.dim() != 0:
                raise TypeError("loss_fn must return a 0-d tensor")
            run.backward = True  # the last layer and the root stay gathered for its start
            torch.autograd.grad(loss, [dummy], allow_unused=True)
            grads = run.results()
            run._evict_except(set())
        fn.stats = run.stats
        return loss.detach(), grads

    fn.stats = FSDPStats()
    return fn


class _NoMode:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


class _ExistingMode(_NoMode):
    def __init__(self, mode: Any) -> None:
        self.mode = mode

    def __enter__(self):
        return self.mode


def _tp_context(run: _Run, plan: Any):
    """The TPMode the gathered tp-local leaves are registered in (None without a plan)."""
    if plan is None:
        return _NoMode()
    from . import tensor_parallel

    current = tensor_parallel.current()
    if current is not None:
        return _ExistingMode(current)
    names = run.mesh.mesh_dim_names if run.mesh is not None else None
    if not names or "tp" not in names:
        raise ValueError("value_and_grad(plan=...) needs params sharded on a mesh with a 'tp' dim")
    return tensor_parallel.TPMode(plan, run.mesh.get_group(names.index("tp")))
