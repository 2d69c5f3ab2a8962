"""Atomic file writes: temporary files in the target's folder, then ``os.replace``.

A write that fails half-way (an exception, a full disk, a killed process)
leaves the previous file intact. Files keep their permissions (new ones get
rw-r--r--).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

__all__ = ["write_files_atomically", "write_text", "write_bytes"]


def write_files_atomically(files: Mapping[Path, str | bytes]) -> tuple[str, ...]:
    """Write several files so that none of them is ever left half-written.

    Every content is first written and fsynced to a temporary file in the target's
    directory; only when all of them are on disk is each one moved over its target
    with ``os.replace`` (atomic on POSIX and Windows). If anything fails before the
    moves, every previous file is left as it was and the temporary files are removed.

    Args:
        files: target path -> content (``str`` is written as UTF-8).

    Returns:
        The target paths, as strings, in the order given.
    """
    pending: list[tuple[str, Path]] = []
    try:
        for path, content in files.items():
            data = content.encode("utf-8") if isinstance(content, str) else bytes(content)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            pending.append((tmp, path))
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, _mode_for(path))
        for tmp, path in pending:
            os.replace(tmp, path)
    finally:
        for tmp, _ in pending:
            if os.path.lexists(tmp):
                os.unlink(tmp)
    return tuple(str(path) for path in files)


def _mode_for(path: Path) -> int:
    """Keep an existing file's permissions; new files get rw-r--r--."""
    try:
        return path.stat().st_mode & 0o777
    except FileNotFoundError:
        return 0o644


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Atomically write ``text`` (UTF-8) to ``path``.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
        >>> write_text(p, "hello")
        >>> p.read_text()
        'hello'
    """
    write_files_atomically({Path(path): text})


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Atomically write ``data`` to ``path``."""
    write_files_atomically({Path(path): data})
