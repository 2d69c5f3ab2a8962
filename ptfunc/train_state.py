"""Save and resume a training run: params, optimizer state, step and random key in one file.

A run is a pure function of ``(params, opt_state, step, key)`` and the data order, so
writing these four (bit-exact, as safetensors) and reading them back continues the
run exactly where it stopped: the next step gives the same numbers as if it had never
stopped. The file is written atomically: a crash while saving leaves the previous
checkpoint intact, and the temporary file of a killed save is removed by the next save
into the same folder (see :mod:`ptfunc._atomic`).

Resuming checks that the checkpoint fits before anything is restored. The file records
the optimizer state's kinds (``AdamState``, ``SGDState``...) and, when given, a ``run``
description; :func:`load_train_state` compares them, and every tensor's name, shape and
dtype, with the trees it is given, and raises one :class:`~ptfunc.errors.CheckpointError`
listing the differences: another model config, another optimizer, or another run.

>>> import tempfile, pathlib, torch
>>> from ptfunc import optim, random
>>> params = {"w": torch.ones(3)}
>>> opt = optim.adamw_torch(1e-2)
>>> path = pathlib.Path(tempfile.mkdtemp()) / "state.safetensors"
>>> save_train_state(path, params, opt.init(params), step=7, key=random.key(3))
>>> state = load_train_state(path, params, opt.init(params))
>>> state.step, torch.equal(state.key, random.key(3))
(7, True)
>>> load_train_state(path, {"w": torch.ones(4)}, optim.sgd(0.1).init({"w": torch.ones(4)}))
Traceback (most recent call last):
...
ptfunc.errors.CheckpointError: ...state.safetensors does not fit what is being resumed (...):
  param w: checkpoint (3,) vs model (4,)
  optimizer state: checkpoint has AdamState, resuming with SGDState
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor

from .errors import CheckpointError
from .io.safetensors_io import load_flat, save
from .random import Key
from .tree import from_flat_dict, to_flat_dict

__all__ = ["TrainState", "save_train_state", "load_train_state"]

_MAX_LINES = 12


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
    run: Mapping[str, Any] | None = None,
) -> None:
    """Write ``params``, ``opt_state``, ``step`` and ``key`` to ``path`` (safetensors), atomically.

    Args:
        extra: JSON-serialisable values to keep alongside (e.g. the data position,
            the best metric so far); returned by :func:`load_train_state`.
        run: JSON-serialisable description of the run (model config, optimizer
            hyperparameters, seed, data); :func:`load_train_state` given another
            ``run`` refuses the checkpoint and names the keys that differ.
    """
    flat: dict[str, Tensor] = {}
    for prefix, tree in (("params", params), ("opt_state", opt_state)):
        for name, value in to_flat_dict(tree).items():
            flat[f"{prefix}.{name}" if name else prefix] = value
    flat["key"] = key
    metadata = {
        "step": str(int(step)),
        "extra": json.dumps(extra or {}),
        "opt_state_kinds": json.dumps(_kinds(opt_state)),
    }
    if run is not None:
        metadata["run"] = json.dumps(dict(run), sort_keys=True)
    save(path, flat, metadata=metadata)


def _subtree(flat: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    if prefix in flat:  # a tree that is one tensor
        return {"": flat[prefix]}
    dotted = prefix + "."
    return {k[len(dotted) :]: v for k, v in flat.items() if k.startswith(dotted)}


def load_train_state(
    path: str | os.PathLike[str],
    params_like: Any,
    opt_state_like: Any,
    *,
    device: str | torch.device = "cpu",
    run: Mapping[str, Any] | None = None,
) -> TrainState:
    """Read what :func:`save_train_state` wrote, in the structures of the ``*_like`` trees.

    Args:
        params_like, opt_state_like: trees of the run being resumed (e.g. the fresh
            params and ``opt.init(params)``); names, shapes and dtypes must match.
        run: this run's description; compared with the one saved, when both exist.

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: (a ``ValueError``) the file is corrupt or not a training state,
            or it does not fit: the message lists each tensor whose name, shape or dtype
            differs (``param x: checkpoint (16, 16) vs model (32, 32)``), another optimizer
            (``checkpoint has AdamState, resuming with SGDState``) and the ``run`` keys
            that differ.
    """
    from safetensors import safe_open

    flat = load_flat(path, device=device)
    with safe_open(str(path), "pt") as handle:
        metadata = handle.metadata() or {}
    if "step" not in metadata or "key" not in flat:
        raise CheckpointError(f"{path} is not a training state written by save_train_state")
    problems = _mismatches(flat, metadata, params_like, opt_state_like, run)
    if problems:
        shown = problems[:_MAX_LINES]
        if len(problems) > len(shown):
            shown.append(f"... and {len(problems) - len(shown)} more")
        raise CheckpointError(
            f"{path} does not fit what is being resumed (a checkpoint of another model, "
            "optimizer or run?):\n  " + "\n  ".join(shown)
        )
    params = from_flat_dict(_subtree(flat, "params"), like=params_like)
    opt_state = from_flat_dict(_subtree(flat, "opt_state"), like=opt_state_like)
    return TrainState(
        params, opt_state, int(metadata["step"]), flat["key"], json.loads(metadata["extra"])
    )


# -- what must match -------------------------------------------------------------------------


def _kinds(tree: Any, prefix: str = "") -> list[list[str]]:
    """``[[path, class name]]`` of the NamedTuple nodes of an optimizer state."""
    out: list[list[str]] = []
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):
        out.append([prefix, type(tree).__name__])
        items: Any = zip(tree._fields, tree)
    elif isinstance(tree, (list, tuple)):
        items = enumerate(tree)
    elif isinstance(tree, Mapping):
        items = tree.items()
    else:
        return out
    for key, value in items:
        out.extend(_kinds(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def _describe_kinds(kinds: list[list[str]]) -> str:
    if not kinds:
        return "no optimizer state"
    if len(kinds) == 1 and not kinds[0][0]:
        return kinds[0][1]
    return "(" + ", ".join(f"{path or '.'}: {name}" for path, name in kinds) + ")"


def _leaf_problems(saved: Mapping[str, Tensor], like: Any, what: str, other: str) -> list[str]:
    """``what name: checkpoint X vs other Y`` for each name, shape or dtype that differs."""
    wanted = {k: v for k, v in to_flat_dict(like).items() if isinstance(v, Tensor)}
    problems: list[str] = []
    dtypes: dict[tuple[str, str], list[str]] = {}  # (saved, wanted) -> names
    for name in sorted(set(saved) | set(wanted)):
        label = f"{what} {name}" if name else what
        if name not in wanted:
            problems.append(f"{label}: in the checkpoint, not in the {other}")
        elif name not in saved:
            problems.append(f"{label}: in the {other}, not in the checkpoint")
        elif saved[name].shape != wanted[name].shape:
            got, want = tuple(saved[name].shape), tuple(wanted[name].shape)
            problems.append(f"{label}: checkpoint {got} vs {other} {want}")
        elif saved[name].dtype != wanted[name].dtype:
            pair = (_dtype(saved[name]), _dtype(wanted[name]))
            dtypes.setdefault(pair, []).append(name)
    for (got_dtype, want_dtype), names in dtypes.items():
        label = f"{what} {names[0]}" + (f" and {len(names) - 1} more" if len(names) > 1 else "")
        problems.append(f"{label}: checkpoint {got_dtype} vs {other} {want_dtype}")
    return problems


def _dtype(x: Tensor) -> str:
    return str(x.dtype).removeprefix("torch.")


def _mismatches(
    flat: Mapping[str, Tensor],
    metadata: Mapping[str, str],
    params_like: Any,
    opt_state_like: Any,
    run: Mapping[str, Any] | None,
) -> list[str]:
    params = _subtree(dict(flat), "params")
    problems = _leaf_problems(params, params_like, "param", "model")
    kinds_now = _kinds(opt_state_like)
    kinds_saved = json.loads(metadata["opt_state_kinds"]) if "opt_state_kinds" in metadata else None
    if kinds_saved is not None and kinds_saved != kinds_now:
        problems.append(
            f"optimizer state: checkpoint has {_describe_kinds(kinds_saved)}, "
            f"resuming with {_describe_kinds(kinds_now)}"
        )
    elif not problems:  # the optimizer's slots mirror the params: report them only alone
        opt = _subtree(dict(flat), "opt_state")
        problems += _leaf_problems(opt, opt_state_like, "optimizer state", "optimizer")
    if run is not None and "run" in metadata:
        saved_run = json.loads(metadata["run"])
        now = json.loads(json.dumps(dict(run), sort_keys=True))
        for k in sorted(set(saved_run) | set(now)):
            if saved_run.get(k, "<absent>") != now.get(k, "<absent>"):
                before, after = saved_run.get(k, "<absent>"), now.get(k, "<absent>")
                problems.append(f"run {k}: checkpoint {before!r} vs this run {after!r}")
    return problems
