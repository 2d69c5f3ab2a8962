"""Save and load params trees as safetensors files with dotted names.

:func:`read_header` checks a file's header the way the format requires (and the loader
and ``ptfunc inspect`` rely on) before any tensor is read: the 8-byte header length is
sane, the header is a UTF-8 JSON object, every entry has a known dtype, a shape of
non-negative ints and data offsets whose length is exactly ``prod(shape) * itemsize``,
and the entries tile the data section exactly (no gaps, no overlaps, nothing past the end).

:func:`load_flat` then reads the tensors itself, one of two ways (never through a copy of
the whole file):

* a tensor kept as stored (its dtype, on the CPU) is a view of a private, copy-on-write
  memory map of the file (``mmap.ACCESS_COPY``, i.e. ``MAP_PRIVATE``): loading reads
  nothing, pages come in when first read (and count in the process's RSS then, once
  each: the params of a model cost the file's size), and a write to the tensor (an
  in-place optimizer step) goes to a private copy of the page, never to the file. The
  map lives as long as a tensor that views it. Replace a loaded file atomically (as
  :func:`save` and :func:`ptfunc.io.save_pretrained` do: a new file renamed over it, the
  mapped one left intact) and never truncate or rewrite it in place while its tensors
  are in use: a mapped page cut from the file is a ``SIGBUS`` on the next read;
* a tensor cast to another dtype or moved to another device is read into a new tensor of
  that dtype on that device, through a buffer of at most :data:`CHUNK_BYTES` (16 MiB):
  loading a float32 file as bfloat16 holds the bfloat16 tensors and one chunk, never a
  float32 tensor whole.
"""

from __future__ import annotations

import json
import mmap
import os
import sys
from pathlib import Path
from typing import Any, NamedTuple

import safetensors
import safetensors.torch
import torch
from torch import Tensor

from .._atomic import write_bytes
from ..errors import CheckpointError
from ..tree import check_no_alias, from_flat_dict, to_flat_dict
from .state_dict import check_float_dtype

__all__ = ["save", "load", "load_flat", "to_safetensors_bytes", "read_header", "HeaderEntry"]

MAX_HEADER_BYTES = 100_000_000
"""The largest header the safetensors format allows (its own loader's limit)."""

CHUNK_BYTES = 16 * 2**20
"""The most bytes of a file :func:`load_flat` holds at a time for a tensor it casts or moves."""

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
    path: str | os.PathLike[str],
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
) -> dict[str, Tensor]:
    """Read a safetensors file into ``{name: tensor}``, each tensor of its stored shape.

    The header is checked first (:func:`read_header`), and the file's size again once it
    is open. Tensors kept as stored are copy-on-write views of a private memory map of
    the file (see the module docstring: writing to them never changes the file; do not
    truncate the file while they are in use); the others are read into new tensors, in
    chunks of at most :data:`CHUNK_BYTES`.

    Args:
        path: the ``.safetensors`` file.
        device: where the tensors go; for another device than the CPU each tensor is
            made there and filled chunk by chunk (no CPU copy of a whole tensor).
        dtype: floating-point tensors are cast to it chunk by chunk (one chunk of the
            file's bytes beside the results, never a tensor or the file whole); integer
            and bool tensors keep theirs. Default: each tensor's stored dtype.

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: (a ``ValueError``) the file is truncated, corrupt, changed
            while read, or holds a dtype torch lacks.
    """
    check_float_dtype(dtype)
    path = Path(path)
    entries, _, start = read_header(path)
    lacking = [f"{e.name} ({e.dtype})" for e in entries if e.torch_dtype is None]
    if lacking:
        raise CheckpointError(f"{path}: torch has no dtype for {lacking[:5]}")
    device = torch.device(device)
    if sys.byteorder != "little":  # the format is little-endian: let safetensors swap
        return _load_swapped(path, device, dtype)
    out: dict[str, Tensor] = {}
    size = start + (entries[-1].end if entries else 0)
    with open(path, "rb", buffering=0) as handle:
        if os.fstat(handle.fileno()).st_size != size:
            raise CheckpointError(f"{path} changed while it was read: its size is not {size}")
        mapped: mmap.mmap | bool | None = None  # None: not yet tried; False: cannot map
        buffer: Tensor | None = None  # for the tensors cast or moved: made for the first
        for e in entries:
            stored = e.torch_dtype
            assert stored is not None  # checked above
            want = dtype if dtype is not None and stored.is_floating_point else stored
            offset = start + e.begin
            viewable = want == stored and device.type == "cpu" and offset % stored.itemsize == 0
            if viewable and mapped is None:
                mapped = _map(handle)
            if e.end == e.begin:
                out[e.name] = torch.empty(e.shape, dtype=want, device=device)
            elif viewable and isinstance(mapped, mmap.mmap):
                count = (e.end - e.begin) // stored.itemsize
                view = torch.frombuffer(mapped, dtype=stored, count=count, offset=offset)
                out[e.name] = view.view(e.shape)
            else:  # cast, moved, at an offset its dtype cannot view, or no map
                if buffer is None:
                    largest = max(x.end - x.begin for x in entries)
                    buffer = torch.empty(min(CHUNK_BYTES, -(-largest // 8) * 8), dtype=torch.uint8)
                out[e.name] = _read_tensor(handle, path, e, offset, want, device, buffer)
    return out


def _map(handle: Any) -> mmap.mmap | bool:
    """A private copy-on-write map of the whole open file (``MAP_PRIVATE`` on POSIX), or
    False where the file system cannot map it (the tensors are read instead)."""
    try:
        return mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_COPY)
    except (OSError, ValueError):
        return False


def _read_tensor(
    handle: Any,
    path: Path,
    entry: HeaderEntry,
    offset: int,
    dtype: torch.dtype,
    device: torch.device,
    buffer: Tensor,
) -> Tensor:
    """``entry``'s tensor, read from ``offset`` of the open file into a new tensor of ``dtype``
    on ``device``: straight into it when it is a CPU tensor of the stored dtype, else through
    ``buffer`` (uint8, a multiple of 8 bytes), cast or moved chunk by chunk, so that the
    file's bytes never sit in memory beside the result but for one chunk. One buffer serves
    every tensor of a file: fresh buffers per tensor would leave holes in the heap."""
    stored = entry.torch_dtype
    assert stored is not None  # checked by load_flat
    out = torch.empty(entry.shape, dtype=dtype, device=device)
    flat = out.view(-1)
    handle.seek(offset)
    if dtype == stored and out.device.type == "cpu":
        _read_into(handle, path, entry, flat)
        return out
    step = max(1, buffer.numel() // stored.itemsize)
    for start in range(0, flat.numel(), step):
        count = min(step, flat.numel() - start)
        part = buffer[: count * stored.itemsize].view(stored)
        _read_into(handle, path, entry, part)
        flat[start : start + count].copy_(part)
    return out


def _read_into(handle: Any, path: Path, entry: HeaderEntry, tensor: Tensor) -> None:
    """Fill the contiguous CPU ``tensor`` with the file's next bytes."""
    view = memoryview(tensor.view(torch.uint8).numpy())
    done = 0
    while done < len(view):
        got = handle.readinto(view[done : done + (1 << 30)])
        if not got:
            raise CheckpointError(
                f"{path} ended inside {entry.name!r} (truncated while it was read?)"
            )
        done += got


def _load_swapped(path: Path, device: torch.device, dtype: torch.dtype | None) -> dict[str, Tensor]:
    """:func:`load_flat` on a big-endian machine, through ``safetensors`` (which swaps)."""
    try:
        flat = safetensors.torch.load_file(str(path), device=str(device))
    except (safetensors.SafetensorError, OSError, ValueError, KeyError) as e:
        raise CheckpointError(
            f"{path} is not a readable safetensors file (truncated or corrupt?): {e}"
        ) from None
    for name, tensor in flat.items():
        if dtype is not None and tensor.is_floating_point():
            flat[name] = tensor.to(dtype)
    return flat


def load(
    path: str | os.PathLike[str], *, like: Any = None, device: str | torch.device = "cpu"
) -> Any:
    """Read a safetensors file into a tree.

    Without ``like``: nested dicts, levels keyed 0..n-1 as lists (a params tree).
    With ``like``: the structure of that tree (e.g. ``opt.init(params)`` to restore
    an optimizer state), checking that names and shapes match.
    """
    return from_flat_dict(load_flat(path, device=device), like=like)
