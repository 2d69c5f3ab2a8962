"""Save and load params trees as safetensors files with dotted names."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import safetensors
import safetensors.torch
import torch
from torch import Tensor

from .._atomic import write_bytes
from ..tree import check_no_alias, from_flat_dict, to_flat_dict

__all__ = ["save", "load", "load_flat", "to_safetensors_bytes"]


def save(
    path: str | os.PathLike[str], params: Any, *, metadata: dict[str, str] | None = None
) -> None:
    """Write a params tree to ``path`` (safetensors, dotted names), atomically.

    The file is written to a temporary name and renamed, so a failure leaves
    any previous file at ``path`` intact. Any pytree of tensors works,
    including optimizer states.

    Raises:
        TypeError: a leaf is not a tensor.
        ValueError: two leaves share memory (store a tied weight once).
    """
    write_bytes(path, to_safetensors_bytes(params, metadata=metadata))


def to_safetensors_bytes(params: Any, *, metadata: dict[str, str] | None = None) -> bytes:
    """Serialise a tree of tensors to safetensors bytes (dotted names); checks as :func:`save`."""
    flat = to_flat_dict(params)
    bad = [name for name, v in flat.items() if not isinstance(v, Tensor)]
    if bad:
        raise TypeError(f"save expects tensor leaves; not tensors: {bad[:5]}")
    check_no_alias(params)
    tensors = {name: v.detach().contiguous().cpu() for name, v in flat.items()}
    return safetensors.torch.save(tensors, metadata={"format": "pt", **(metadata or {})})


def load_flat(
    path: str | os.PathLike[str], *, device: str | torch.device = "cpu"
) -> dict[str, Tensor]:
    """Read a safetensors file into ``{name: tensor}``.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is truncated or not a safetensors file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"expected a safetensors file at {path}")
    try:
        return safetensors.torch.load_file(str(path), device=str(device))
    except (safetensors.SafetensorError, OSError, ValueError) as e:
        raise ValueError(
            f"{path} is not a readable safetensors file (truncated or corrupt?): {e}"
        ) from None


def load(
    path: str | os.PathLike[str], *, like: Any = None, device: str | torch.device = "cpu"
) -> Any:
    """Read a safetensors file into a tree.

    Without ``like``: nested dicts, levels keyed 0..n-1 as lists (a params tree).
    With ``like``: the structure of that tree (e.g. ``opt.init(params)`` to restore
    an optimizer state), checking that names and shapes match.
    """
    return from_flat_dict(load_flat(path, device=device), like=like)
