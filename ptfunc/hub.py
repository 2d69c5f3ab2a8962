"""Names to files: pytorch-transformers 1.0 shortcut names and Hub repo ids, through the
Hugging Face cache.

``from_pretrained("bert-base-uncased")`` works as in pytorch-transformers 1.0: the
shortcut name maps (``shortcut_names.json``) to today's repo id
(``google-bert/bert-base-uncased``), and :func:`fetch` brings the files a loader needs
into the Hugging Face cache with ``huggingface_hub`` (its cache layout, locks,
resumable downloads, auth and progress bars), returning the snapshot directory that
the local-directory loaders then read. A directory that exists always wins over a name.

What is fetched is only what was asked for: never a whole snapshot, never a ``.py``
file. A file downloaded in this call is checked against the hash the Hub gave for it
(the git blob sha1, or the sha256 of an LFS file) and removed from the cache if it
differs, so nothing damaged stays cached under its name.

Environment, read at every call (so a test or a notebook may set them late):
``HF_ENDPOINT`` (a mirror), ``HF_HUB_OFFLINE=1`` (no request at all: the cache only),
``HF_HUB_CACHE`` / ``HF_HOME`` (where the cache is), ``HF_TOKEN`` (through
``huggingface_hub``).
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

from .errors import CheckpointError, HubError

__all__ = [
    "HubError",
    "HubOptions",
    "SHORTCUT_NAMES",
    "shortcut",
    "repo_id_for",
    "is_local",
    "is_hub_name",
    "fetch",
]

_TRUE = {"1", "ON", "YES", "TRUE"}
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[A-Za-z0-9][\w.\-]*)?$")
_HEX40 = re.compile(r"^[0-9a-f]{40}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class HubOptions:
    """How to reach the Hub, with the words ``transformers`` uses.

    Attributes:
        revision: branch, tag or commit sha (default ``"main"``).
        cache_dir: the hub cache (default ``HF_HUB_CACHE`` or ``$HF_HOME/hub``).
        force_download: download again even when cached.
        local_files_only: the cache only, no request (``HF_HUB_OFFLINE=1`` does the same).
        token: a Hub token for private or gated repos (default: ``HF_TOKEN`` or the login).
    """

    revision: str | None = None
    cache_dir: str | os.PathLike[str] | None = None
    force_download: bool = False
    local_files_only: bool = False
    token: str | bool | None = None

    @classmethod
    def pop_from(cls, kwargs: dict[str, Any]) -> HubOptions:
        """Take the hub options out of a ``from_pretrained`` kwargs dict (the rest stays)."""
        names = ("revision", "cache_dir", "force_download", "local_files_only", "token")
        return cls(**{name: kwargs.pop(name) for name in names if name in kwargs})

    @property
    def offline(self) -> bool:
        return self.local_files_only or os.environ.get("HF_HUB_OFFLINE", "").upper() in _TRUE

    def cache(self) -> str:
        if self.cache_dir is not None:
            return os.fspath(self.cache_dir)
        if os.environ.get("HF_HUB_CACHE"):
            return os.environ["HF_HUB_CACHE"]
        home = os.environ.get("HF_HOME") or os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface"
        )
        return os.path.join(home, "hub")

    def endpoint(self) -> str | None:
        value = os.environ.get("HF_ENDPOINT")
        return value.rstrip("/") if value else None


@functools.cache
def _shortcut_table() -> dict[str, dict[str, Any]]:
    text = resources.files("ptfunc").joinpath("shortcut_names.json").read_text("utf-8")
    return dict(json.loads(text)["names"])


SHORTCUT_NAMES: Mapping[str, Mapping[str, Any]] = _shortcut_table()
"""``{1.0 shortcut name: {"repo_id", "model_type", "max_len"}}`` for the 27 seed names."""


def shortcut(name: str) -> Mapping[str, Any] | None:
    """The table entry of a pytorch-transformers 1.0 shortcut name (None for other names).

    Example:
        >>> shortcut("gpt2")["repo_id"]
        'openai-community/gpt2'
    """
    return SHORTCUT_NAMES.get(name)


def is_local(name_or_path: str | os.PathLike[str]) -> bool:
    """True when ``name_or_path`` is an existing directory or file (it wins over a name)."""
    return os.path.exists(os.fspath(name_or_path))


def _known_names() -> list[str]:
    entries = list(SHORTCUT_NAMES.values())
    return list(SHORTCUT_NAMES) + [e["repo_id"] for e in entries]


def is_hub_name(name_or_path: str | os.PathLike[str]) -> bool:
    """True for a string that names a Hub model: not an existing path, not path-like."""
    if not isinstance(name_or_path, str) or is_local(name_or_path):
        return False
    return not _looks_like_path(name_or_path)


def _looks_like_path(name: str) -> bool:
    """Absolute, ``./x``, ``~/x``, ``a/b/c``, or ``dir/x`` where ``dir`` is a local folder."""
    if os.path.isabs(name) or name.startswith((".", "~")) or "\\" in name or name.count("/") > 1:
        return True
    head = os.path.dirname(name)
    return bool(head) and os.path.isdir(head)


def repo_id_for(name: str) -> str:
    """The Hub repo id of a shortcut name or of a repo id (returned as given).

    Raises:
        HubError: ``name`` is neither a shortcut name nor of the form ``org/name``; the
            message lists the closest known names.
        FileNotFoundError: ``name`` is a path (absolute, ``./x``, ``a/b/c``) to nothing.

    Example:
        >>> repo_id_for("bert-base-uncased")
        'google-bert/bert-base-uncased'
        >>> repo_id_for("EleutherAI/pythia-70m")
        'EleutherAI/pythia-70m'
    """
    entry = SHORTCUT_NAMES.get(name)
    if entry is not None:
        return str(entry["repo_id"])
    if _looks_like_path(name):
        raise FileNotFoundError(
            f"no directory or file at {name} (a path, so not looked up as a Hub name)"
        )
    if "/" in name and _REPO_ID.match(name) and ".." not in name:
        return name
    close = difflib.get_close_matches(name, _known_names(), n=4, cutoff=0.6)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise HubError(
        f"{name!r} is not a local directory, not a pytorch-transformers 1.0 shortcut name and "
        f"not a Hub repo id of the form 'org/name'.{hint}"
    )


# ---------------------------------------------------------------------------- the repo


def _hub() -> Any:
    import huggingface_hub

    return huggingface_hub


def _errors() -> Any:
    try:
        from huggingface_hub import errors
    except ImportError:  # older huggingface_hub
        from huggingface_hub import utils as errors
    return errors


def _is_connection_error(error: BaseException) -> bool:
    errors = _errors()
    if isinstance(error, getattr(errors, "OfflineModeIsEnabled", ())):
        return True
    names = {type(e).__name__ for e in _chain(error)}
    return bool(
        names & {"ConnectError", "ConnectTimeout", "ReadTimeout", "ConnectionError", "Timeout"}
    ) or isinstance(error, (ConnectionError, TimeoutError))


def _chain(error: BaseException | None) -> Iterable[BaseException]:
    seen = 0
    while error is not None and seen < 10:
        yield error
        error = error.__cause__ or error.__context__
        seen += 1


class _Repo:
    """One repo at one revision: what it holds, and single files brought into the cache."""

    def __init__(self, name: str, options: HubOptions) -> None:
        self.name = name
        self.repo_id = repo_id_for(name)
        self.options = options
        self.revision = options.revision or "main"
        self.offline = options.offline
        self._listing: set[str] | None = None
        self._listed = False

    def where(self) -> str:
        at = "" if self.revision == "main" else f" at revision {self.revision!r}"
        named = "" if self.name == self.repo_id else f" ({self.name!r})"
        return f"{self.repo_id}{named}{at}"

    def files(self) -> set[str] | None:
        """The repo's file names from the Hub, or None when offline or unreachable."""
        if self._listed:
            return self._listing
        self._listed = True
        if self.offline:
            return None
        api = _hub().HfApi(endpoint=self.options.endpoint(), token=self.options.token)
        try:
            info = api.model_info(self.repo_id, revision=self.revision)
        except Exception as error:  # noqa: BLE001 - mapped to one clear error below
            if _is_connection_error(error):
                self.offline = True  # fall back to the cache, as transformers does
                return None
            raise self._hub_error(error) from error
        self._listing = {s.rfilename for s in (info.siblings or [])}
        return self._listing

    def cached(self, filename: str) -> bool:
        found = _hub().try_to_load_from_cache(
            self.repo_id, filename, cache_dir=self.options.cache(), revision=self.revision
        )
        return isinstance(found, str)

    def has(self, filename: str) -> bool:
        _check_repo_path(filename, self.repo_id)
        listing = self.files()
        return filename in listing if listing is not None else self.cached(filename)

    def get(self, filename: str) -> Path:
        """Bring one file into the cache (or find it there); returns its snapshot path."""
        _check_repo_path(filename, self.repo_id)
        started = time.time()
        try:
            path = _hub().hf_hub_download(
                self.repo_id,
                filename,
                revision=self.revision,
                cache_dir=self.options.cache(),
                force_download=self.options.force_download,
                local_files_only=self.offline,
                token=self.options.token,
                endpoint=self.options.endpoint(),
                library_name="ptfunc",
            )
        except Exception as error:  # noqa: BLE001 - mapped to one clear error below
            errors = _errors()
            if isinstance(error, errors.LocalEntryNotFoundError) or _is_connection_error(error):
                raise HubError(
                    f"offline and not in the cache: {filename} of {self.where()} "
                    f"(cache: {self.options.cache()}). Connect once to download it, or pass "
                    "a local directory"
                ) from error
            raise self._hub_error(error, filename) from error
        path = Path(path)
        _verify_if_fresh(path, started)
        return path

    def _hub_error(self, error: BaseException, filename: str | None = None) -> HubError:
        errors = _errors()
        if isinstance(error, errors.GatedRepoError):
            return HubError(
                f"{self.where()} is gated or private: accept its terms on the Hub, then pass "
                "token='hf_...' (or set HF_TOKEN, or run `hf auth login`)"
            )
        if isinstance(error, errors.RepositoryNotFoundError):
            close = difflib.get_close_matches(self.name, _known_names(), n=4, cutoff=0.6)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            return HubError(
                f"no model repository {self.repo_id!r} on the Hub (or it is private: pass "
                f"token='hf_...').{hint}"
            )
        if isinstance(error, errors.RevisionNotFoundError):
            return HubError(f"{self.repo_id} has no revision {self.revision!r}")
        if isinstance(error, errors.EntryNotFoundError):
            return HubError(f"{self.where()} has no file {filename}")
        return HubError(f"could not fetch {filename or 'the file list'} of {self.where()}: {error}")


def _check_repo_path(filename: str, repo_id: str) -> None:
    """Refuse file names that leave the repo (``../x``, absolute) and code files."""
    path = PurePosixPath(filename)
    if path.is_absolute() or ".." in path.parts or "\\" in filename or not filename:
        raise HubError(f"{repo_id}: refusing the file name {filename!r} (outside the repo)")
    if path.suffix == ".py":
        raise HubError(f"{repo_id}: ptfunc never downloads code ({filename})")


def _git_blob_sha1(path: Path) -> str:
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode(), usedforsecurity=False)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verify_if_fresh(path: Path, started: float) -> None:
    """Check a blob written by this call against its name (the hash the Hub gave).

    Blobs already in the cache were checked when they came; a blob whose name is no
    hash (a mirror without ETags) cannot be checked. A mismatch removes the blob and
    the snapshot link, so the damaged bytes are not cached under the file's name.
    """
    blob = path.resolve()
    if blob.stat().st_mtime < started - 1:
        return
    expected = blob.name
    if _HEX64.match(expected):
        actual = _sha256(blob)
    elif _HEX40.match(expected):
        actual = _git_blob_sha1(blob)
    else:
        return
    if actual != expected:
        for victim in (path, blob):
            if os.path.lexists(victim):
                os.unlink(victim)
        raise CheckpointError(
            f"{path.name}: the downloaded bytes do not match the Hub's hash ({actual[:12]}... "
            f"instead of {expected[:12]}...); nothing was cached. Try again, or check HF_ENDPOINT"
        )


# ---------------------------------------------------------------------------- what to fetch


def fetch(
    name_or_path: str | os.PathLike[str],
    required: Sequence[str | Sequence[str]],
    optional: Sequence[str] = (),
    *,
    options: HubOptions | None = None,
    then: Callable[[_Repo, Path], Iterable[str]] | None = None,
) -> Path:
    """A directory holding the files a loader needs: the local one, or a cache snapshot.

    Args:
        name_or_path: a local directory (returned as is), a 1.0 shortcut name or a repo id.
        required: file names the loader needs; an entry that is a sequence of names means
            "the first of these the repo has".
        optional: file names fetched when the repo has them.
        options: revision, cache, token, offline (see :class:`HubOptions`).
        then: given the repo and the directory so far, more file names to fetch (the
            shards a sharded index names).

    Returns:
        The directory (for a name, ``.../models--org--name/snapshots/<sha>``).

    Raises:
        HubError: see its docstring; a missing required file lists the files the repo has.
    """
    if is_local(name_or_path):
        return Path(name_or_path)
    repo = _Repo(os.fspath(name_or_path), options or HubOptions())
    paths: list[Path] = []
    for entry in required:
        choices = [entry] if isinstance(entry, str) else list(entry)
        found = next((name for name in choices if repo.has(name)), None)
        if found is None:
            raise _missing(repo, choices)
        paths.append(repo.get(found))
    for name in optional:
        if repo.has(name):
            paths.append(repo.get(name))
    directory = _snapshot_dir(paths[0], required)
    if then is not None:
        for name in then(repo, directory):
            if not repo.has(name):
                raise _missing(repo, [name])
            repo.get(name)
    return directory


def _snapshot_dir(first: Path, required: Sequence[str | Sequence[str]]) -> Path:
    entry = required[0]
    name = entry if isinstance(entry, str) else next(iter(entry))
    depth = len(PurePosixPath(name).parts)
    return first.parents[depth - 1]


def _missing(repo: _Repo, choices: Sequence[str]) -> HubError:
    wanted = " or ".join(choices)
    listing = repo.files()
    if listing is None:
        return HubError(
            f"offline and not in the cache: {wanted} of {repo.where()} "
            f"(cache: {repo.options.cache()})"
        )
    has = ", ".join(sorted(listing)) or "no files"
    return HubError(f"{repo.where()} has no {wanted} that ptfunc reads; it has: {has}")
