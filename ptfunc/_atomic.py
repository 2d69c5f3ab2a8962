"""Atomic saves: the files of one save appear together or not at all.

A save writes files that only make sense together: ``config.json`` with
``model.safetensors``, a vocabulary with its ``added_tokens.json``. Moving them into
place one ``os.replace`` at a time is atomic per file, not per set: a process killed
between two renames leaves a new ``config.json`` beside the old weights, which loads
silently as a wrong model. Here the whole set is one step, as seen by ptfunc's loaders
and by other tools (``transformers``) reading the directory.

**Into a new directory** (:func:`save_directory`, :func:`new_directory`): everything is
written and fsynced inside a sibling staging directory
``.<name>.ptfunc-tmp-<host>-<pid>-<token>``, which is then renamed to ``<name>``. One rename:
a reader finds no directory or the complete one.

**Into an existing directory** (:func:`write_files_atomically`; users save over their
own folders, which may hold other files of theirs):

1. *Write.* Each new file goes to ``.<file>.ptfunc-tmp-<host>-<pid>-<token>`` beside its target
   and is fsynced. This is nearly all of a save's time, and the previous files are not
   touched: a kill here leaves the previous save exactly as it was.
2. *Commit* (a few renames). A marker ``.<first>.ptfunc-saving`` is written, ``<first>``
   being the first file of the set; every previous file of the set is renamed aside to
   ``.<file>.ptfunc-old-<host>-<pid>-<token>``, in the order given; the new files are renamed
   into place in the reverse order, so the first file comes last; the marker is
   removed, then the previous files.

So the first file is the first to go and the last to come back, and a previous file is
never beside a new one. Wherever a kill stops the commit, a reader that needs the first
file finds the complete previous set, the complete new set, or no first file, which
fails to load (``transformers``: no config.json). Callers therefore list first the file
every reader needs (``config.json``; a tokenizer's vocabulary), before the files a
reader takes when present. ptfunc's model loader also checks the marker
(:func:`check_save_complete`) and raises :class:`~ptfunc.errors.CheckpointError` naming
the interrupted save. An exception during the commit (not a kill) puts the previous
files back. A set of one file is renamed over its target directly: atomic by itself.

**Leftovers.** A killed save leaves its ``.ptfunc-tmp-`` and ``.ptfunc-old-`` files, or
its staging directory. The next save into the same directory removes those whose
process is gone: made on this machine (``<host>``, a hash of its name) by a ``<pid>``
that no longer runs, or by this very process but not by one of its saves in progress (a
restarted container often gets the same pid); or over a day old, whichever machine made
them (pids are reused; another machine's processes cannot be seen, so the leftovers of a
save killed there wait a day). Processes saving side by side into one shared directory,
like the ranks of a sharded checkpoint, thus never remove each other's files. No loader
reads leftovers: they start with a dot and end in a suffix no loader names or globs.

Not covered: two processes saving the same files at once (one of them wins; a reader
may get an error); a reader that runs *while* a save commits (it may read the previous
config.json, then the new weights).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from .errors import CheckpointError

__all__ = [
    "write_files_atomically",
    "save_directory",
    "new_directory",
    "check_save_complete",
    "check_file_names",
    "write_text",
    "write_bytes",
]

_TMP = ".ptfunc-tmp-"
_OLD = ".ptfunc-old-"
_MARKER = ".ptfunc-saving"
_LEFTOVER = re.compile(
    r"\.(?P<name>.+)\.ptfunc-(?:tmp|old)-(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-(?P<token>[0-9a-f]{12})"
)
_HOST = hashlib.sha256(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]
_MAX_AGE_S = 24 * 3600.0  # a leftover older than this is removed even if its pid runs
_CHUNK = 1 << 26
_saving: set[str] = set()  # tokens of this process's saves in progress


def write_files_atomically(
    files: Mapping[Path, str | bytes], *, remove: Iterable[Path] = ()
) -> tuple[str, ...]:
    """Replace a set of files in existing directories as one step (see the module doc).

    The files of one directory are one set: its first file (in the order given) is the
    last to appear, and no previous file is ever beside a new one. A failure before or
    during the commit leaves the previous files as they were. Stale leftovers of killed
    saves are removed first.

    Args:
        files: target path -> content (``str`` is written as UTF-8). List first the file
            that readers cannot do without.
        remove: files to delete in the same step (e.g. weight shards the new files
            supersede); missing ones are ignored.

    Returns:
        The target paths, as strings, in the order given.

    Raises:
        FileNotFoundError: a target's directory does not exist.
    """
    groups: dict[Path, tuple[dict[str, str | bytes], list[str]]] = {}
    for path, content in files.items():
        groups.setdefault(Path(path).parent, ({}, []))[0][Path(path).name] = content
    for path in remove:
        groups.setdefault(Path(path).parent, ({}, []))[1].append(Path(path).name)
    for directory, (contents, removing) in groups.items():
        _commit_in_place(directory, contents, removing)
    return tuple(str(path) for path in files)


def save_directory(
    directory: str | os.PathLike[str],
    files: Mapping[str, str | bytes],
    *,
    remove: Iterable[str] = (),
) -> Path:
    """Write ``{file name: content}`` into ``directory`` as one all-or-nothing save.

    A missing directory is built under a staging name and renamed into place
    (:func:`new_directory`); into an existing one the files are committed as a set
    (:func:`write_files_atomically`), other files there are left alone.

    Args:
        directory: created (with its parents) when missing.
        files: plain file names (no folders) -> ``str`` (UTF-8) or ``bytes``; the one
            every reader needs first.
        remove: file names to delete in the same step (only in an existing directory).

    Returns:
        ``directory`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: a name is not a plain file name.
        NotADirectoryError: ``directory`` is an existing file.
    """
    directory = Path(directory)
    check_file_names(files)
    if directory.exists():
        if not directory.is_dir():
            raise NotADirectoryError(f"{directory} exists and is not a directory")
        write_files_atomically(
            {directory / name: data for name, data in files.items()},
            remove=[directory / name for name in remove],
        )
        return directory
    with new_directory(directory) as staging:
        write_files_atomically({staging / name: data for name, data in files.items()})
    return directory


def check_file_names(names: Iterable[str]) -> None:
    """Raise ``ValueError`` unless every name is a plain file name (no folder, not ``..``)."""
    for name in names:
        if Path(name).name != name or name in ("", ".", ".."):
            raise ValueError(f"expected a plain file name, got {name!r}")


@contextlib.contextmanager
def new_directory(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A private staging directory that becomes ``path`` in one rename when the block ends.

    Fill the directory this yields; leaving the block without an exception fsyncs it and
    renames it to ``path``, an exception removes it. Stale staging directories of killed
    saves to ``path`` are removed first. The parents of ``path`` are created.

    Raises:
        FileExistsError: ``path`` exists (not empty) when the block ends.

    Example:
        >>> import tempfile, pathlib
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "out"
        >>> with new_directory(target) as staging:
        ...     _ = (staging / "a.txt").write_text("hello")
        >>> (target / "a.txt").read_text()
        'hello'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    token = _begin()
    staging = path.parent / f".{path.name}{_TMP}{_stamp(token)}"
    try:
        _remove_leftovers(path.parent, only=path.name)
        os.mkdir(staging, 0o700)
        yield staging
        os.chmod(staging, 0o755)
        _fsync_dir(staging)
        try:
            os.rename(staging, path)
        except OSError as error:
            if not path.is_dir():
                raise
            raise FileExistsError(
                f"{path} was created by someone else during the save; nothing was written "
                "to it (save again to write into it)"
            ) from error
        _fsync_dir(path.parent)
    finally:
        if os.path.lexists(staging):
            shutil.rmtree(staging, ignore_errors=True)
        _saving.discard(token)


def check_save_complete(directory: str | os.PathLike[str], first: str) -> None:
    """Raise ``CheckpointError`` if a save of the set led by file ``first`` is unfinished.

    ``first`` is the file the set's save listed first (``config.json`` for a model). A
    save killed while committing (or still running) leaves its marker; the files of the
    directory may then come from different saves.

    Raises:
        CheckpointError: names the save, its files, and the previous files kept aside.
    """
    directory = Path(directory)
    marker = directory / f".{first}{_MARKER}"
    if not os.path.lexists(marker):
        return
    try:
        info = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        info = {}
    info = info if isinstance(info, dict) else {}
    pid, token, host = info.get("pid"), str(info.get("token", "")), info.get("host")
    here = host == _HOST
    running = isinstance(pid, int) and here and _running(pid, token)
    who = f"process {pid}" + ("" if here else f" on {info.get('hostname', 'another machine')}")
    if running:
        state = f"is being written by {who}"
    elif here:
        state = f"was interrupted ({who}, started {info.get('started', '?')})"
    else:
        state = f"was interrupted, or is still being written ({who})"
    kept = sorted(
        p.name
        for p in directory.glob(f".*{_OLD}{host}-{pid}-{token}")
        if _LEFTOVER.fullmatch(p.name)
    )
    raise CheckpointError(
        f"{directory}: a save into this directory {state} while it replaced "
        f"{info.get('files', '?')}, so its files may come from different saves and nothing "
        "was loaded. Save again (the next save cleans up)"
        + (f"; the previous files are kept as {kept}" if kept and not running else "")
    )


# -- the protocol ------------------------------------------------------------------------------


def _commit_in_place(directory: Path, files: Mapping[str, str | bytes], remove: list[str]) -> None:
    """Write ``files`` into the existing ``directory`` as one set (see the module doc)."""
    if _own_staging(directory) and not any(os.path.lexists(directory / n) for n in files):
        for name, content in files.items():  # nobody reads it: final names straight away
            _write_file(directory / name, content, 0o644)
        return
    token = _begin()
    temps: dict[str, Path] = {}
    try:
        _remove_leftovers(directory)
        _remove_leftovers(directory.parent, only=directory.name)
        for name, content in files.items():
            temps[name] = directory / f".{name}{_TMP}{_stamp(token)}"
            _write_file(temps[name], content, _mode_for(directory / name))
        names = list(files)
        removing = [n for n in remove if n not in files and os.path.lexists(directory / n)]
        if len(names) == 1 and not removing:
            os.replace(temps[names[0]], directory / names[0])
            del temps[names[0]]
            _fsync_dir(directory)
        elif names or removing:
            _commit(directory, names, temps, removing, token)
    finally:
        for tmp in temps.values():
            if os.path.lexists(tmp):
                os.unlink(tmp)
        _saving.discard(token)


def _commit(
    directory: Path, names: list[str], temps: dict[str, Path], removing: list[str], token: str
) -> None:
    """Marker, previous files aside, new files in (first one last), marker gone."""
    first = (names or removing)[0]
    marker = directory / f".{first}{_MARKER}"
    info = {
        "host": _HOST,
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        "token": token,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "files": names + removing,
    }
    marker_tmp = directory / f".{marker.name}{_TMP}{_stamp(token)}"
    try:
        _write_file(marker_tmp, json.dumps(info) + "\n", 0o644)
        os.replace(marker_tmp, marker)
    finally:
        if os.path.lexists(marker_tmp):
            os.unlink(marker_tmp)
    _fsync_dir(directory)
    aside: list[tuple[Path, Path]] = []  # (target, where its previous file went)
    placed: list[Path] = []
    try:
        for name in names + removing:
            target = directory / name
            if os.path.lexists(target):
                old = directory / f".{name}{_OLD}{_stamp(token)}"
                os.replace(target, old)
                aside.append((target, old))
        for name in reversed(names):
            os.replace(temps[name], directory / name)
            del temps[name]
            placed.append(directory / name)
        _fsync_dir(directory)
    except BaseException:
        _roll_back(aside, placed, marker)
        raise
    os.unlink(marker)
    _fsync_dir(directory)
    for _, old in aside:
        with contextlib.suppress(OSError):
            os.unlink(old)


def _roll_back(aside: list[tuple[Path, Path]], placed: list[Path], marker: Path) -> None:
    """Put the previous files back after a failed commit; the marker stays if that fails."""
    try:
        for path in placed:
            os.unlink(path)
        for target, old in reversed(aside):
            os.replace(old, target)
        os.unlink(marker)
        _fsync_dir(marker.parent)
    except OSError:
        pass


def _write_file(path: Path, content: str | bytes, mode: int) -> None:
    """Create ``path`` (it must not exist), write ``content``, fsync, set ``mode``."""
    data = memoryview(content.encode("utf-8") if isinstance(content, str) else content)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
    try:
        while data:
            data = data[os.write(fd, data[:_CHUNK]) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(path, mode)


def _fsync_dir(path: Path) -> None:
    """Make renames in ``path`` durable (where directories can be fsynced)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # e.g. Windows: directories cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.EBADF, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


def _mode_for(path: Path) -> int:
    """Keep an existing file's permissions; new files get rw-r--r--."""
    try:
        return path.stat().st_mode & 0o777
    except FileNotFoundError:
        return 0o644


# -- leftovers ---------------------------------------------------------------------------------


def _begin() -> str:
    token = secrets.token_hex(6)
    _saving.add(token)
    return token


def _stamp(token: str) -> str:
    """``<host>-<pid>-<token>``: which save, of which process on which machine, made a file."""
    return f"{_HOST}-{os.getpid()}-{token}"


def _own_staging(directory: Path) -> bool:
    """Whether ``directory`` is the staging directory of one of this process's saves."""
    match = _LEFTOVER.fullmatch(directory.name)
    return (
        match is not None
        and match["host"] == _HOST
        and int(match["pid"]) == os.getpid()
        and match["token"] in _saving
    )


def _running(pid: int, token: str) -> bool:
    """Whether the save ``(pid, token)`` of this machine may still be running."""
    if pid == os.getpid():
        return token in _saving
    if os.name == "nt":  # os.kill would terminate the process: assume it runs
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it runs, as another user
        return True
    return True


def _remove_leftovers(directory: Path, *, only: str | None = None) -> None:
    """Delete the temporary files and staging folders of dead saves in ``directory``.

    Args:
        only: just those of this file or folder name.
    """
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        match = _LEFTOVER.fullmatch(entry.name)
        if match is None or (only is not None and match["name"] != only):
            continue
        pid, mine = int(match["pid"]), match["host"] == _HOST
        if not mine or _running(pid, match["token"]):
            if mine and pid == os.getpid():
                continue  # one of this process's saves, in progress
            try:
                age = time.time() - entry.stat(follow_symlinks=False).st_mtime
            except OSError:
                continue
            if age < _MAX_AGE_S:
                continue
        with contextlib.suppress(OSError):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)


# -- one file ----------------------------------------------------------------------------------


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
