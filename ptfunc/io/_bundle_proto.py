"""TensorFlow tensor-bundle metadata: the index's protos, dtypes and slice keys.

Messages (``tensorflow/core/protobuf/tensor_bundle.proto`` and friends), by field number:

* ``BundleHeaderProto``: 1 ``num_shards`` int32, 2 ``endianness`` (0 little, 1 big),
  3 ``version`` VersionDef (1 ``producer``, 2 ``min_consumer``, 3 ``bad_consumers``).
* ``BundleEntryProto``: 1 ``dtype`` DataType, 2 ``shape`` TensorShapeProto, 3 ``shard_id``,
  4 ``offset``, 5 ``size``, 6 ``crc32c`` fixed32 (masked), 7 ``slices`` TensorSliceProto.
* ``TensorShapeProto``: 2 ``dim`` (1 ``size`` int64, 2 ``name``), 3 ``unknown_rank``.
* ``TensorSliceProto``: 1 ``extent`` (1 ``start`` int64, 2 ``length`` int64, absent = all).

The slices of a partitioned variable are stored under keys made by TensorFlow's
``checkpoint::EncodeTensorNameSlice`` (OrderedCode), see :func:`slice_key`.
All parse errors raise ``ProtoError`` (a ``ValueError``).
"""

from __future__ import annotations

import re
from typing import NamedTuple

import numpy as np
import torch

from ._protowire import ProtoError, get_bytes, get_int, get_ints, parse, to_signed

__all__ = [
    "DType",
    "DTYPES",
    "DTYPE_NAMES",
    "DT_STRING",
    "Header",
    "Entry",
    "parse_header",
    "parse_entry",
    "slice_key",
]

DT_STRING = 7


class DType(NamedTuple):
    """How a TF dtype is stored: ``storage`` numpy dtype (little-endian) viewed as ``torch``."""

    name: str
    storage: str
    torch: torch.dtype


DTYPES: dict[int, DType] = {
    1: DType("float32", "<f4", torch.float32),
    2: DType("float64", "<f8", torch.float64),
    3: DType("int32", "<i4", torch.int32),
    4: DType("uint8", "u1", torch.uint8),
    5: DType("int16", "<i2", torch.int16),
    6: DType("int8", "i1", torch.int8),
    8: DType("complex64", "<c8", torch.complex64),
    9: DType("int64", "<i8", torch.int64),
    10: DType("bool", "u1", torch.bool),
    14: DType("bfloat16", "<i2", torch.bfloat16),
    17: DType("uint16", "<i2", torch.uint16),
    18: DType("complex128", "<c16", torch.complex128),
    19: DType("float16", "<f2", torch.float16),
    22: DType("uint32", "<i4", torch.uint32),
    23: DType("uint64", "<i8", torch.uint64),
    24: DType("float8_e5m2", "u1", torch.float8_e5m2),
    25: DType("float8_e4m3fn", "u1", torch.float8_e4m3fn),
}
"""TF ``DataType`` enum values this reader turns into torch tensors."""

DTYPE_NAMES: dict[int, str] = {
    **{k: v.name for k, v in DTYPES.items()},
    7: "string",
    11: "qint8",
    12: "quint8",
    13: "qint32",
    15: "qint16",
    16: "quint16",
    20: "resource",
    21: "variant",
    26: "float8_e4m3fnuz",
    27: "float8_e4m3b11fnuz",
    28: "float8_e5m2fnuz",
    29: "int4",
    30: "uint4",
    31: "int2",
    32: "uint2",
    33: "float4_e2m1fn",
}
"""Every TF ``DataType`` a checkpoint may name; those outside :data:`DTYPES` cannot be read."""


class Header(NamedTuple):
    num_shards: int
    big_endian: bool


class Entry(NamedTuple):
    """One ``BundleEntryProto``; ``slices`` holds raw ``(start, length or None)`` per dim."""

    dtype: int
    shape: tuple[int, ...]
    shard_id: int
    offset: int
    size: int
    crc32c: int
    slices: tuple[tuple[tuple[int, int | None], ...], ...]


_TENSOR_BUNDLE_VERSION = 1
_MAX_RANK = 254  # TensorFlow's TensorShape limit


def _message(fields: dict, number: int) -> dict:
    # Repeated occurrences of a singular message field merge, as concatenation does.
    return parse(b"".join(get_bytes(fields, number)))


def _int32(fields: dict, number: int, what: str) -> int:
    value = to_signed(get_int(fields, number))
    if not -(2**31) <= value < 2**31:
        raise ProtoError(f"{what} {value} does not fit in int32")
    return value


def parse_header(data: bytes) -> Header:
    """Decode and check the ``BundleHeaderProto`` stored under the key ``""``."""
    fields = parse(data)
    num_shards = _int32(fields, 1, "num_shards")
    endianness = get_int(fields, 2)
    version = _message(fields, 3)
    producer = _int32(version, 1, "version.producer")
    min_consumer = _int32(version, 2, "version.min_consumer")
    bad = [to_signed(v) for v in get_ints(version, 3)]
    if num_shards < 1:
        raise ProtoError(f"header: num_shards is {num_shards}, expected at least 1")
    if endianness not in (0, 1):
        raise ProtoError(f"header: unknown endianness {endianness} (0 little, 1 big)")
    if producer < 0 or min_consumer > _TENSOR_BUNDLE_VERSION or _TENSOR_BUNDLE_VERSION in bad:
        raise ProtoError(
            f"header: checkpoint format version (producer {producer}, min consumer "
            f"{min_consumer}, bad consumers {bad}) is not readable as version "
            f"{_TENSOR_BUNDLE_VERSION}"
        )
    return Header(num_shards, endianness == 1)


def _parse_shape(fields: dict) -> tuple[int, ...]:
    if get_int(fields, 3):
        raise ProtoError("shape has unknown rank")
    dims = []
    if len(get_bytes(fields, 2)) > _MAX_RANK:
        raise ProtoError(f"shape has more than {_MAX_RANK} dimensions")
    for dim in get_bytes(fields, 2):
        size = to_signed(get_int(parse(dim), 1))
        if size < 0:
            raise ProtoError(f"shape has a dimension of size {size}")
        dims.append(size)
    return tuple(dims)


def _parse_slice(data: bytes) -> tuple[tuple[int, int | None], ...]:
    extents = []
    for extent in get_bytes(parse(data), 1):
        fields = parse(extent)
        start = to_signed(get_int(fields, 1))
        length = to_signed(get_int(fields, 2)) if 2 in fields else None
        extents.append((start, length))
    return tuple(extents)


def parse_entry(data: bytes) -> Entry:
    """Decode one ``BundleEntryProto`` (values are checked by the reader, not here)."""
    fields = parse(data)
    return Entry(
        dtype=get_int(fields, 1),
        shape=_parse_shape(_message(fields, 2)),
        shard_id=_int32(fields, 3, "shard_id"),
        offset=to_signed(get_int(fields, 4)),
        size=to_signed(get_int(fields, 5)),
        crc32c=get_int(fields, 6) & 0xFFFFFFFF,
        slices=tuple(_parse_slice(s) for s in get_bytes(fields, 7)),
    )


# OrderedCode (tensorflow/core/lib/strings/ordered_code.cc), the writer side.


def _num_increasing(value: int) -> bytes:
    body = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return bytes([len(body)]) + body


_ESCAPES = {b"\x00": b"\x00\xff", b"\xff": b"\xff\x00"}


def _string(value: bytes) -> bytes:
    escaped = re.sub(rb"[\x00\xff]", lambda m: _ESCAPES[m.group()], value)
    return escaped + b"\x00\x01"


def _signed_num_increasing(value: int) -> bytes:
    magnitude = ~value if value < 0 else value
    length = magnitude.bit_length() // 7 + 1  # header of `length` bits, then the sign bit
    encoded = bytearray((value & ((1 << 80) - 1)).to_bytes(10, "big")[10 - length :])
    header = ((1 << length) - 1) << (16 - length)
    encoded[0] ^= header >> 8
    if length > 1:
        encoded[1] ^= header & 0xFF
    return bytes(encoded)


def slice_key(name: bytes, extents: tuple[tuple[int, int | None], ...]) -> bytes:
    """Index key of one stored slice of ``name`` (``length`` None = the whole dimension)."""
    parts = [_num_increasing(0), _string(name), _num_increasing(len(extents))]
    for start, length in extents:
        parts.append(_signed_num_increasing(start))
        parts.append(_signed_num_increasing(-1 if length is None else length))
    return b"".join(parts)


def storage_dtype(dtype: DType, big_endian: bool) -> np.dtype:
    """numpy dtype to read the stored bytes with."""
    storage = np.dtype(dtype.storage)
    return storage.newbyteorder(">") if big_endian else storage
