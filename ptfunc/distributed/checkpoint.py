"""Sharded checkpoints: each rank writes its pieces; one process can put them back together.

A checkpoint is a directory::

    index.json                      world size, step, save id, the layout of every leaf
    rank0-of-2.safetensors          rank 0's params pieces, optimizer-state pieces, key
    rank1-of-2.safetensors          rank 1's ...

Each file is written atomically (temporary file, then rename) and carries the save's
random id; ``index.json`` is written by rank 0 last, after every rank has written. A save
that crashes half-way leaves files of two saves, which :func:`load_sharded` detects (the
ids differ) and refuses, rather than resuming from a mix. Write each save to its own
directory (``ckpt/step-100``) to keep the previous one intact. All ranks must see the
same filesystem (one node, or a shared one across nodes).

:func:`load_sharded` resumes on the same world size; :func:`consolidate` (params) and
:func:`consolidate_train_state` (params, optimizer state, step, key) run in one process,
without ``torch.distributed``, and return full trees; :func:`shard_like` cuts such a full
optimizer state for another world size.

Which optimizer-state leaves are sharded: a leaf whose dotted name ends with a param's
name (``1.mu.encoder.layer.0.attention.self.query.weight``) and whose shape is that
param's piece (or full shape, in :func:`shard_like`); the others (step counts, learning
rates) are the same on every rank and stored whole.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from .._atomic import write_text
from ..io.safetensors_io import save
from ..random import Key
from ..train_state import TrainState, _subtree
from ..tree import from_flat_dict, map_with_names, to_flat_dict
from ._comm import Group, rank, world_size
from .sharded import LeafLayout, ShardLayout, _padded

__all__ = [
    "save_sharded",
    "load_sharded",
    "consolidate",
    "consolidate_train_state",
    "shard_like",
    "read_index",
    "INDEX_NAME",
]

INDEX_NAME = "index.json"
"""Name of the JSON file that describes a sharded checkpoint (world size, layout, files)."""
FORMAT = "ptfunc-sharded/1"


def _shard_file(r: int, world: int) -> str:
    return f"rank{r}-of-{world}.safetensors"


def _param_for(
    name: str, shape: tuple[int, ...], layout: ShardLayout, full: bool
) -> LeafLayout | None:
    """The param an optimizer-state leaf belongs to (longest matching name), or None."""
    best: LeafLayout | None = None
    for leaf in layout.leaves:
        if name == leaf.name or name.endswith("." + leaf.name):
            want = leaf.shape if full else (leaf.shard_numel,)
            if tuple(shape) == tuple(want) and (best is None or len(leaf.name) > len(best.name)):
                best = leaf
    return best


def _state_index(opt_state: Any, layout: ShardLayout) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, x in to_flat_dict(opt_state).items():
        leaf = _param_for(name, tuple(x.shape), layout, full=False)
        out[name] = (
            {"param": leaf.name}
            if leaf is not None
            else {"shape": list(x.shape), "dtype": str(x.dtype).removeprefix("torch.")}
        )
    return out


def save_sharded(
    directory: str | os.PathLike[str],
    shards: Any,
    opt_state: Any,
    layout: ShardLayout,
    *,
    step: int,
    key: Key,
    extra: dict[str, Any] | None = None,
    group: Group = None,
) -> Path:
    """Every rank writes its pieces to ``directory``; rank 0 then writes ``index.json``.

    Call it on all ranks at once (it synchronises them). ``shards`` and ``opt_state`` are
    this rank's pieces (as from :func:`~ptfunc.distributed.shard_params` and
    ``opt.init(shards)``); ``step``, ``key`` and ``extra`` (JSON values) are saved as in
    :func:`ptfunc.train_state.save_train_state`.

    Returns:
        The directory.
    """
    directory = Path(directory)
    world, me = world_size(group), rank(group)
    if world != layout.world_size:
        raise ValueError(f"layout is for {layout.world_size} processes, the group has {world}")
    ids = [uuid.uuid4().hex]
    if world > 1:
        dist.broadcast_object_list(ids, src=0, group=group)
    directory.mkdir(parents=True, exist_ok=True)
    flat: dict[str, Tensor] = {}
    for prefix, tree in (("params", shards), ("opt_state", opt_state)):
        for name, value in to_flat_dict(tree).items():
            flat[f"{prefix}.{name}"] = value.detach().cpu()
    flat["key"] = key.detach().cpu()
    metadata = {"save_id": ids[0], "rank": str(me), "world_size": str(world)}
    save(directory / _shard_file(me, world), flat, metadata=metadata)
    if world > 1:
        dist.barrier(group=group)
    if me == 0:
        index = {
            "format": FORMAT,
            "save_id": ids[0],
            "step": int(step),
            "extra": extra or {},
            "files": [_shard_file(r, world) for r in range(world)],
            "layout": layout.to_dict(),
            "opt_state": _state_index(opt_state, layout),
        }
        write_text(directory / INDEX_NAME, json.dumps(index, indent=1))
    if world > 1:
        dist.barrier(group=group)
    return directory


def read_index(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The parsed ``index.json`` of a sharded checkpoint (clear errors when absent or foreign)."""
    path = Path(directory) / INDEX_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: not a sharded checkpoint (or an unfinished save)"
        )
    index = json.loads(path.read_text())
    if index.get("format") != FORMAT:
        raise ValueError(f"{path}: format {index.get('format')!r}, expected {FORMAT!r}")
    return index


def _open_shard(directory: Path, index: dict[str, Any], r: int) -> dict[str, Tensor]:
    from safetensors import safe_open

    path = directory / index["files"][r]
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the sharded checkpoint")
    with safe_open(str(path), "pt") as handle:
        got = (handle.metadata() or {}).get("save_id")
        if got != index["save_id"]:
            raise ValueError(
                f"{path} belongs to another save (id {got}, index says {index['save_id']}); "
                "a save was interrupted: use an earlier checkpoint"
            )
        return {k: handle.get_tensor(k) for k in handle.keys()}


def load_sharded(
    directory: str | os.PathLike[str],
    shards_like: Any,
    opt_state_like: Any,
    *,
    device: str | torch.device = "cpu",
    group: Group = None,
) -> TrainState:
    """This rank's pieces from a checkpoint saved with the same world size.

    ``shards_like`` / ``opt_state_like`` give the structures (e.g. fresh ``shard_params``
    output and ``opt.init`` of it).

    Raises:
        FileNotFoundError: no ``index.json`` or a missing rank file.
        ValueError: another world size, files of an interrupted save, or names/shapes that
            do not fit the given trees.
    """
    directory = Path(directory)
    index = read_index(directory)
    world, me = world_size(group), rank(group)
    saved = index["layout"]["world_size"]
    if saved != world:
        raise ValueError(
            f"{directory} was saved by {saved} processes, this group has {world}; "
            "consolidate_train_state + shard_like re-cut it for another world size"
        )
    flat = {k: v.to(device) for k, v in _open_shard(directory, index, me).items()}
    params = from_flat_dict(_subtree(flat, "params"), like=shards_like)
    opt_state = from_flat_dict(_subtree(flat, "opt_state"), like=opt_state_like)
    return TrainState(params, opt_state, int(index["step"]), flat["key"], index["extra"])


def _join(pieces: list[Tensor], leaf: LeafLayout) -> Tensor:
    return torch.cat(pieces)[: leaf.numel].view(leaf.shape)


def consolidate_train_state(
    directory: str | os.PathLike[str], params_like: Any = None, opt_state_like: Any = None
) -> TrainState:
    """Full params and optimizer state from all the rank files, in this one process.

    Without ``*_like`` trees the params and state come back as nested dicts/lists (the
    state's NamedTuples become dicts); with them, in their structure (e.g. ``model.init``
    output and ``opt.init`` of it), ready for a one-process run or :func:`shard_like`.
    """
    directory = Path(directory)
    index = read_index(directory)
    layout = ShardLayout.from_dict(index["layout"])
    files = [_open_shard(directory, index, r) for r in range(layout.world_size)]
    params = {
        leaf.name: _join([f[f"params.{leaf.name}"] for f in files], leaf) for leaf in layout.leaves
    }
    by_name = {leaf.name: leaf for leaf in layout.leaves}
    state: dict[str, Tensor] = {}
    for name, entry in index["opt_state"].items():
        pieces = [f[f"opt_state.{name}"] for f in files]
        state[name] = _join(pieces, by_name[entry["param"]]) if "param" in entry else pieces[0]
    return TrainState(
        from_flat_dict(params, like=params_like),
        from_flat_dict(state, like=opt_state_like),
        int(index["step"]),
        files[0]["key"],
        index["extra"],
    )


def consolidate(directory: str | os.PathLike[str], params_like: Any = None) -> Any:
    """The full params tree of a sharded checkpoint, in one process (no process group).

    Use it to evaluate or convert a sharded run on one machine, e.g. followed by
    ``ptfunc.io.save(path, params)``.
    """
    return consolidate_train_state(directory, params_like).params


def shard_like(tree: Any, layout: ShardLayout, rank: int) -> Any:
    """Rank ``rank``'s piece of a full optimizer state (or any tree mixing param-shaped and
    other leaves): leaves named and shaped like a param are cut as the params are, the
    others are copied whole. ``shard_like(state, ShardLayout.of(params, w), r)`` equals
    ``opt.init(shard_params(...))`` after the same steps."""

    def cut(name: str, x: Tensor) -> Tensor:
        leaf = _param_for(name, tuple(x.shape), layout, full=True)
        if leaf is None:
            return x.clone()
        return _padded(x, leaf, layout.world_size)[rank].clone()

    return map_with_names(cut, tree)
