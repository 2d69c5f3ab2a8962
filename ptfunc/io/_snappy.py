"""Pure-Python decompressor for raw (unframed) Snappy blocks.

TensorFlow has written tensor-bundle index tables uncompressed since 1.2; earlier
tables may hold Snappy-compressed blocks (LevelDB's block compression type 1). The
format: a varint with the uncompressed length, then elements, each a tag byte whose
low two bits say literal (0) or back-reference with a 1-, 2- or 4-byte offset (1-3).

>>> decompress(b"\\x0b\\x08abc\\x11\\x03")   # "abc" + copy(offset 3, length 8)
b'abcabcabcab'
"""

from __future__ import annotations

from ._protowire import ProtoError, read_varint

__all__ = ["decompress"]

# Each element of n input bytes yields at most ~22 n output bytes (a 3-byte copy of 64).
_MAX_RATIO = 22


def decompress(data: bytes) -> bytes:
    """Decompress one raw Snappy block; malformed input raises ``ProtoError`` (a ``ValueError``)."""
    try:
        expected, pos = read_varint(data, 0)
    except ProtoError as exc:
        raise ProtoError(f"snappy: bad length preamble ({exc})") from None
    if expected > _MAX_RATIO * len(data) + 64:
        raise ProtoError(f"snappy: declared length {expected} impossible for {len(data)} bytes")
    out = bytearray()
    end = len(data)
    while pos < end:
        tag = data[pos]
        pos += 1
        kind = tag & 3
        if kind == 0:  # literal
            length = tag >> 2
            if length >= 60:
                extra = length - 59
                if pos + extra > end:
                    raise ProtoError("snappy: truncated literal length")
                length = int.from_bytes(data[pos : pos + extra], "little")
                pos += extra
            length += 1
            if pos + length > end:
                raise ProtoError("snappy: literal runs past the end of the block")
            out += data[pos : pos + length]
            pos += length
        else:
            if kind == 1:
                length = ((tag >> 2) & 7) + 4
                if pos + 1 > end:
                    raise ProtoError("snappy: truncated copy")
                offset = ((tag >> 5) << 8) | data[pos]
                pos += 1
            else:
                width = 2 if kind == 2 else 4
                length = (tag >> 2) + 1
                if pos + width > end:
                    raise ProtoError("snappy: truncated copy")
                offset = int.from_bytes(data[pos : pos + width], "little")
                pos += width
            if offset == 0 or offset > len(out):
                raise ProtoError(
                    f"snappy: copy offset {offset} outside the {len(out)} bytes so far"
                )
            start = len(out) - offset
            if offset >= length:
                out += out[start : start + length]
            else:  # overlapping copy repeats the last `offset` bytes
                pattern = bytes(out[start:])
                out += (pattern * (length // offset + 1))[:length]
        if len(out) > expected:
            raise ProtoError(f"snappy: output exceeds the declared {expected} bytes")
    if len(out) != expected:
        raise ProtoError(f"snappy: got {len(out)} bytes, the block declares {expected}")
    return bytes(out)
