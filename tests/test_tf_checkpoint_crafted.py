"""ptfunc.io.tf_checkpoint on hand-made bundles: every inconsistency is a CheckpointError.

Oracle: the bundles are written by the small writer in ``tests/gen_checkpoints_bundle.py``
(whose output TensorFlow reads back exactly, as the generator asserts for the
``big_endian`` and ``snappy`` fixtures); each case breaks one rule of the format and
expects a ``CheckpointError`` naming the file and the problem. The OrderedCode slice
keys are checked against keys TensorFlow wrote (``partitioned`` fixture) and the
format's defining property (byte order = numeric order); Snappy against its spec.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from gen_checkpoints_bundle import entry_proto, field, header_proto, table_bytes, varint

from ptfunc.io._bundle_proto import _signed_num_increasing, slice_key
from ptfunc.io._crc32c import crc32c, mask
from ptfunc.io._protowire import ProtoError, get_ints, parse, read_varint
from ptfunc.io._snappy import decompress
from ptfunc.io._sstable import read_table
from ptfunc.io.tf_checkpoint import CheckpointError, TFCheckpoint

BUNDLE = Path(__file__).resolve().parent / "data" / "checkpoints" / "bundle"
FLOAT, INT32 = 1, 3


def f32(*shape: int) -> np.ndarray:
    return np.arange(math.prod(shape), dtype="<f4").reshape(shape) + 0.5


def write(tmp_path: Path, entries, data: bytes = b"", header: bytes | None = None, **kw) -> Path:
    """Write a bundle of raw ``(key, entry proto)`` pairs (sorted here) and a data file."""
    prefix = tmp_path / "model.ckpt"
    rows = [(b"", header_proto() if header is None else header)] + sorted(entries)
    (tmp_path / "model.ckpt.index").write_bytes(table_bytes(rows, **kw))
    (tmp_path / "model.ckpt.data-00000-of-00001").write_bytes(data)
    return prefix


def plain(name: str, array: np.ndarray, offset: int = 0, dtype: int = FLOAT, **kw):
    raw = array.tobytes()
    proto = entry_proto(dtype, array.shape, 0, offset, len(raw), mask(crc32c(raw)), **kw)
    return name.encode(), proto


# -- building blocks -----------------------------------------------------------------


def test_protowire():
    assert read_varint(b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 0) == (2**64 - 1, 10)
    for bad in [b"\x80", b"\xff" * 10 + b"\x01", b"\xff" * 9 + b"\x02"]:
        with pytest.raises(ProtoError):
            read_varint(bad, 0)
    packed = field(4, varint(1) + varint(300) + varint(2**40))
    assert get_ints(parse(packed + field(4, 7)), 4) == [1, 300, 2**40, 7]
    for bad in [b"\x0b", b"\x12\x05ab", b"\x0d\x01", b"\x00\x01", b"\x09" + bytes(7)]:
        with pytest.raises(ProtoError):
            parse(bad)


def test_snappy_spec_cases():
    literal = b"\x05\x10hello"
    assert decompress(literal) == b"hello"
    # copy with 1-byte offset, overlapping (run-length): "ab" + copy(offset 2, length 6)
    assert decompress(b"\x08\x04ab\x09\x02") == b"abababab"
    # copy with 2-byte and 4-byte offsets, literal with a 1-byte length extension
    text = bytes(range(100))
    assert decompress(varint(105) + b"\xf0\x63" + text + b"\x12\x64\x00") == text + text[:5]
    assert decompress(varint(103) + b"\xf0\x63" + text + b"\x0b\x64\x00\x00\x00") == text + text[:3]
    for bad in [
        b"\x05\x10hell",  # literal past the end
        b"\x06\x10hello",  # shorter than declared
        b"\x04\x10hello",  # longer than declared
        b"\x04\x00a\x01\x00",  # copy offset 0
        b"\x04\x00a\x01\x05",  # copy offset beyond the output
        b"\xff\xff\xff\xff\x0f\x00a",  # impossible declared length
        b"\x08\x04ab\x0a",  # truncated 2-byte offset
    ]:
        with pytest.raises(ProtoError):
            decompress(bad)


def test_ordered_code_signed_numbers_sort_as_bytes():
    values = sorted(
        {0, 1, -1, 63, 64, -64, -65, 8191, 8192, -8193, 2**40, -(2**40), 2**63 - 1}
        | {-(2**63), 2**62, 2**56, 2**56 - 1, -(2**56)}
    )
    encoded = [_signed_num_increasing(v) for v in values]
    assert encoded == sorted(encoded)
    assert [_signed_num_increasing(v) for v in (0, -1, 63, 64, -64, -65)] == [
        b"\x80",
        b"\x7f",
        b"\xbf",
        b"\xc0\x40",
        b"\x40",
        b"\x3f\xbf",
    ]
    assert len(_signed_num_increasing(2**63 - 1)) == 10


def test_slice_keys_match_tensorflow():
    table = read_table((BUNDLE / "partitioned" / "model.ckpt.index").read_bytes())
    stored = {key for key, _ in table if key.startswith(b"\x00")}
    ours = set()
    for name, extents in [
        (b"part/rows", [((0, 3), (0, 4)), ((3, 2), (0, 4)), ((5, 2), (0, 4))]),
        (b"part/cols", [((0, 3), (0, 3)), ((0, 3), (3, 3)), ((0, 3), (6, 2)), ((0, 3), (8, 2))]),
    ]:
        ours |= {slice_key(name, e) for e in extents}
    assert ours <= stored


# -- bundles that read correctly ------------------------------------------------------


def test_multi_block_index_and_grid_of_slices(tmp_path):
    """A 2 x 2 grid of slices, one with full-extent (-1) dims, and 40 small blocks."""
    full = f32(4, 6)
    data, entries = b"", []
    boxes = [((0, 2), (0, 3)), ((0, 2), (3, 3)), ((2, 2), (0, None))]
    for (r0, rn), (c0, cn) in boxes:
        part = np.ascontiguousarray(full[r0 : r0 + rn, c0 : c0 + (cn or 6)])
        key, proto = plain("x", part, offset=len(data))
        entries.append((slice_key(b"grid", ((r0, rn), (c0, cn))), proto))
        data += part.tobytes()
    entries.append((b"grid", entry_proto(FLOAT, (4, 6), slices=boxes)))
    for i in range(40):
        key, proto = plain(f"v/{i:02d}", f32(3) + i, offset=len(data))
        entries.append((key, proto))
        data += (f32(3) + i).tobytes()
    prefix = write(tmp_path, entries, data, block_size=64)
    ckpt = TFCheckpoint(prefix)
    assert ckpt.names == ["grid"] + [f"v/{i:02d}" for i in range(40)]
    assert torch.equal(ckpt.read("grid"), torch.from_numpy(full))
    assert torch.equal(ckpt.read("v/39"), torch.from_numpy(f32(3) + 39))


def test_snappy_fixture_has_compressed_blocks():
    index = (BUNDLE / "snappy" / "model.ckpt.index").read_bytes()
    plain_index = (BUNDLE / "big_endian" / "model.ckpt.index").read_bytes()
    assert len(index) < len(plain_index)
    assert len(read_table(index)) == len(read_table(plain_index))


# -- every broken rule is a CheckpointError -----------------------------------------------


def expect_error(prefix: Path, match: str, read: str | None = None):
    with pytest.raises(CheckpointError, match=match) as info:
        ckpt = TFCheckpoint(prefix)
        if read is not None:
            ckpt.read(read)
    assert str(prefix.parent) in str(info.value)


def test_bad_headers(tmp_path):
    key, proto = plain("a", f32(2))
    cases = [
        (header_proto(num_shards=0), "num_shards"),
        (header_proto(endianness=2), "endianness"),
        (header_proto(min_consumer=2), "version"),
        (b"\xff", "header"),
    ]
    for header, match in cases:
        expect_error(write(tmp_path, [(key, proto)], f32(2).tobytes(), header=header), match)
    # No header entry at all: the first key is a tensor.
    (tmp_path / "model.ckpt.index").write_bytes(table_bytes([(key, proto)]))
    expect_error(tmp_path / "model.ckpt", "header")


def test_inconsistent_entries(tmp_path):
    a = f32(2, 3)
    raw = a.tobytes()
    crc = mask(crc32c(raw))
    cases = [
        (entry_proto(FLOAT, (2, 4), 0, 0, len(raw), crc), "needs 32"),
        (entry_proto(FLOAT, (2, 3), 1, 0, len(raw), crc), "shard 1"),
        (entry_proto(99, (2, 3), 0, 0, len(raw), crc), "unknown dtype"),
        (entry_proto(FLOAT, (2, 3), 0, 8, len(raw), crc), "truncated"),
        (entry_proto(FLOAT, (2**30, 2**30), 0, 0, 2**62, crc), "needs"),
        (entry_proto(FLOAT, (-1, 3), 0, 0, len(raw), crc), "size -1"),
        (entry_proto(FLOAT, (2, 3), 0, 0, len(raw), crc) + b"\x0b", "wire type"),
        (b"\x12\xff\xff\xff\xff\x0f", "claims"),
    ]
    for proto, match in cases:
        expect_error(write(tmp_path, [(b"a", proto)], raw), match)
    # A CRC mismatch shows on read, and names the data file.
    prefix = write(tmp_path, [(b"a", entry_proto(FLOAT, (2, 3), 0, 0, len(raw), crc ^ 1))], raw)
    expect_error(prefix, "data-00000-of-00001: checksum mismatch for 'a'", read="a")
    # A tensor name that is not UTF-8.
    expect_error(
        write(tmp_path, [(b"\xff\xfe", entry_proto(FLOAT, (2, 3), 0, 0, 24, crc))], raw), "UTF-8"
    )


def test_bad_slices(tmp_path):
    top, bottom = f32(1, 3), f32(1, 3) + 10
    data = top.tobytes() + bottom.tobytes()
    parts = [
        (slice_key(b"w", ((0, 1), (0, None))), plain("p", top)[1]),
        (slice_key(b"w", ((1, 1), (0, None))), plain("p", bottom, offset=12)[1]),
    ]
    good = ((0, 1), (0, None)), ((1, 1), (0, None))
    assert torch.equal(
        TFCheckpoint(
            write(tmp_path, [*parts, (b"w", entry_proto(FLOAT, (2, 3), slices=good))], data)
        ).read("w"),
        torch.from_numpy(np.concatenate([top, bottom])),
    )
    cases = [
        (good[:1], "cover 3 of 6"),
        ((good[0], good[0], good[1]), "overlap"),
        ((good[0], ((1, 1), (1, None))), r"w\[1:2, 1:3\]. is not stored"),
        ((good[0], ((1, 5), (0, None))), "outside"),
        ((((0, 1),), good[1]), "rank"),
    ]
    for slices, match in cases:
        entry = entry_proto(FLOAT, (2, 3), slices=slices)
        expect_error(write(tmp_path, [*parts, (b"w", entry)], data), match)
    # The stored slice has the wrong shape or dtype.
    bad = (slice_key(b"w", good[1]), plain("p", top.astype("<i4"), offset=12, dtype=INT32)[1])
    entry = entry_proto(FLOAT, (2, 3), slices=good)
    expect_error(write(tmp_path, [parts[0], bad, (b"w", entry)], data), "expected float32")


def test_bad_tables(tmp_path):
    key, proto = plain("a", f32(2))
    rows = [(b"", header_proto()), (key, proto)]
    index = tmp_path / "model.ckpt.index"
    (tmp_path / "model.ckpt.data-00000-of-00001").write_bytes(f32(2).tobytes())
    prefix = tmp_path / "model.ckpt"
    index.write_bytes(table_bytes(rows[::-1]))
    expect_error(prefix, "out of order")
    index.write_bytes(table_bytes([rows[0], rows[1], rows[1]]))
    expect_error(prefix, "out of order")
    table = bytearray(table_bytes(rows))
    table[-48 + 40] ^= 1
    index.write_bytes(bytes(table))
    expect_error(prefix, "magic")
    index.write_bytes(b"short")
    expect_error(prefix, "footer")
    # An unknown compression type (trailer rewritten with a valid checksum).
    table = bytearray(table_bytes(rows))
    end = _first_block_size(bytes(table))  # the first data block starts at byte 0
    table[end] = 2
    table[end + 1 : end + 5] = mask(crc32c(bytes(table[: end + 1]))).to_bytes(4, "little")
    index.write_bytes(bytes(table))
    expect_error(prefix, "compression type 2")


def _first_block_size(table: bytes) -> int:
    """Size of the first data block, from the index block named in the footer."""
    footer = len(table) - 48
    _, pos = read_varint(table, footer)
    _, pos = read_varint(table, pos)
    index_offset, pos = read_varint(table, pos)
    index_size, _ = read_varint(table, pos)
    block = table[index_offset : index_offset + index_size]
    # first index entry: shared 0, key length, value length, key, value = handle
    _, p = read_varint(block, 0)
    key_len, p = read_varint(block, p)
    _, p = read_varint(block, p)
    p += key_len
    _, p = read_varint(block, p)
    return read_varint(block, p)[0]
