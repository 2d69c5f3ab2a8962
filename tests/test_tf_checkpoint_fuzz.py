"""Fuzz ptfunc.io.tf_checkpoint with truncated and bit-flipped copies of TF-written fixtures.

Oracle: the untouched fixture as read by the same reader (itself checked bit for bit
against TensorFlow's values in test_tf_checkpoint.py). Every damaged copy must either
raise ``CheckpointError`` / ``FileNotFoundError`` with a message, or (where the damage
hit bytes no checksum covers, such as the footer's padding) read back exactly the
original names, dtypes, shapes and bytes. Any other exception or any differing tensor
fails. Cases are deterministic (fixed seed).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from ptfunc.io.tf_checkpoint import CheckpointError, TFCheckpoint

BUNDLE = Path(__file__).resolve().parent / "data" / "checkpoints" / "bundle"
FOOTER = 48
ERROR = "error"


def snapshot(prefix: Path) -> dict | str:
    """Everything the reader returns for a checkpoint, or ``ERROR`` for a clean failure."""
    try:
        ckpt = TFCheckpoint(prefix)
        out = {}
        for name in ckpt.names:
            if ckpt.tf_dtype(name) == "string":
                data = tuple(ckpt.read_strings(name))
            else:
                tensor = ckpt.read(name)
                data = (str(tensor.dtype), tensor.contiguous().view(-1).view(torch_uint8()))
                data = (data[0], bytes(data[1].numpy()))
            out[name] = (ckpt.tf_dtype(name), ckpt.shape(name), data)
        return out
    except (CheckpointError, FileNotFoundError) as exc:
        assert str(exc), "an error without a message"
        return ERROR


def torch_uint8():
    import torch

    return torch.uint8


class Damage:
    """A copy of one fixture in ``tmp_path`` whose files can be damaged and restored."""

    def __init__(self, fixture: str, prefix: str, tmp_path: Path) -> None:
        self.folder = tmp_path / fixture
        shutil.copytree(BUNDLE / fixture, self.folder)
        self.prefix = self.folder / prefix
        self.original = snapshot(self.prefix)
        assert self.original != ERROR

    def check(self, file: str, damaged: bytes, covered: bool = True) -> str:
        """Write ``damaged`` over ``file``, read, restore; return 'error' or 'same'."""
        path = self.folder / file
        good = path.read_bytes()
        path.write_bytes(damaged)
        self.last = [(i, a, b) for i, (a, b) in enumerate(zip(good, damaged)) if a != b]
        try:
            result = snapshot(self.prefix)
        finally:
            path.write_bytes(good)
        if result == ERROR:
            return ERROR
        assert result == self.original, f"{file}: damage read back as different tensors"
        assert not covered, f"{file}: damage in checksummed bytes went unnoticed: {self.last}"
        return "same"


CASES = [
    ("partitioned", "model.ckpt", "model.ckpt.data-00000-of-00001"),
    ("dtypes", "model.ckpt", "model.ckpt.data-00000-of-00001"),
    ("sharded", "model.ckpt", "model.ckpt.data-00001-of-00002"),
    ("object_graph", "ckpt", "ckpt.data-00000-of-00001"),
]


@pytest.mark.parametrize("fixture,prefix,data_file", CASES)
def test_truncated_index_and_data(tmp_path, fixture, prefix, data_file):
    damage = Damage(fixture, prefix, tmp_path)
    index = (damage.folder / f"{prefix}.index").read_bytes()
    data = (damage.folder / data_file).read_bytes()
    step = 1 if fixture == "partitioned" else 5
    for length in range(0, len(index), step):
        assert damage.check(f"{prefix}.index", index[:length]) == ERROR, length
    for length in sorted({*range(0, len(data), 7), len(data) - 1, 1}):
        assert damage.check(data_file, data[:length]) == ERROR, length
    # Extra bytes after the footer move it: the magic number no longer lines up.
    assert damage.check(f"{prefix}.index", index + b"\x00") == ERROR


@pytest.mark.parametrize("fixture,prefix,data_file", CASES)
def test_flipped_bits(tmp_path, fixture, prefix, data_file):
    damage = Damage(fixture, prefix, tmp_path)
    rng = np.random.default_rng(sum(map(ord, fixture)))
    index_file = f"{prefix}.index"
    index = (damage.folder / index_file).read_bytes()
    data = (damage.folder / data_file).read_bytes()
    # No checksum covers the footer: its padding is ignored, and a flip that makes a
    # handle's varint non-canonical (0x0f 0x00 -> 0x8f 0x00) keeps its value.
    footer = range(len(index) - FOOTER, len(index))

    def flip(blob: bytes, pos: int, bit: int) -> bytes:
        return blob[:pos] + bytes([blob[pos] ^ (1 << bit)]) + blob[pos + 1 :]

    outcomes = {ERROR: 0, "same": 0}
    # Every bit of the footer (handles, padding, magic number); one per byte elsewhere.
    for pos in footer:
        for bit in range(8) if fixture == "partitioned" else [int(rng.integers(8))]:
            result = damage.check(index_file, flip(index, pos, bit), covered=False)
            outcomes[result] += 1
    # Random bits and whole bytes elsewhere in the index and in the data.
    for blob, file in [(index, index_file), (data, data_file)]:
        for _ in range(50):
            pos = int(rng.integers(len(blob)))
            bit = int(rng.integers(8))
            covered = file != index_file or pos not in footer
            outcomes[damage.check(file, flip(blob, pos, bit), covered)] += 1
            byte = int(rng.integers(1, 256))
            replaced = blob[:pos] + bytes([blob[pos] ^ byte]) + blob[pos + 1 :]
            outcomes[damage.check(file, replaced, covered)] += 1
    assert outcomes[ERROR] > outcomes["same"] > 0


@pytest.mark.parametrize("fixture", ["partitioned", "object_graph"])
def test_damaged_entries_under_valid_checksums(tmp_path, fixture):
    """Mutate keys and entry protos, then re-write the index with correct block checksums.

    The checksums no longer catch anything, so this exercises the parsers and the
    consistency checks themselves: each case must end in a ``CheckpointError`` or read
    tensors whose dtype and shape agree with what the index says.
    """
    from gen_checkpoints_bundle import table_bytes

    from ptfunc.io._sstable import read_table

    damage = Damage(fixture, "model.ckpt" if fixture == "partitioned" else "ckpt", tmp_path)
    index_file = damage.prefix.name + ".index"
    rows = read_table((damage.folder / index_file).read_bytes())
    assert damage.check(index_file, table_bytes(rows), covered=False) == "same"
    rng = np.random.default_rng(5)
    outcomes = {ERROR: 0, "ok": 0}
    for case in range(150):
        i = int(rng.integers(len(rows)))
        key, value = rows[i]
        target = bytearray(key if case % 5 == 0 and i else value)
        if case % 7 == 0 and target:
            del target[int(rng.integers(len(target))) :]
        for _ in range(int(rng.integers(1, 4))):
            if target:
                target[int(rng.integers(len(target)))] = int(rng.integers(256))
        new = (bytes(target), value) if case % 5 == 0 and i else (key, bytes(target))
        damaged = sorted([*rows[:i], new, *rows[i + 1 :]])  # equal keys: an order error
        path = damage.folder / index_file
        good = path.read_bytes()
        path.write_bytes(table_bytes(damaged))
        try:
            result = snapshot(damage.prefix)
        finally:
            path.write_bytes(good)
        if result == ERROR:
            outcomes[ERROR] += 1
            continue
        outcomes["ok"] += 1
        for _name, (tf_dtype, shape, data) in result.items():
            if tf_dtype != "string":
                count = len(data[1]) // max(1, torch_dtype_size(data[0]))
                assert count == int(np.prod(shape)), (case, _name)
    assert outcomes[ERROR] > 100


def torch_dtype_size(name: str) -> int:
    import torch

    return torch.empty(0, dtype=getattr(torch, name.removeprefix("torch."))).element_size()


def test_parsers_on_random_bytes():
    """Random inputs to each parser end in ``ProtoError`` (a ValueError) or a result."""
    from ptfunc.io._bundle_proto import parse_entry, parse_header
    from ptfunc.io._protowire import ProtoError
    from ptfunc.io._snappy import decompress
    from ptfunc.io._sstable import _block_entries, read_table

    rng = np.random.default_rng(3)
    parsers = [parse_entry, parse_header, decompress, lambda b: _block_entries(b, "data")]
    parsers.append(read_table)
    for case in range(3000):
        blob = rng.integers(0, 256, int(rng.integers(0, 60)), dtype=np.uint8).tobytes()
        if case % 3 == 0:  # bias towards small numbers, which parse further
            blob = bytes(b % 8 for b in blob)
        for parser in parsers:
            try:
                parser(blob)
            except ProtoError as exc:
                assert str(exc)
