"""Read TensorFlow V2 checkpoints (the tensor-bundle format) without TensorFlow.

A checkpoint ``PREFIX`` is ``PREFIX.index`` (a sorted table of tensor name ->
``BundleEntryProto``: dtype, shape, data shard, offset, size, CRC-32C) plus the data
files ``PREFIX.data-00000-of-0000N``. This reader needs only numpy, torch and the
standard library; every checksum is verified, partitioned variables (stored as slices)
are reassembled, and any truncated, corrupt or inconsistent file raises
:class:`CheckpointError` naming the file and what is wrong.

Example (``ckpt`` a :class:`TFCheckpoint`)::

    ckpt = TFCheckpoint("uncased_L-12_H-768_A-12/bert_model.ckpt")
    ckpt.names[:2]                   # ['bert/embeddings/LayerNorm/beta', ...]
    ckpt.shape("bert/embeddings/word_embeddings")   # (30522, 768)
    weights = load_tf_checkpoint("bert_model.ckpt", names=["bert/pooler/dense/kernel"])

String tensors (for example TF2's ``_CHECKPOINTABLE_OBJECT_GRAPH``) are listed in
:attr:`TFCheckpoint.names` and read with :meth:`TFCheckpoint.read_strings`;
:func:`load_tf_checkpoint` leaves them (and any other dtype torch cannot hold) out
unless they are asked for by name.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from ..errors import CheckpointError
from ._bundle_proto import (
    DT_STRING,
    DTYPE_NAMES,
    DTYPES,
    Entry,
    parse_entry,
    parse_header,
    slice_key,
    storage_dtype,
)
from ._crc32c import crc32c, unmask
from ._protowire import ProtoError, read_varint
from ._sstable import read_table

__all__ = ["CheckpointError", "TFCheckpoint", "load_tf_checkpoint"]

Progress = Callable[[int, int, str], None]


def _data_path(prefix: str, shard: int, num_shards: int) -> str:
    return f"{prefix}.data-{shard:05d}-of-{num_shards:05d}"


def _prefix_from_state_file(directory: Path) -> str | None:
    """The prefix a TF ``checkpoint`` state file names as ``model_checkpoint_path``, if any."""
    state = directory / "checkpoint"
    if not state.is_file():
        return None
    text = state.read_text(encoding="utf-8", errors="replace")
    match = re.search(r'^\s*model_checkpoint_path:\s*"((?:[^"\\]|\\.)*)"', text, re.MULTILINE)
    if match is None:
        return None
    named = Path(re.sub(r"\\(.)", r"\1", match.group(1)))
    # The state file may hold an absolute path from the machine that wrote it.
    for candidate in (directory / named, directory / named.name):
        if Path(f"{candidate}.index").is_file():
            return str(candidate)
    return None


def resolve_prefix(path: str | os.PathLike[str]) -> str:
    """The checkpoint prefix for ``path``: a prefix, its ``.index`` or data file, or a directory."""
    path = Path(path)
    if path.is_dir():
        prefix = _prefix_from_state_file(path)
        if prefix is not None:
            return prefix
        indexes = sorted(path.glob("*.index"))
        if len(indexes) == 1:
            return str(indexes[0])[: -len(".index")]
        if not indexes:
            raise FileNotFoundError(f"expected a TensorFlow checkpoint (*.index) in {path}")
        raise CheckpointError(
            f"{path} holds {len(indexes)} checkpoints ({', '.join(p.name for p in indexes)}); "
            "name one by its prefix"
        )
    text = str(path)
    if text.endswith(".index"):
        text = text[: -len(".index")]
    else:
        text = re.sub(r"\.data-\d{5}-of-\d{5}$", "", text)
    if not Path(f"{text}.index").is_file():
        hint = ""
        if Path(text).is_file():  # V1 checkpoints are one file; V2 is PREFIX.index + data
            hint = f" ({text} is a single file: a V1-format checkpoint, which is not supported)"
        raise FileNotFoundError(f"expected a TensorFlow checkpoint index at {text}.index{hint}")
    return text


def _slice_label(name: str, box) -> str:
    """``name[0:3, 0:4]``: how a slice of a partitioned variable is named in messages."""
    return f"{name}[{', '.join(f'{a}:{b}' for a, b in box)}]"


class TFCheckpoint:
    """The tensors of a TensorFlow V2 checkpoint, read on demand.

    Opening reads and checks the whole index (every block checksum, every entry's
    dtype, shape, size and place in its data file, every partitioned variable's
    slices); :meth:`read` then reads just one tensor's bytes and verifies its CRC-32C.

    Args:
        path: the prefix (``.../model.ckpt``), the ``.index`` file, a data file, or a
            directory holding one checkpoint (or a TF ``checkpoint`` state file naming one).

    Raises:
        FileNotFoundError: the index or a data file is missing (the message names it).
        CheckpointError: a file is truncated, corrupt or inconsistent.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.prefix = resolve_prefix(path)
        self.index_path = f"{self.prefix}.index"
        with open(self.index_path, "rb") as f:
            table = f.read()
        try:
            rows = read_table(table)
            if not rows or rows[0][0] != b"":
                raise ProtoError("the first entry is not the bundle header (key '')")
            header = parse_header(rows[0][1])
            entries: dict[bytes, Entry] = {}
            for key, value in rows[1:]:
                try:
                    entries[key] = parse_entry(value)
                except ProtoError as exc:
                    raise ProtoError(f"entry {key!r}: {exc}") from None
        except ProtoError as exc:
            raise CheckpointError(f"{self.index_path}: {exc}") from None
        self.num_shards = header.num_shards
        self.big_endian = header.big_endian
        self._entries: dict[str, Entry] = {}
        self._slices: dict[str, list[tuple[tuple[slice, ...], Entry]]] = {}
        self._shard_sizes: dict[int, int] = {}
        self._spans: dict[int, list[tuple[int, int, str]]] = {}
        for key, entry in entries.items():
            if key.startswith(b"\x00"):
                continue  # a slice of a partitioned variable, reached through its full entry
            try:
                name = key.decode("utf-8")
            except UnicodeDecodeError:
                raise CheckpointError(
                    f"{self.index_path}: tensor name {key!r} is not UTF-8"
                ) from None
            self._check_entry(name, entry)
            if entry.slices:
                self._slices[name] = self._check_slices(key, name, entry, entries)
            self._entries[name] = entry
        self._check_disjoint()
        self.names: list[str] = sorted(self._entries)

    # -- checks at open -------------------------------------------------------

    def _error(self, message: str) -> CheckpointError:
        return CheckpointError(f"{self.index_path}: {message}")

    def _shard_size(self, shard: int) -> int:
        if shard not in self._shard_sizes:
            path = _data_path(self.prefix, shard, self.num_shards)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"expected the checkpoint data file {path}")
            self._shard_sizes[shard] = os.path.getsize(path)
        return self._shard_sizes[shard]

    def _check_entry(self, name: str, entry: Entry) -> None:
        if entry.dtype not in DTYPE_NAMES:
            raise self._error(f"{name!r} has unknown dtype enum {entry.dtype}")
        if math.prod(d for d in entry.shape if d) >= 2**63:
            raise self._error(f"{name!r} has shape {entry.shape}, too large for a tensor")
        if entry.slices:
            return
        if not 0 <= entry.shard_id < self.num_shards:
            raise self._error(
                f"{name!r} lives in shard {entry.shard_id}, but the header says "
                f"{self.num_shards} shard(s)"
            )
        if entry.offset < 0 or entry.size < 0:
            raise self._error(f"{name!r} has offset {entry.offset} and size {entry.size}")
        if entry.dtype in DTYPES:
            expected = math.prod(entry.shape) * np.dtype(DTYPES[entry.dtype].storage).itemsize
            if entry.size != expected:
                raise self._error(
                    f"{name!r}: {entry.size} bytes stored, but shape {entry.shape} of "
                    f"{DTYPE_NAMES[entry.dtype]} needs {expected}"
                )
        file_size = self._shard_size(entry.shard_id)
        if entry.offset + entry.size > file_size:
            data = _data_path(self.prefix, entry.shard_id, self.num_shards)
            raise CheckpointError(
                f"{data}: {name!r} needs bytes [{entry.offset}, {entry.offset + entry.size}) "
                f"but the file has {file_size} (truncated?)"
            )
        if entry.size:
            self._spans.setdefault(entry.shard_id, []).append(
                (entry.offset, entry.offset + entry.size, name)
            )

    def _check_disjoint(self) -> None:
        """No two tensors share bytes of a data file (TensorFlow writes each once), so what
        the tensors need in memory is at most what the data files hold."""
        for shard, spans in self._spans.items():
            spans.sort()
            for (_, end, first), (start, _, second) in zip(spans, spans[1:]):
                if start < end:
                    raise self._error(
                        f"{first!r} and {second!r} overlap in "
                        f"{os.path.basename(_data_path(self.prefix, shard, self.num_shards))} "
                        f"(at byte {start}); each tensor must have its own bytes"
                    )

    def _check_slices(
        self, key: bytes, name: str, entry: Entry, entries: dict[bytes, Entry]
    ) -> list[tuple[tuple[slice, ...], Entry]]:
        """Resolve and check the slices of a partitioned variable: in bounds, disjoint, complete."""
        boxes: list[tuple[tuple[int, int], ...]] = []
        parts = []
        for extents in entry.slices:
            if len(extents) != len(entry.shape):
                raise self._error(f"{name!r}: a slice of rank {len(extents)}, shape {entry.shape}")
            box = []
            for (start, length), dim in zip(extents, entry.shape):
                stop = dim if length is None else start + length
                if start < 0 or stop < start or stop > dim:
                    raise self._error(f"{name!r}: slice extent {start}:{stop} outside 0:{dim}")
                box.append((start, stop))
            part = entries.get(slice_key(key, extents))
            if part is None:
                raise self._error(f"{_slice_label(name, box)!r} is not stored")
            lengths = tuple(stop - start for start, stop in box)
            if part.slices or part.dtype != entry.dtype or part.shape != lengths:
                raise self._error(
                    f"{_slice_label(name, box)!r} is stored as {DTYPE_NAMES.get(part.dtype)} "
                    f"{part.shape}, expected {DTYPE_NAMES[entry.dtype]} {lengths}"
                )
            self._check_entry(_slice_label(name, box), part)
            boxes.append(tuple(box))
            parts.append((tuple(slice(a, b) for a, b in box), part))
        for i, a in enumerate(boxes):
            for b in boxes[:i]:
                if all(max(x[0], y[0]) < min(x[1], y[1]) for x, y in zip(a, b)):
                    raise self._error(f"{name!r}: slices {list(b)} and {list(a)} overlap")
        covered = sum(math.prod(stop - start for start, stop in box) for box in boxes)
        if covered != math.prod(entry.shape):
            raise self._error(
                f"{name!r}: its slices cover {covered} of {math.prod(entry.shape)} elements"
            )
        return parts

    # -- queries ----------------------------------------------------------------

    def _entry(self, name: str) -> Entry:
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(f"no tensor {name!r} in the checkpoint {self.prefix}") from None

    def shape(self, name: str) -> tuple[int, ...]:
        """Full shape of tensor ``name``."""
        return self._entry(name).shape

    def tf_dtype(self, name: str) -> str:
        """TF dtype name of ``name``: ``"float32"``, ``"bfloat16"``, ``"string"``..."""
        return DTYPE_NAMES[self._entry(name).dtype]

    def dtype(self, name: str) -> torch.dtype:
        """torch dtype of ``name``; :class:`CheckpointError` for dtypes torch lacks (strings)."""
        entry = self._entry(name)
        if entry.dtype not in DTYPES:
            raise CheckpointError(
                f"{self.index_path}: {name!r} has dtype {DTYPE_NAMES[entry.dtype]}, which has no "
                "torch dtype" + (" (use read_strings)" if entry.dtype == DT_STRING else "")
            )
        return DTYPES[entry.dtype].torch

    def nbytes(self, name: str) -> int:
        """Bytes of the tensor's data (as stored, for strings)."""
        entry = self._entry(name)
        if entry.dtype in DTYPES:
            return math.prod(entry.shape) * np.dtype(DTYPES[entry.dtype].storage).itemsize
        return sum(part.size for _, part in self._slices.get(name, [])) or entry.size

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __repr__(self) -> str:
        return f"TFCheckpoint({self.prefix!r}, {len(self)} tensors, {self.num_shards} shard(s))"

    # -- reading ----------------------------------------------------------------

    def _read_bytes(self, name: str, entry: Entry) -> bytearray:
        """The stored bytes of a non-sliced entry, CRC-32C checked; owned memory."""
        path = _data_path(self.prefix, entry.shard_id, self.num_shards)
        buffer = bytearray(entry.size)
        try:
            with open(path, "rb") as f:
                f.seek(entry.offset)
                got = f.readinto(buffer)
        except FileNotFoundError:
            raise FileNotFoundError(f"expected the checkpoint data file {path}") from None
        if got != entry.size:
            raise CheckpointError(
                f"{path}: {name!r} needs bytes [{entry.offset}, {entry.offset + entry.size}), "
                f"the file ends early (truncated?)"
            )
        if entry.dtype != DT_STRING and crc32c(buffer) != unmask(entry.crc32c):
            raise CheckpointError(f"{path}: checksum mismatch for {name!r} (corrupt file)")
        return buffer

    def _read_plain(self, name: str, entry: Entry) -> torch.Tensor:
        dtype = DTYPES[entry.dtype]
        array = np.frombuffer(self._read_bytes(name, entry), storage_dtype(dtype, self.big_endian))
        if self.big_endian:
            array = array.astype(array.dtype.newbyteorder("="))
        tensor = torch.from_numpy(array)
        if dtype.torch == torch.bool:
            tensor = tensor != 0
        elif tensor.dtype != dtype.torch:
            tensor = tensor.view(dtype.torch)
        return tensor.reshape(entry.shape)

    def read(self, name: str) -> torch.Tensor:
        """Tensor ``name``: CPU, its own memory, full shape, slices reassembled, checksums verified.

        Raises:
            KeyError: no such tensor.
            CheckpointError: corrupt or truncated data, or a dtype torch cannot hold.
            FileNotFoundError: its data file is missing.
        """
        entry = self._entry(name)
        dtype = self.dtype(name)
        if name not in self._slices:
            return self._read_plain(name, entry)
        full = torch.empty(entry.shape, dtype=dtype)
        for index, part in self._slices[name]:
            label = _slice_label(name, [(i.start, i.stop) for i in index])
            full[index] = self._read_plain(label, part)
        return full

    def read_strings(self, name: str) -> list[bytes]:
        """The elements of string tensor ``name``, flattened row-major, checksum verified."""
        entry = self._entry(name)
        if entry.dtype != DT_STRING or name in self._slices:
            raise CheckpointError(
                f"{self.index_path}: {name!r} is not an unpartitioned string tensor"
            )
        data = bytes(self._read_bytes(name, entry))
        path = _data_path(self.prefix, entry.shard_id, self.num_shards)
        count = math.prod(entry.shape)
        if entry.size == 0 and count:
            raise CheckpointError(f"{path}: string tensor {name!r} has no bytes")
        if entry.size == 0:
            return []
        try:
            return _decode_strings(data, count, entry.crc32c, self.big_endian)
        except ProtoError as exc:
            raise CheckpointError(f"{path}: string tensor {name!r}: {exc}") from None


def _decode_strings(data: bytes, count: int, masked_crc: int, big_endian: bool) -> list[bytes]:
    """TF's string layout: varint64 lengths, masked CRC of the lengths, the bytes."""
    if count > len(data):
        raise ProtoError(f"{count} elements cannot fit in {len(data)} bytes")
    order = "big" if big_endian else "little"
    lengths = []
    crc = 0
    pos = 0
    for _ in range(count):
        length, pos = read_varint(data, pos)
        lengths.append(length)
        crc = crc32c(length.to_bytes(4 if length < 2**32 else 8, order), crc)
    if pos + 4 > len(data):
        raise ProtoError("truncated length checksum")
    raw = data[pos : pos + 4]
    if unmask(int.from_bytes(raw, order)) != crc:
        raise ProtoError("checksum mismatch in the string lengths")
    crc = crc32c(raw, crc)
    pos += 4
    if pos + sum(lengths) != len(data):
        raise ProtoError(f"lengths add up to {pos + sum(lengths)} bytes, {len(data)} stored")
    out = []
    for length in lengths:
        out.append(data[pos : pos + length])
        pos += length
    if crc32c(data[pos - sum(lengths) : pos], crc) != unmask(masked_crc):
        raise ProtoError("checksum mismatch")
    return out


def load_tf_checkpoint(
    path: str | os.PathLike[str],
    *,
    names: Iterable[str] | None = None,
    progress: Progress | None = None,
) -> dict[str, torch.Tensor]:
    """Read tensors of a TensorFlow checkpoint into ``{name: tensor}``.

    Args:
        path: see :class:`TFCheckpoint`.
        names: the tensors to read (``KeyError`` if one is missing); default: every
            tensor torch can hold (string and other non-numeric tensors are left out).
        progress: called as ``progress(done, total, name)`` after each tensor.

    Returns:
        CPU tensors in their stored dtype and full shape, in the order of ``names``
        (sorted by name by default).
    """
    ckpt = TFCheckpoint(path)
    if names is None:
        wanted = [n for n in ckpt.names if ckpt._entries[n].dtype in DTYPES]
    else:
        wanted = list(names)
        for name in wanted:
            ckpt._entry(name)
    out: dict[str, torch.Tensor] = {}
    for done, name in enumerate(wanted, 1):
        out[name] = ckpt.read(name)
        if progress is not None:
            progress(done, len(wanted), name)
    return out
