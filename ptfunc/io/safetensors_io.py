"""Save and load params trees as safetensors files with dotted names.

:func:`read_header` checks a file's header the way the format requires (and the loader
and ``ptfunc inspect`` rely on) before any tensor is read: the 8-byte header length is
sane, the header is a UTF-8 JSON object, every entry has a known dtype, a shape of
non-negative ints and data offsets whose length is exactly ``prod(shape) * itemsize``,
and the entries tile the data section exactly (no gaps, no overlaps, nothing past the end).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, NamedTuple

import safetensors
import safetensors.torch
import torch
from torch import Tensor

from .._atomic import write_bytes
from ..errors import CheckpointError
from ..tree import check_no_alias, from_flat_dict, to_flat_dict

__all__ = ["save", "load", "load_flat", "to_safetensors_bytes", "read_header", "HeaderEntry"]

MAX_HEADER_BYTES = 100_000_000
"""The largest header the safetensors format allows (its own loader's limit)."""

DTYPES: dict[str, tuple[int, torch.dtype | None]] = {
    "BOOL": (8, torch.bool), "U8": (8, torch.uint8), "I8": (8, torch.int8),
    "U16": (16, torch.uint16), "I16": (16, torch.int16), "F16": (16, torch.float16),
    "BF16": (16, torch.bfloat16), "U32": (32, torch.uint32), "I32": (32, torch.int32),
    "F32": (32, torch.float32), "U64": (64, torch.uint64), "I64": (64, torch.int64),
    "F64": (64, torch.float64), "C64": (64, torch.complex64),
    "F8_E4M3": (8, torch.float8_e4m3fn), "F8_E5M2": (8, torch.float8_e5m2),
    "F8_E4M3FNUZ": (8, torch.float8_e4m3fnuz), "F8_E5M2FNUZ": (8, torch.float8_e5m2fnuz),
    "F8_E8M0": (8, None), "F6_E2M3": (6, None), "F6_E3M2": (6, None), "F4": (4, None),
}  # fmt: skip
"""safetensors dtype name -> (bits per element, torch dtype or None when torch has none)."""


class HeaderEntry(NamedTuple):
    """One tensor of a safetensors header: ``dtype`` is the file's name (``"F32"``...);
    ``begin``/``end`` are byte offsets into the data section."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int

    @property
    def torch_dtype(self) -> torch.dtype | None:
        """The torch dtype, or None for the sub-byte float kinds torch lacks."""
        return DTYPES[self.dtype][1]


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the header names {key!r} twice")
        out[key] = value
    return out


def _naturals(values: Any) -> bool:
    return isinstance(values, list) and all(type(v) is int and v >= 0 for v in values)


def _bounded_prod(values: list[int], limit: int) -> int:
    """``prod(values)``, or some number above ``limit`` once it passes it (no huge ints)."""
    if 0 in values:
        return 0
    out = 1
    for v in values:
        out *= v
        if out > limit:
            return out
    return out


def _entry(name: str, value: Any) -> HeaderEntry:
    if not isinstance(value, dict) or not {"dtype", "shape", "data_offsets"} <= set(value):
        raise ValueError(f"{name!r}: expected {{dtype, shape, data_offsets}}, got {value!r:.120}")
    dtype, shape, offsets = value["dtype"], value["shape"], value["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise ValueError(f"{name!r}: unknown dtype {dtype!r:.40}")
    if not _naturals(shape):
        raise ValueError(f"{name!r}: shape {shape!r:.80} is not a list of non-negative ints")
    if not _naturals(offsets) or len(offsets) != 2 or offsets[0] > offsets[1]:
        raise ValueError(f"{name!r}: data_offsets {offsets!r:.80} are not [begin, end]")
    if _bounded_prod([d for d in shape if d], 2**63 - 1) > 2**63 - 1:
        raise ValueError(f"{name!r}: shape {tuple(shape)!s:.80} does not fit in int64")
    stored = offsets[1] - offsets[0]
    limit = 8 * stored + 1
    numel = _bounded_prod(shape, limit)
    bits = numel * DTYPES[dtype][0]
    if bits != 8 * stored:
        needs = f"{bits / 8:g} bytes" if numel <= limit else "far more"
        raise ValueError(
            f"{name!r}: {stored} bytes stored, but shape {tuple(shape)!s:.80} of {dtype} needs "
            f"{needs}"
        )
    return HeaderEntry(name, dtype, tuple(shape), offsets[0], offsets[1])


def read_header(
    path: str | os.PathLike[str],
) -> tuple[list[HeaderEntry], dict[str, str], int]:
    """The checked header of a safetensors file: ``(entries by offset, metadata, data start)``.

    Reads only the header (at most :data:`MAX_HEADER_BYTES`), never the tensors.

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: the header is malformed or does not fit the file (the message
            names the file and the entry).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"expected a safetensors file at {path}")
    size = path.stat().st_size
    try:
        with open(path, "rb") as handle:
            prefix = handle.read(8)
            if len(prefix) < 8:
                raise ValueError(f"{size} bytes is shorter than the 8-byte header length")
            length = int.from_bytes(prefix, "little")
            if length > min(size - 8, MAX_HEADER_BYTES):
                raise ValueError(
                    f"the header claims {length} bytes; the file has {size - 8} after the "
                    f"length and the format allows at most {MAX_HEADER_BYTES}"
                )
            raw = handle.read(length)
        if not raw.startswith(b"{"):
            raise ValueError("the header is not a JSON object")
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_unique_keys)
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
        metadata = header.pop("__metadata__", None)
        metadata = {} if metadata is None else metadata
        if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
            raise ValueError("__metadata__ must map strings to strings")
        entries = sorted((_entry(n, v) for n, v in header.items()), key=lambda e: e[3:5])
        data_size, position = size - 8 - length, 0
        for entry in entries:
            if entry.begin != position:
                what = "overlaps the previous tensor" if entry.begin < position else "leaves a gap"
                raise ValueError(
                    f"{entry.name!r} at data bytes [{entry.begin}, {entry.end}) {what}"
                )
            position = entry.end
        if position != data_size:
            raise ValueError(
                f"the tensors cover {position} data bytes, the file holds {data_size} "
                f"({'truncated?' if position > data_size else 'trailing bytes'})"
            )
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, ValueError) as e:
        raise CheckpointError(
            f"{path} is not a readable safetensors file (truncated or corrupt?): {e}"
        ) from None
    return entries, metadata, 8 + length


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

    The header is checked first (:func:`read_header`).

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: (a ``ValueError``) the file is truncated, corrupt or holds a
            dtype torch lacks.
    """
    path = Path(path)
    entries, _, _ = read_header(path)
    lacking = [f"{e.name} ({e.dtype})" for e in entries if e.torch_dtype is None]
    if lacking:
        raise CheckpointError(f"{path}: torch has no dtype for {lacking[:5]}")
    try:
        return safetensors.torch.load_file(str(path), device=str(device))
    except (safetensors.SafetensorError, OSError, ValueError, KeyError) as e:
        raise CheckpointError(
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
