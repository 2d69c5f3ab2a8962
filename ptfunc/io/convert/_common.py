"""What every converter shares: progress reports and atomic output directories."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

from ..._atomic import check_file_names, new_directory, write_files_atomically

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
    """Write ``{file name: content}`` into ``output_dir`` as one all-or-nothing save.

    A new directory is built under a staging name beside it and renamed into place at
    the end; into an existing directory the files are committed as one set (see
    :mod:`ptfunc._atomic`), other files there are kept, and a sharded
    ``model.safetensors.index.json`` that the new ``model.safetensors`` supersedes is
    removed with its shards in the same step. Either way a failure, or a kill at any
    point, leaves the previous model or the new one (or, killed mid-commit, a directory
    ptfunc refuses to load with ``CheckpointError``), never a mix.

    Args:
        output_dir: the directory to create or update.
        files: file names (no folders) to ``str`` (written as UTF-8) or ``bytes``;
            ``config.json`` first (``pretrained_files`` comes first), then the tokenizer
            files, vocabulary first.

    Returns:
        ``output_dir`` as a :class:`~pathlib.Path`.
    """
    from ..pretrained import superseded_files

    output_dir = Path(output_dir)
    check_file_names(files)
    if output_dir.exists():
        if not output_dir.is_dir():
            raise NotADirectoryError(f"{output_dir} exists and is not a directory")
        stale = superseded_files(output_dir, files)
        write_files_atomically(
            {output_dir / name: data for name, data in files.items()},
            remove=[output_dir / name for name in stale],
        )
        return output_dir
    with new_directory(output_dir) as staging:
        write_files_atomically({staging / name: data for name, data in files.items()})
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
