"""CRC-32C (Castagnoli) in numpy, fast enough to check checkpoints of hundreds of MB.

TensorFlow checksums every block of a tensor-bundle index and every tensor's bytes
with CRC-32C, stored "masked" (:func:`mask`). This module needs no C extension: a
buffer is cut into ``lanes`` equal segments whose CRCs are computed side by side
(one table lookup per 4 bytes, vectorised across lanes), then combined pairwise with
the linear map "append ``n`` zero bytes" (CRC is linear over GF(2)). If the optional
``google_crc32c`` package is importable it is used instead.

>>> hex(crc32c(b"123456789"))
'0xe3069283'
>>> crc32c(b"6789", crc32c(b"12345")) == crc32c(b"123456789")
True
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = ["crc32c", "mask", "unmask"]

_POLY = 0x82F63B78  # reflected Castagnoli polynomial
_MASK_DELTA = 0xA282EAD8
_CHUNK = 1 << 22  # bytes handled per vectorised pass (bounds the temporary copies)
_MAX_LANES = 1 << 14
_MIN_VECTOR = 1024  # below this many bytes a plain Python loop is faster


def _byte_table() -> np.ndarray:
    """``T[b]``: the register after shifting in one byte ``b`` from state 0, uint32 (256,)."""
    t = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        t = np.where(t & 1, (t >> 1) ^ np.uint32(_POLY), t >> 1).astype(np.uint32)
    return t


_TABLE = _byte_table()
_TABLE_LIST = [int(v) for v in _TABLE]


def _apply(columns: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Apply the GF(2)-linear map with images ``columns[b]`` of bit ``b`` to uint32 ``values``."""
    out = np.zeros_like(values)
    for b in range(32):
        out ^= np.where((values >> np.uint32(b)) & np.uint32(1), columns[b], np.uint32(0))
    return out


_BITS = np.left_shift(np.uint32(1), np.arange(32, dtype=np.uint32))
_ONE_ZERO_BYTE = _TABLE[_BITS & 0xFF] ^ (_BITS >> np.uint32(8))


@functools.lru_cache(maxsize=128)
def _zeros_columns(n: int) -> np.ndarray:
    """Columns (uint32 (32,)) of the map "feed ``n`` zero bytes into the register"."""
    result = _BITS.copy()  # identity
    power = _ONE_ZERO_BYTE.copy()
    while n:
        if n & 1:
            result = _apply(power, result)
        n >>= 1
        if n:
            power = _apply(power, power)
    return result


@functools.lru_cache(maxsize=128)
def _zeros_tables(n: int) -> np.ndarray:
    """Byte tables (uint32 (4, 256)) of the "feed ``n`` zero bytes" map, one per input byte."""
    columns = _zeros_columns(n)
    tables = np.zeros((4, 256), dtype=np.uint32)
    for p in range(4):
        for b in range(8):
            size = 1 << b
            tables[p, size : 2 * size] = tables[p, :size] ^ columns[8 * p + b]
    return tables


def _shift(values: np.ndarray, tables: np.ndarray) -> np.ndarray:
    """Apply a map given by its byte ``tables`` to uint32 ``values``."""
    return (
        tables[0][values & 0xFF]
        ^ tables[1][(values >> np.uint32(8)) & 0xFF]
        ^ tables[2][(values >> np.uint32(16)) & 0xFF]
        ^ tables[3][values >> np.uint32(24)]
    )


@functools.lru_cache(maxsize=1)
def _word_tables() -> tuple[np.ndarray, np.ndarray]:
    """Tables for one 4-byte step: register ``s`` -> ``lo[s & 0xFFFF] ^ hi[s >> 16]``."""
    columns = _zeros_columns(4)
    lo = np.zeros(1 << 16, dtype=np.uint32)
    hi = np.zeros(1 << 16, dtype=np.uint32)
    for b in range(16):
        size = 1 << b
        lo[size : 2 * size] = lo[:size] ^ columns[b]
        hi[size : 2 * size] = hi[:size] ^ columns[16 + b]
    return lo, hi


def _raw_python(data: memoryview, state: int) -> int:
    table = _TABLE_LIST
    for byte in data:
        state = table[(state ^ byte) & 0xFF] ^ (state >> 8)
    return state


def _raw_zero_state(data: memoryview) -> int:
    """Register after feeding ``data`` into a zero register (no pre/post inversion)."""
    n = len(data)
    if n < _MIN_VECTOR:
        return _raw_python(data, 0)
    lanes = _MAX_LANES
    while lanes > 1 and n < 64 * lanes:
        lanes //= 2
    words_per_lane = n // (4 * lanes)
    body = 4 * words_per_lane * lanes
    head = n - body
    state = _raw_zero_state(data[:head]) if head else 0
    # Lane i holds words [i * L, (i + 1) * L); transposed so each step reads a contiguous row.
    words = np.frombuffer(data[head:], dtype="<u4").reshape(lanes, words_per_lane).T.copy()
    lo, hi = _word_tables()
    crc = np.zeros(lanes, dtype=np.uint32)
    index = np.empty(lanes, dtype=np.uint32)
    part = np.empty(lanes, dtype=np.uint32)
    for row in words:
        np.bitwise_xor(crc, row, out=crc)
        np.bitwise_and(crc, 0xFFFF, out=index)
        np.take(lo, index, out=part)
        np.right_shift(crc, 16, out=index)
        np.take(hi, index, out=crc)
        np.bitwise_xor(crc, part, out=crc)
    segment = 4 * words_per_lane
    while len(crc) > 1:  # combine neighbours: crc(A || B) = zeros_|B|(crc(A)) ^ crc(B)
        crc = _shift(crc[0::2], _zeros_tables(segment)) ^ crc[1::2]
        segment *= 2
    if head:
        state = int(_shift(np.array([state], dtype=np.uint32), _zeros_tables(body))[0])
    return state ^ int(crc[0])


def _crc32c_numpy(data: memoryview, crc: int) -> int:
    state = crc ^ 0xFFFFFFFF
    for start in range(0, len(data), _CHUNK):
        chunk = data[start : start + _CHUNK]
        shifted = _shift(np.array([state], dtype=np.uint32), _zeros_tables(len(chunk)))
        state = int(shifted[0]) ^ _raw_zero_state(chunk)
    return state ^ 0xFFFFFFFF


try:  # optional fast path
    import google_crc32c as _google_crc32c  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the environment
    _google_crc32c = None


def crc32c(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """CRC-32C of ``data`` (any contiguous buffer), continuing from a previous ``crc``.

    Args:
        data: the bytes to checksum.
        crc: the CRC of what came before ``data`` (0 for a fresh start).

    Returns:
        The CRC-32C as an ``int`` in ``[0, 2**32)``.
    """
    view = memoryview(data).cast("B")
    if _google_crc32c is not None:
        return int(_google_crc32c.extend(crc, bytes(view)))
    if len(view) < _MIN_VECTOR:
        return _raw_python(view, crc ^ 0xFFFFFFFF) ^ 0xFFFFFFFF
    return _crc32c_numpy(view, crc)


def mask(crc: int) -> int:
    """TensorFlow's (and LevelDB's) stored form of a CRC: rotate right 15 bits, add a constant."""
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


def unmask(masked: int) -> int:
    """Inverse of :func:`mask`."""
    rotated = (masked - _MASK_DELTA) & 0xFFFFFFFF
    return ((rotated >> 17) | (rotated << 15)) & 0xFFFFFFFF
