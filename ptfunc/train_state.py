"""Save and resume a training run: params, optimizer state, step and random key in one file.

A run is a pure function of ``(params, opt_state, step, key)`` and the data order, so
writing these four (bit-exact, as safetensors) and reading them back continues the
run exactly where it stopped: the next step gives the same numbers as if it had never
stopped. The file is written atomically: a crash while saving leaves the previous
checkpoint intact.

>>> import tempfile, pathlib, torch
>>> from ptfunc import optim, random
>>> params = {"w": torch.ones(3)}
>>> opt = optim.adamw_torch(1e-2)
>>> path = pathlib.Path(tempfile.mkdtemp()) / "state.safetensors"
>>> save_train_state(path, params, opt.init(params), step=7, key=random.key(3))
>>> state = load_train_state(path, params, opt.init(params))
>>> state.step, torch.equal(state.key, random.key(3))
(7, True)
"""

from __future__ import annotations

import json
import os
from typing import Any, NamedTuple

import torch
from torch import Tensor

from .io.safetensors_io import load_flat, save
from .random import Key
from .tree import from_flat_dict, to_flat_dict

__all__ = ["TrainState", "save_train_state", "load_train_state"]


class TrainState(NamedTuple):
    """What :func:`load_train_state` returns."""

    params: Any
    opt_state: Any
    step: int
    key: Key
    extra: dict[str, Any]


def save_train_state(
    path: str | os.PathLike[str],
    params: Any,
    opt_state: Any,
    *,
    step: int,
    key: Key,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write ``params``, ``opt_state``, ``step`` and ``key`` to ``path`` (safetensors), atomically.

    Args:
        extra: JSON-serialisable values to keep alongside (e.g. the data position,
            the best metric so far); returned by :func:`load_train_state`.
    """
    flat: dict[str, Tensor] = {}
    for prefix, tree in (("params", params), ("opt_state", opt_state)):
        for name, value in to_flat_dict(tree).items():
            flat[f"{prefix}.{name}" if name else prefix] = value
    flat["key"] = key
    metadata = {"step": str(int(step)), "extra": json.dumps(extra or {})}
    save(path, flat, metadata=metadata)


def _subtree(flat: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    dotted = prefix + "."
    return {k[len(dotted) :]: v for k, v in flat.items() if k.startswith(dotted)}


def load_train_state(
    path: str | os.PathLike[str],
    params_like: Any,
    opt_state_like: Any,
    *,
    device: str | torch.device = "cpu",
) -> TrainState:
    """Read what :func:`save_train_state` wrote, in the structures of the ``*_like`` trees.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is corrupt, or its names or shapes do not fit the trees given
            (a checkpoint of another model or optimizer).
    """
    from safetensors import safe_open

    flat = load_flat(path, device=device)
    with safe_open(str(path), "pt") as handle:
        metadata = handle.metadata() or {}
    if "step" not in metadata or "key" not in flat:
        raise ValueError(f"{path} is not a training state written by save_train_state")
    params = from_flat_dict(_subtree(flat, "params"), like=params_like)
    opt_state = from_flat_dict(_subtree(flat, "opt_state"), like=opt_state_like)
    return TrainState(
        params, opt_state, int(metadata["step"]), flat["key"], json.loads(metadata["extra"])
    )
