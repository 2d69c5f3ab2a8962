"""A minimal protocol-buffer wire-format decoder (no ``protobuf`` package needed).

Enough to read TensorFlow's small metadata messages: a message is parsed into
``{field number: [values]}`` where a value is an ``int`` (varint, fixed32, fixed64
wire types) or ``bytes`` (length-delimited: strings, sub-messages, packed repeated
fields). Every malformed input raises :class:`ProtoError` (a ``ValueError``).

>>> parse(b"\\x08\\x96\\x01\\x12\\x02hi")
{1: [150], 2: [b'hi']}
"""

from __future__ import annotations

__all__ = ["ProtoError", "read_varint", "parse", "get_int", "get_bytes", "get_ints", "to_signed"]

_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5


class ProtoError(ValueError):
    """Malformed protocol-buffer or varint bytes."""


def read_varint(data: bytes, pos: int, limit: int | None = None) -> tuple[int, int]:
    """Decode a base-128 varint (at most 10 bytes, < 2**64) at ``data[pos]``.

    Returns:
        ``(value, position after it)``.
    """
    end = len(data) if limit is None else limit
    result = 0
    shift = 0
    while True:
        if pos >= end:
            raise ProtoError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
        if shift >= 70:
            raise ProtoError("varint longer than 10 bytes")
    if result >= 1 << 64:
        raise ProtoError("varint does not fit in 64 bits")
    return result, pos


def to_signed(value: int, bits: int = 64) -> int:
    """Two's-complement reading of an unsigned ``value`` (int32/int64 proto fields)."""
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def parse(data: bytes) -> dict[int, list[int | bytes]]:
    """Split a serialized message into ``{field number: [raw values in order]}``.

    Groups (wire types 3 and 4) are refused; unknown fields are kept, for the caller to ignore.
    """
    fields: dict[int, list[int | bytes]] = {}
    pos = 0
    end = len(data)
    while pos < end:
        key, pos = read_varint(data, pos)
        number, wire = key >> 3, key & 7
        if number == 0 or number >= 1 << 29:
            raise ProtoError(f"invalid field number {number}")
        value: int | bytes
        if wire == _VARINT:
            value, pos = read_varint(data, pos)
        elif wire == _FIXED64:
            if pos + 8 > end:
                raise ProtoError(f"truncated fixed64 field {number}")
            value = int.from_bytes(data[pos : pos + 8], "little")
            pos += 8
        elif wire == _FIXED32:
            if pos + 4 > end:
                raise ProtoError(f"truncated fixed32 field {number}")
            value = int.from_bytes(data[pos : pos + 4], "little")
            pos += 4
        elif wire == _LENGTH:
            length, pos = read_varint(data, pos)
            if length > end - pos:
                raise ProtoError(f"field {number} claims {length} bytes, {end - pos} left")
            value = bytes(data[pos : pos + length])
            pos += length
        else:
            raise ProtoError(f"unsupported wire type {wire} for field {number}")
        fields.setdefault(number, []).append(value)
    return fields


def get_int(fields: dict, number: int, default: int = 0) -> int:
    """The last value of a scalar varint / fixed field (protobuf's "last one wins")."""
    values = fields.get(number)
    if not values:
        return default
    value = values[-1]
    if not isinstance(value, int):
        raise ProtoError(f"field {number}: expected a number, got length-delimited bytes")
    return value


def get_bytes(fields: dict, number: int) -> list[bytes]:
    """All values of a length-delimited field (strings, sub-messages)."""
    values = fields.get(number, [])
    for value in values:
        if not isinstance(value, bytes):
            raise ProtoError(f"field {number}: expected length-delimited bytes, got a number")
    return values


def get_ints(fields: dict, number: int) -> list[int]:
    """All values of a repeated varint field, packed or not (both may be mixed)."""
    out: list[int] = []
    for value in fields.get(number, []):
        if isinstance(value, int):
            out.append(value)
            continue
        pos = 0
        while pos < len(value):
            item, pos = read_varint(value, pos)
            out.append(item)
    return out
