"""Checkpoints in the ``torch.distributed.checkpoint`` (DCP) format, re-loadable on any world size.

:func:`save` writes a train state (:class:`~ptfunc.train_state.TrainState`: params,
optimizer state, step, key, extra) or any tree of tensors as a DCP directory (``.metadata``
plus one ``__<rank>_0.distcp`` file per rank); :func:`load` reads it back into the
structure of a ``like`` tree, in one process (no process group needed) or on any number
of ranks; :func:`consolidate` returns a plain ``{dotted.name: tensor}`` state dict.

How a tree is stored: the DCP state dict is flat, keyed by dotted names
(``params.encoder.layer.0.attention.self.query.weight``, ``opt_state.1.mu.<param>``,
``key``, ``step``). Every params leaf, and every optimizer-state leaf that mirrors one (as
in :mod:`.checkpoint`: its name ends with the param's name and its shape is the param's),
is stored **flattened to 1-D** with its full shape recorded, because a sharded run
(:mod:`.sharded`) cuts each flattened leaf into ``ceil(numel / world)`` pieces. Each rank
of a sharded run saves its piece, without the padding, as a
:class:`~torch.distributed.tensor.DTensor` sharded on dim 0 of a 1-D mesh (``torch.chunk``
splits a length like :class:`~ptfunc.distributed.ShardLayout` does), and DCP reads back
whatever piece another layout asks for. So a checkpoint written by ``N`` ranks loads on
``M`` ranks (pass that run's ``layout``) and in one process (full trees); leaves that do
not mirror a param (step counts, learning rates, the key) are the same on every rank and
written once. Leaves that are DTensors (a tree from :func:`ptfunc.distributed.shard`: any
placements on any mesh) are stored as themselves, in their full shape, and DCP reshards
them on load into the DTensors of the ``like`` tree, whatever their mesh and placements.
Across the two forms a rank reads the whole entry and keeps its part: flat pieces load
into DTensors, DTensors into flat pieces or full trees. The step, the ``extra`` JSON
values and a description of the entries are stored as tensors (the description as UTF-8
JSON bytes), not pickles.

A save is atomic: the ranks write into a staging directory beside ``path`` which rank 0
renames to ``path`` once every rank has written (a killed save leaves no ``path``; the next
save there removes the staging leftovers). Save each checkpoint to its own directory
(``ckpt/step-100``): an existing ``path`` is refused. DCP's own ``.metadata`` file is a
pickle, which :func:`load` reads: load only checkpoints you trust.

Example (one process; under ``torchrun`` pass ``layout=`` for sharded params):
    >>> import tempfile, pathlib, torch
    >>> from ptfunc import distributed as ptd, optim, random
    >>> from ptfunc.train_state import TrainState
    >>> params = {"w": torch.arange(6.0).view(2, 3)}
    >>> opt = optim.adamw(1e-2)
    >>> state = TrainState(params, opt.init(params), 7, random.key(3), {"epoch": 1})
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "step-7"
    >>> _ = ptd.dcp.save(path, state)
    >>> back = ptd.dcp.load(path, state)
    >>> back.step, back.extra, torch.equal(back.params["w"], params["w"])
    (7, {'epoch': 1}, True)
    >>> ptd.dcp.consolidate(path)["params.w"].shape
    torch.Size([2, 3])
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.distributed as dist
from torch import Tensor

from .._atomic import new_directory
from ..errors import CheckpointError
from ..train_state import TrainState, _kinds, _subtree
from ..tree import from_flat_dict, to_flat_dict
from ._comm import Group, rank, world_size
from ._strided import strided, unfold, unfolded_placements, unfolded_shape
from .checkpoint import _param_for
from .sharded import ShardLayout

__all__ = ["save", "save_async", "PendingSave", "load", "consolidate", "from_sharded", "FORMAT"]

FORMAT = "ptfunc-dcp/1"
"""The ``format`` recorded in every checkpoint's description entry."""
_META = "ptfunc.meta"  # uint8 tensor: UTF-8 JSON describing the entries


# -- building the flat DCP state dict -----------------------------------------------------


def _flattened_names(state: Any, layout: ShardLayout | None) -> dict[str, tuple[int, ...]]:
    """``{dcp name: full shape}`` of the entries stored flattened (params and their mirrors)."""
    if isinstance(state, TrainState):
        params, prefix = state.params, "params."
    else:
        params, prefix = state, ""
    sharded = layout is not None
    if layout is None:
        layout = ShardLayout.of(params, 1)
    dtensors = {name for name, x in to_flat_dict(params).items() if _is_dtensor(x)}
    out = {prefix + leaf.name: leaf.shape for leaf in layout.leaves if leaf.name not in dtensors}
    if isinstance(state, TrainState):
        for name, x in to_flat_dict(state.opt_state).items():
            if isinstance(x, Tensor) and not _is_dtensor(x):
                leaf = _param_for(name, tuple(x.shape), layout, full=not sharded)
                if leaf is not None:
                    out[f"opt_state.{name}"] = leaf.shape
    return out


def _is_dtensor(x: Any) -> bool:
    """True for a :class:`~torch.distributed.tensor.DTensor` (stored as itself, unflattened)."""
    if not dist.is_available():
        return False
    from torch.distributed.tensor import DTensor

    return isinstance(x, DTensor)


def _local_piece(full: Tensor, like: Any) -> Any:
    """``like``'s (a DTensor's) piece of the whole tensor ``full``, as a DTensor like it."""
    from torch.distributed.tensor import DTensor
    from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

    placements = like.placements
    found = strided(like)
    if found is not None:  # a fused leaf: its piece is a box of the unfolded tensor
        full = full.view(unfolded_shape(full.shape, *found))
        placements = unfolded_placements(placements, found[0])
    shape, offset = compute_local_shape_and_global_offset(full.shape, like.device_mesh, placements)
    index = tuple(slice(o, o + n) for o, n in zip(offset, shape))
    local = full[index].to(like.device).contiguous()
    if found is not None:
        local = local.view(like.to_local().shape)
    return DTensor.from_local(
        local, like.device_mesh, like.placements, run_check=False, shape=like.shape,
        stride=like.stride(),
    )  # fmt: skip


def _entries(state: Any) -> dict[str, Any]:
    """The tree's leaves under their DCP names (``params.``/``opt_state.`` for a train state)."""
    if not isinstance(state, TrainState):
        flat = dict(to_flat_dict(state))
        if _META in flat:
            raise ValueError(f"{_META!r} is reserved for the checkpoint's description")
        return flat
    flat: dict[str, Any] = {}
    for prefix, tree in (("params", state.params), ("opt_state", state.opt_state)):
        for name, value in to_flat_dict(tree).items():
            flat[f"{prefix}.{name}" if name else prefix] = value
    return flat


def _check_layout(state: Any, layout: ShardLayout | None, world: int) -> None:
    if layout is None:
        return
    params = state.params if isinstance(state, TrainState) else state
    if any(_is_dtensor(x) for x in to_flat_dict(params).values()):
        raise ValueError(
            "layout= is for the flat pieces of ptfunc.distributed.shard_params; params that "
            "are DTensors (ptfunc.distributed.shard) carry their own placements: pass no layout"
        )
    if layout.world_size != world:
        raise ValueError(
            f"the layout cuts leaves into {layout.world_size} pieces but the group has "
            f"{world} processes"
        )
    params = state.params if isinstance(state, TrainState) else state
    names = to_flat_dict(params)
    if len(names) != len(layout.leaves):
        raise ValueError(
            f"the params have {len(names)} leaves, the layout {len(layout.leaves)}; "
            "was the layout made from another model?"
        )
    for leaf in layout.leaves:
        x = names.get(leaf.name)
        if x is None or tuple(x.shape) != (leaf.shard_numel,):
            got = "no such leaf" if x is None else tuple(x.shape)
            raise ValueError(
                f"params leaf {leaf.name}: expected its piece ({leaf.shard_numel},), got {got}"
            )


def _mesh(group: Group, device: torch.device) -> Any:
    from torch.distributed.device_mesh import DeviceMesh

    return DeviceMesh.from_group(group or dist.group.WORLD, device.type)


def _piece(x: Tensor, numel: int, mesh: Any, me: int, world: int) -> Any:
    """This rank's piece of a flattened leaf of ``numel`` elements, as a sharded DTensor."""
    from torch.distributed.tensor import DTensor, Shard

    size = x.numel()  # == ceil(numel / world), padding included
    valid = max(0, min(size, numel - me * size))
    return DTensor.from_local(
        x.reshape(-1)[:valid], mesh, [Shard(0)], run_check=False, shape=(numel,), stride=(1,)
    )


def _state_dict(
    state: Any, layout: ShardLayout | None, group: Group, meta: dict[str, Any]
) -> dict[str, Any]:
    """The flat DCP state dict of ``state`` (pieces as DTensors where ``layout`` is given)."""
    world, me = world_size(group), rank(group)
    flattened = _flattened_names(state, layout)
    entries = _entries(state)
    mesh = None
    out: dict[str, Any] = {}
    unfolded: dict[str, dict[str, Any]] = {}
    for name, x in entries.items():
        if not isinstance(x, Tensor):
            raise TypeError(f"{name}: expected a tensor leaf, got {type(x).__name__}")
        if name not in flattened and strided(x) is not None:  # a fused tp leaf
            dim, blocks = strided(x)
            unfolded[name] = {"dim": dim, "blocks": blocks, "shape": list(x.shape)}
            out[name] = unfold(x)
        elif name not in flattened:
            out[name] = x  # DTensors too: DCP stores their pieces and reshards them on load
        elif layout is None or world == 1:
            out[name] = x.reshape(-1)
        else:
            if mesh is None:
                mesh = _mesh(group, x.device)
            out[name] = _piece(x, math.prod(flattened[name]), mesh, me, world)
    if isinstance(state, TrainState):
        out["key"] = state.key
        out["step"] = torch.tensor(int(state.step), dtype=torch.int64)
    meta |= {
        "format": FORMAT,
        "kind": "train_state" if isinstance(state, TrainState) else "tree",
        "shapes": {k: list(v) for k, v in flattened.items()},
        "unfolded": unfolded,  # fused tp leaves, stored as (..., blocks, n / blocks, ...)
    }
    out[_META] = torch.frombuffer(bytearray(json.dumps(meta).encode()), dtype=torch.uint8)
    return out


# -- save -----------------------------------------------------------------------------------


def _broadcast(obj: Any, group: Group) -> Any:
    box = [obj]
    src = 0 if group is None else dist.get_global_rank(group, 0)
    dist.broadcast_object_list(box, src=src, group=group)
    return box[0]


def save(
    path: str | os.PathLike[str],
    state: Any,
    *,
    layout: ShardLayout | None = None,
    process_group: Group = None,
    _kinds_known: bool = True,
) -> Path:
    """Write ``state`` (a :class:`~ptfunc.train_state.TrainState` or a tree of tensors) to
    the new directory ``path`` in DCP format, atomically.

    Call it on every rank of ``process_group`` at once (it synchronises them); without a
    process group it runs as one process. ``layout`` says that ``state``'s params are this
    rank's pieces of a sharded run (:func:`~ptfunc.distributed.shard_params` output and
    ``opt.init`` of it); without it the params are the full tree (the same on every rank,
    written once).

    Returns:
        ``path``.

    Raises:
        FileExistsError: ``path`` exists (on every rank).
        ValueError: ``layout`` does not fit the params or the group.
    """
    begun = _begin_save(Path(path), state, layout, process_group, _kinds_known)
    import torch.distributed.checkpoint as dcp

    try:
        with _quiet():
            dcp.save(
                begun.state_dict,
                storage_writer=dcp.FileSystemWriter(begun.staging),
                process_group=process_group,
                no_dist=begun.world == 1,
            )
    except BaseException as err:
        begun.stack.__exit__(type(err), err, err.__traceback__)  # rank 0: remove the staging
        raise
    return _finish_save(begun, process_group)


class _Begun(NamedTuple):
    """A save between its start (staging directory made, state dict built) and its end."""

    path: Path
    state_dict: dict[str, Any]
    staging: str
    stack: contextlib.ExitStack  # rank 0: leaving it renames the staging directory to path
    world: int


def _begin_save(
    path: Path, state: Any, layout: ShardLayout | None, group: Group, kinds_known: bool
) -> _Begun:
    """Check ``state``, build its DCP state dict, and (rank 0) make the staging directory."""
    world, me = world_size(group), rank(group)
    _check_layout(state, layout, world)
    meta: dict[str, Any] = {}
    if isinstance(state, TrainState):
        if not isinstance(state.key, Tensor):
            raise TypeError(
                f"the train state's key must be a tensor, got {type(state.key).__name__}"
            )
        meta["extra"] = state.extra or {}
        meta["opt_state_kinds"] = _kinds(state.opt_state) if kinds_known else None
        json.dumps(meta["extra"])  # not JSON: fail before writing anything
    state_dict = _state_dict(state, layout, group, meta)
    stack = contextlib.ExitStack()
    staging, error = None, None
    if me == 0:
        try:
            if os.path.lexists(path):
                raise FileExistsError(
                    f"{path} exists; save each checkpoint to a new directory (step-N)"
                )
            staging = str(stack.enter_context(new_directory(path)))
        except OSError as err:
            error = (type(err).__name__, str(err))
    if world > 1:
        staging, error = _broadcast((staging, error), group)
    _raise(error)
    return _Begun(path, state_dict, staging, stack, world)


def _finish_save(begun: _Begun, group: Group) -> Path:
    """After every rank wrote its files: rank 0 renames the staging directory to the path;
    an error there is raised on every rank."""
    if begun.world > 1:
        dist.barrier(group=group)  # every rank has written
    error = None
    try:
        begun.stack.close()
    except OSError as err:
        if begun.world == 1:
            raise
        error = (type(err).__name__, str(err))  # rank 0's rename failed: tell the others
    if begun.world > 1:
        _raise(_broadcast(error, group))  # returns once ``path`` is in place
    return begun.path


class PendingSave:
    """A checkpoint being written in the background by :func:`save_async`.

    Call :meth:`wait` on every rank (a collective) before the next save and before the
    process ends: it waits for this rank's files, then rank 0 renames the staging directory
    to the checkpoint's path. Until then ``path`` does not exist.
    """

    def __init__(self, begun: _Begun, future: Any, group: Group) -> None:
        self._begun, self._future, self._group = begun, future, group
        self._result: Path | None = None

    @property
    def path(self) -> Path:
        """The checkpoint's directory (there once :meth:`wait` returned)."""
        return self._begun.path

    def done(self) -> bool:
        """True when this rank's files are written (no collective; :meth:`wait` still due)."""
        return self._result is not None or self._future.done()

    def wait(self) -> Path:
        """Block until the checkpoint is complete on every rank; returns its path.

        Raises:
            CheckpointError: this rank's background write failed (the staging directory is
                removed; earlier checkpoints are untouched).
        """
        if self._result is not None:
            return self._result
        try:
            self._future.result()
        except BaseException as err:
            self._begun.stack.__exit__(type(err), err, err.__traceback__)
            raise CheckpointError(
                f"{self.path}: the background save failed: {_short(err)}"
            ) from err
        self._result = _finish_save(self._begun, self._group)
        return self._result


_SAVE_GROUPS: dict[Any, Any] = {}


def _save_group(group: Group) -> Group:
    """A gloo group of the same ranks, only for background saves (their collectives run in
    DCP's writer thread and must not interleave with the training's on ``group``)."""
    if not dist.is_initialized() or world_size(group) == 1:
        return group
    key = group or dist.group.WORLD
    if key not in _SAVE_GROUPS:
        _SAVE_GROUPS[key] = dist.new_group(dist.get_process_group_ranks(key), backend="gloo")
    return _SAVE_GROUPS[key]


def save_async(
    path: str | os.PathLike[str],
    state: Any,
    *,
    layout: ShardLayout | None = None,
    process_group: Group = None,
) -> PendingSave:
    """:func:`save` in the background: returns once ``state`` is copied (training may go on
    and change the params in place); the files are written by a thread.

    Call it on every rank at once, then ``.wait()`` on every rank before the next save (the
    first call also makes a gloo group of the same ranks, collectively, for the saves'
    own messages). The atomicity of :func:`save` holds: ``path`` appears only in ``wait``.

    Returns:
        A :class:`PendingSave`.
    """
    import torch.distributed.checkpoint as dcp

    save_group = _save_group(process_group)
    begun = _begin_save(Path(path), state, layout, process_group, True)
    try:
        with _quiet():
            future = dcp.async_save(
                begun.state_dict,
                storage_writer=dcp.FileSystemWriter(begun.staging),
                process_group=save_group,
                no_dist=begun.world == 1,
            )
    except BaseException as err:
        begun.stack.__exit__(type(err), err, err.__traceback__)
        raise
    return PendingSave(begun, future, save_group)


def _raise(error: tuple[str, str] | None) -> None:
    """Raise on every rank the ``(kind, message)`` of an ``OSError`` rank 0 met."""
    if error is not None:
        kind, message = error
        raise (FileExistsError if kind == "FileExistsError" else OSError)(message)


# -- load -----------------------------------------------------------------------------------


def _read_metadata(path: Path) -> Any:
    import torch.distributed.checkpoint as dcp

    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such checkpoint directory")
    if not (path / ".metadata").is_file():
        raise CheckpointError(
            f"{path} is not a complete DCP checkpoint (no .metadata: an interrupted save, "
            "or another kind of directory)"
        )
    try:
        return dcp.FileSystemReader(str(path)).read_metadata()
    except Exception as err:
        raise CheckpointError(f"{path}: cannot read its .metadata ({err})") from err


def _dcp_load(path: Path, state_dict: dict[str, Any], group: Group, no_dist: bool) -> None:
    import torch.distributed.checkpoint as dcp

    try:
        with _quiet():
            dcp.load(
                state_dict,
                storage_reader=dcp.FileSystemReader(str(path)),
                process_group=group,
                no_dist=no_dist,
            )
    except (Exception, dcp.CheckpointException) as err:  # the latter is a BaseException
        raise CheckpointError(
            f"{path}: reading the checkpoint failed (a damaged or incomplete checkpoint?): "
            f"{_short(err)}"
        ) from err


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """DCP warns that it runs as one process whenever ``no_dist`` is set: that is meant here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        yield


def _short(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[-1][:500] if text else type(err).__name__


def _read_meta(path: Path, metadata: Any) -> dict[str, Any]:
    info = metadata.state_dict_metadata.get(_META)
    if info is None or not hasattr(info, "size"):
        raise CheckpointError(f"{path} is a DCP checkpoint but was not written by ptfunc")
    buf = torch.empty(tuple(info.size), dtype=torch.uint8)
    _dcp_load(path, {_META: buf}, None, no_dist=True)
    try:
        meta = json.loads(bytes(buf.tolist()).decode())
    except ValueError as err:
        raise CheckpointError(f"{path}: its description entry is damaged ({err})") from err
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: format {meta.get('format')!r}, expected {FORMAT!r}")
    return meta


def _dtype_of(info: Any) -> torch.dtype:
    return info.properties.dtype


def _problems(
    path: Path, want: dict[str, tuple[tuple[int, ...], torch.dtype]], metadata: Any
) -> None:
    saved = {k: v for k, v in metadata.state_dict_metadata.items() if hasattr(v, "size")}
    saved.pop(_META, None)
    problems = []
    for name in sorted(set(saved) | set(want)):
        if name not in want:
            problems.append(f"{name}: in the checkpoint, not in the tree being loaded")
        elif name not in saved:
            problems.append(f"{name}: in the tree being loaded, not in the checkpoint")
        else:
            got = (tuple(saved[name].size), _dtype_of(saved[name]))
            if got[0] != want[name][0] or got[1] != want[name][1]:
                problems.append(
                    f"{name}: checkpoint {got[0]} {got[1]} vs tree {want[name][0]} {want[name][1]}"
                )
    if problems:
        shown = problems[:12]
        if len(problems) > len(shown):
            shown.append(f"... and {len(problems) - len(shown)} more")
        raise CheckpointError(
            f"{path} does not fit the tree being loaded (another model or optimizer?):\n  "
            + "\n  ".join(shown)
        )


def load(
    path: str | os.PathLike[str],
    like: Any,
    *,
    layout: ShardLayout | None = None,
    process_group: Group = None,
) -> Any:
    """Read a checkpoint written by :func:`save` on any number of ranks into ``like``'s structure.

    ``like`` is a :class:`~ptfunc.train_state.TrainState` (only its params and optimizer
    state are looked at, e.g. ``TrainState(params, opt.init(params), 0, None, {})``) or a
    tree, as given to :func:`save`. Without ``layout`` its params are the full tree and come
    back whole (one process, or every rank); with ``layout`` they are this rank's pieces
    of a sharded run over ``process_group`` (e.g. ``shard_params`` output and ``opt.init``
    of it), and each rank reads its pieces. Call it on every rank at once.

    Returns:
        A ``TrainState`` (params, opt_state, step, key, extra) or the tree.

    Raises:
        FileNotFoundError: no directory at ``path``.
        CheckpointError: (a ``ValueError``) the directory is not a complete ptfunc DCP
            checkpoint, its files are damaged, or it does not fit ``like`` (the names,
            shapes and dtypes that differ are listed).
    """
    path = Path(path)
    world, me = world_size(process_group), rank(process_group)
    metadata = _read_metadata(path)
    meta = _read_meta(path, metadata)
    is_state = isinstance(like, TrainState)
    if meta["kind"] != ("train_state" if is_state else "tree"):
        raise CheckpointError(
            f"{path} holds a {meta['kind'].replace('_', ' ')}, the tree being loaded is "
            + ("a train state" if is_state else "not a TrainState")
        )
    known = meta.get("opt_state_kinds") is not None  # None: converted without the classes
    if is_state and known and meta["opt_state_kinds"] != _kinds(like.opt_state):
        raise CheckpointError(
            f"{path}: the optimizer state's kinds differ: checkpoint "
            f"{meta.get('opt_state_kinds')}, loading into {_kinds(like.opt_state)}"
        )
    _check_layout(like, layout, world)
    flattened = _flattened_names(like, layout)
    entries = _entries(like)
    saved_flat = {k: tuple(v) for k, v in meta["shapes"].items()}  # stored flattened
    full_shapes = {
        name: tuple(flattened[name]) if name in flattened else tuple(x.shape)
        for name, x in entries.items()
    }
    unfolded = meta.get("unfolded", {})
    want = {}
    for name, x in entries.items():
        shape = full_shapes[name]
        if name in unfolded and list(shape) == unfolded[name]["shape"]:
            shape = unfolded_shape(shape, unfolded[name]["dim"], unfolded[name]["blocks"])
        want[name] = ((math.prod(shape),) if name in saved_flat else shape, x.dtype)
    if is_state:
        for name in ("key", "step"):
            info = metadata.state_dict_metadata.get(name)
            if info is None or not hasattr(info, "size"):
                raise CheckpointError(f"{path}: no {name!r} entry (a damaged checkpoint?)")
            want[name] = (tuple(info.size), _dtype_of(info))
    _problems(path, want, metadata)
    for name, shape in saved_flat.items():
        if name in full_shapes and full_shapes[name] != shape:
            raise CheckpointError(
                f"{path}: {name} was saved with shape {shape}, the tree being loaded has "
                f"{full_shapes[name]}"
            )

    sharded = layout is not None and world > 1
    mesh = None
    targets: dict[str, Any] = {}
    filled: dict[str, Any] = {}  # fused DTensor leaves DCP fills through their unfolded view
    for name, (shape, dtype) in want.items():
        x = entries.get(name)
        device = x.device if x is not None else torch.device("cpu")
        fused = strided(x)
        if name in unfolded and fused == (unfolded[name]["dim"], unfolded[name]["blocks"]):
            filled[name] = type(x).from_local(
                torch.zeros_like(x.to_local()).contiguous(), x.device_mesh, x.placements,
                run_check=False, shape=x.shape, stride=x.stride(),
            )  # fmt: skip
            targets[name] = unfold(filled[name])
        elif fused is not None or name in unfolded:  # read whole; cut below
            targets[name] = torch.empty(shape, dtype=dtype, device=device)
        elif _is_dtensor(x) and name not in saved_flat:  # DCP reshards DTensor to DTensor
            local = torch.zeros_like(x.to_local())
            targets[name] = type(x).from_local(
                local, x.device_mesh, x.placements, run_check=False, shape=x.shape,
                stride=x.stride(),
            )  # fmt: skip
        elif sharded and name in flattened and name in saved_flat:
            if mesh is None:
                mesh = _mesh(process_group, device)
            local = torch.zeros(x.numel(), dtype=dtype, device=device)
            targets[name] = _piece(local, shape[0], mesh, me, world)
        else:  # read whole, in the stored form; cut below where the tree wants a piece
            targets[name] = torch.empty(shape, dtype=dtype, device=device)
    _dcp_load(path, targets, process_group, no_dist=world == 1)

    out: dict[str, Any] = {}
    for name, t in targets.items():
        x = entries.get(name)
        if name in filled:
            out[name] = filled[name]
            continue
        if name in unfolded:  # whole, unfolded: a view of the natural tensor
            t = t.view(full_shapes[name])
        if _is_dtensor(x):
            out[name] = t if _is_dtensor(t) else _local_piece(t.view(x.shape), x)
        elif sharded and name in flattened:
            local = t.to_local() if name in saved_flat else _flat_piece(t, x.numel(), me)
            piece = torch.zeros(x.numel(), dtype=local.dtype, device=local.device)
            piece[: local.numel()] = local
            out[name] = piece
        elif name in flattened and layout is None:
            out[name] = t.view(flattened[name])
        elif name in flattened:  # a layout of one piece: the flattened leaf
            out[name] = t.reshape(-1)
        else:
            out[name] = t
    if not is_state:
        return from_flat_dict(out, like=like)
    return TrainState(
        from_flat_dict(_subtree(out, "params"), like=like.params),
        from_flat_dict(_subtree(out, "opt_state"), like=like.opt_state),
        int(out["step"]),
        out["key"],
        meta.get("extra", {}),
    )


def from_sharded(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    params_like: Any = None,
    opt_state_like: Any = None,
) -> Path:
    """Convert a per-rank checkpoint of :func:`~ptfunc.distributed.save_sharded` (the
    ``index.json`` format, readable only on its own world size) into a DCP checkpoint at
    the new directory ``dst``, in one process.

    The result is a full train state (params, optimizer state, step, key, extra) that
    :func:`load` reads on any number of ranks. Without ``opt_state_like`` the optimizer
    state's NamedTuple classes are unknown (the old index does not record them): the
    checkpoint then loads into any optimizer state with the same entry names.

    Raises:
        FileNotFoundError / ValueError: as :func:`~ptfunc.distributed.consolidate_train_state`;
        FileExistsError: ``dst`` exists.

    Example:
        ``python -m ptfunc convert-sharded runs/zero/checkpoints/step-200 runs/dcp/step-200``
    """
    from .checkpoint import consolidate_train_state

    state = consolidate_train_state(src, params_like, opt_state_like)
    return save(dst, state, _kinds_known=opt_state_like is not None)


def _flat_piece(full: Tensor, size: int, me: int) -> Tensor:
    """Rank ``me``'s elements of the flattened ``full`` in pieces of ``size`` (no padding)."""
    flat = full.reshape(-1)
    return flat[me * size : (me + 1) * size]


def consolidate(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """Every entry of a checkpoint, whole and in its full shape, as ``{dotted.name: tensor}``.

    Runs in one process, without a process group, whatever the number of ranks that
    wrote it. A train state's entries are named ``params.<name>``, ``opt_state.<name>``,
    ``key`` and ``step``; a tree's by its own names. The params of a train state, for
    ``ptfunc.io.save`` or ``ptfunc.io.from_torch_state_dict``::

        flat = consolidate(path)
        params = {k[len("params."):]: v for k, v in flat.items() if k.startswith("params.")}

    Raises:
        FileNotFoundError / CheckpointError: as :func:`load`.
    """
    path = Path(path)
    metadata = _read_metadata(path)
    meta = _read_meta(path, metadata)
    targets = {
        name: torch.empty(tuple(info.size), dtype=_dtype_of(info))
        for name, info in metadata.state_dict_metadata.items()
        if hasattr(info, "size") and name != _META
    }
    _dcp_load(path, targets, None, no_dist=True)
    shapes = meta["shapes"] | {k: v["shape"] for k, v in meta.get("unfolded", {}).items()}
    return {k: v.view(shapes[k]) if k in shapes else v for k, v in targets.items()}
