"""Reader for the LevelDB-style sorted table TensorFlow uses as a checkpoint's ``.index`` file.

Layout (``tensorflow/core/lib/io/format.h``): data blocks, a metaindex block, an
index block, then a 48-byte footer = metaindex handle + index handle (each a pair of
varint64 ``offset, size``), zero padding to 40 bytes, and the magic number
``0xdb4775248b80fb57`` as fixed64 little-endian. Each block is followed by a 5-byte
trailer: compression type (0 none, 1 Snappy) and the masked CRC-32C of the block
contents plus that type byte. A block holds prefix-compressed entries
``varint32 shared, varint32 non_shared, varint32 value_length, key delta, value``,
then ``uint32 restarts[n]`` and ``uint32 n``. The index block maps a key at or after
each data block's last key to that block's handle.

Every inconsistency raises ``ProtoError`` (a ``ValueError``) saying what is wrong; the
caller adds the file name.
"""

from __future__ import annotations

from . import _snappy
from ._crc32c import crc32c, unmask
from ._protowire import ProtoError, read_varint

__all__ = ["read_table", "FOOTER_SIZE", "MAGIC"]

MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
_HANDLES_SIZE = 40  # two handles of at most 10 + 10 bytes, zero-padded
_TRAILER_SIZE = 5


def _read_handle(data: bytes, pos: int, limit: int) -> tuple[tuple[int, int], int]:
    offset, pos = read_varint(data, pos, limit)
    size, pos = read_varint(data, pos, limit)
    return (offset, size), pos


def _read_block(table: bytes, handle: tuple[int, int], blocks_end: int, what: str) -> bytes:
    """Contents of the block at ``handle``, checksum verified and decompressed."""
    offset, size = handle
    if offset + size + _TRAILER_SIZE > blocks_end:
        raise ProtoError(
            f"{what} block [{offset}, {offset + size}) + trailer runs past the end of the "
            f"blocks at byte {blocks_end} (truncated or corrupt file)"
        )
    contents = table[offset : offset + size]
    kind = table[offset + size]
    stored = int.from_bytes(table[offset + size + 1 : offset + size + 5], "little")
    actual = crc32c(table[offset : offset + size + 1])
    if unmask(stored) != actual:
        raise ProtoError(f"{what} block at byte {offset}: checksum mismatch (corrupt file)")
    if kind == 0:
        return contents
    if kind == 1:
        return _snappy.decompress(contents)
    raise ProtoError(f"{what} block at byte {offset}: unknown compression type {kind}")


def _block_entries(block: bytes, what: str) -> list[tuple[bytes, bytes]]:
    """The ``(key, value)`` pairs of one block, in stored order."""
    if len(block) < 4:
        raise ProtoError(f"{what} block of {len(block)} bytes is too short for its restart count")
    num_restarts = int.from_bytes(block[-4:], "little")
    if num_restarts > (len(block) - 4) // 4:
        raise ProtoError(
            f"{what} block claims {num_restarts} restart points, too many for its size"
        )
    limit = len(block) - 4 - 4 * num_restarts
    restarts = [
        int.from_bytes(block[limit + 4 * i : limit + 4 * i + 4], "little")
        for i in range(num_restarts)
    ]
    entries: list[tuple[bytes, bytes]] = []
    starts: dict[int, int] = {}  # entry offset -> shared prefix length
    key = b""
    pos = 0
    while pos < limit:
        entry_start = pos
        shared, pos = read_varint(block, pos, limit)
        non_shared, pos = read_varint(block, pos, limit)
        value_length, pos = read_varint(block, pos, limit)
        if shared > len(key):
            raise ProtoError(f"{what} block: entry shares {shared} bytes of a {len(key)}-byte key")
        if non_shared + value_length > limit - pos:
            raise ProtoError(f"{what} block: entry at byte {entry_start} runs past the entries")
        key = key[:shared] + block[pos : pos + non_shared]
        pos += non_shared
        entries.append((key, block[pos : pos + value_length]))
        pos += value_length
        starts[entry_start] = shared
    if entries and (not restarts or restarts[0] != 0):
        raise ProtoError(f"{what} block: the first restart point is not the first entry")
    for restart in restarts:
        if starts.get(restart) != 0 and not (restart == 0 and not entries):
            raise ProtoError(f"{what} block: restart point {restart} is not an unshared entry")
    return entries


def read_table(table: bytes) -> list[tuple[bytes, bytes]]:
    """All ``(key, value)`` entries of a table file's bytes, in key order.

    Verifies the footer magic, every block's CRC-32C, the block layout and that keys
    strictly increase.
    """
    if len(table) < FOOTER_SIZE:
        raise ProtoError(f"{len(table)} bytes is shorter than the {FOOTER_SIZE}-byte table footer")
    footer_start = len(table) - FOOTER_SIZE
    magic = int.from_bytes(table[footer_start + _HANDLES_SIZE :], "little")
    if magic != MAGIC:
        raise ProtoError(
            f"bad table magic number {magic:#018x} (expected {MAGIC:#018x}); "
            "not a TensorFlow V2 checkpoint index, or truncated"
        )
    limit = footer_start + _HANDLES_SIZE
    metaindex_handle, pos = _read_handle(table, footer_start, limit)
    index_handle, _ = _read_handle(table, pos, limit)
    _block_entries(_read_block(table, metaindex_handle, footer_start, "metaindex"), "metaindex")
    index = _block_entries(_read_block(table, index_handle, footer_start, "index"), "index")
    entries: list[tuple[bytes, bytes]] = []
    for separator, handle_bytes in index:
        handle, end = _read_handle(handle_bytes, 0, len(handle_bytes))
        if end != len(handle_bytes):
            raise ProtoError("index block: trailing bytes after a block handle")
        block = _block_entries(_read_block(table, handle, footer_start, "data"), "data")
        if block and block[-1][0] > separator:
            raise ProtoError("index block: a data block's keys pass its index key")
        for key, value in block:
            if entries and key <= entries[-1][0]:
                raise ProtoError(f"table keys out of order at {key!r}")
            entries.append((key, value))
    return entries
