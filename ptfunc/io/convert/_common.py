"""What every converter shares: progress reports and atomic output directories."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from ..._atomic import write_files_atomically

__all__ = ["Progress", "report", "write_directory", "read_file_bytes", "copied_files"]

Progress = Callable[[int, int, str], None]
"""``progress(done, total, what)``: called as a long conversion moves on."""


def report(progress: Progress | None, done: int, total: int, what: str) -> None:
    """Call ``progress`` if one was given."""
    if progress is not None:
        progress(done, total, what)


def read_file_bytes(path: str | os.PathLike[str], what: str) -> bytes:
    """The bytes of a file the user named; ``FileNotFoundError`` says which file was expected."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"expected {what} at {path}")
    return path.read_bytes()


def write_directory(output_dir: str | os.PathLike[str], files: Mapping[str, str | bytes]) -> Path:
    """Write ``{file name: content}`` into ``output_dir``; a failure leaves nothing half-written.

    A new directory is built under a temporary name beside it and renamed into place
    at the end; into an existing directory every file is written to a temporary name
    first and moved over its target only when all are on disk. Either way, a failure
    (an exception, a full disk) leaves the previous state as it was.

    Args:
        output_dir: the directory to create or update.
        files: file names (no folders) to ``str`` (written as UTF-8) or ``bytes``.

    Returns:
        ``output_dir`` as a :class:`~pathlib.Path`.
    """
    output_dir = Path(output_dir)
    for name in files:
        if Path(name).name != name:
            raise ValueError(f"expected a plain file name, got {name!r}")
    if output_dir.exists():
        if not output_dir.is_dir():
            raise NotADirectoryError(f"{output_dir} exists and is not a directory")
        write_files_atomically({output_dir / name: data for name, data in files.items()})
        return output_dir
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(
        tempfile.mkdtemp(dir=output_dir.parent, prefix=f".{output_dir.name}.", suffix=".tmp")
    )
    try:
        write_files_atomically({staging / name: data for name, data in files.items()})
        os.chmod(staging, 0o755)
        os.rename(staging, output_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return output_dir


def copied_files(
    sources: Mapping[str, str | os.PathLike[str] | None], *, what: str = "tokenizer file"
) -> dict[str, bytes]:
    """``{output name: bytes}`` of the files the user named; ``None`` entries are skipped.

    Raises:
        FileNotFoundError: a named file is missing (the message names it).
    """
    return {
        name: read_file_bytes(path, f"{what} {name!r}")
        for name, path in sources.items()
        if path is not None
    }
