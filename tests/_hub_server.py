"""An in-process imitation of the Hugging Face Hub, for tests.

``FakeHub`` serves, on 127.0.0.1, just enough of the Hub's HTTP surface for
``huggingface_hub.hf_hub_download(..., endpoint=hub.url)``, ``snapshot_download``,
``HfApi(endpoint=hub.url).model_info`` and ``list_repo_files`` / ``list_repo_tree`` to
work against it, with the headers the real Hub sends (checked against huggingface_hub 2.4):

* ``HEAD``/``GET /{repo_id}/resolve/{revision}/{path}``. Plain (git) files: 200 with
  ``ETag: "<git blob sha1>"``, ``X-Repo-Commit`` and ``Content-Length``. LFS files: 302 to
  a CDN URL with ``X-Repo-Commit``, ``X-Linked-Etag: "<sha256>"``, ``X-Linked-Size`` and
  ``Content-Length: 0``.
* ``GET /cdn/<sha256>?...`` on a *second* port (``hub.cdn_url``), as the real CDN lives on
  another host: huggingface_hub follows same-origin redirects during its metadata ``HEAD``
  and would then lose the ``X-Linked-*`` / ``X-Repo-Commit`` headers of the 302; on another
  origin it stops at the 302, reads them, and downloads from the CDN without the
  ``Authorization`` header.
* ``GET /api/models/{repo_id}[/revision/{revision}]`` and
  ``GET /api/models/{repo_id}/tree/{revision}[/{path}]``.
* ``Range`` requests (206 / 416), the Hub's ``X-Error-Code`` errors (``RepoNotFound``,
  ``RevisionNotFound``, ``EntryNotFound``, ``GatedRepo``) and injected faults
  (:meth:`FakeHub.fault`).

Every request is recorded in ``hub.requests``; header names there are lower-cased.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import NamedTuple
from urllib.parse import parse_qs, quote, unquote, urlsplit

__all__ = ["FakeHub", "Request", "git_blob_sha1", "lfs_pointer"]

LFS_SUFFIXES = (".safetensors", ".bin", ".model", ".pkl", ".h5", ".msgpack")
FAULT_KINDS = ("truncate", "wrong_content", "error500")
_EPOCH = datetime(2024, 1, 1, tzinfo=timezone.utc)


class Request(NamedTuple):
    method: str
    path: str  # raw request target, query string included
    headers: dict  # header names lower-cased
    range: str | None


def git_blob_sha1(data: bytes) -> str:
    """The git object id of ``data`` stored as a blob (what the Hub uses as a plain file's ETag)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(data: bytes) -> bytes:
    """The git-lfs pointer file that git stores in place of ``data``."""
    oid = hashlib.sha256(data).hexdigest()
    spec = "https://git-lfs.github.com/spec/v1"
    return f"version {spec}\noid sha256:{oid}\nsize {len(data)}\n".encode()


@dataclass(frozen=True)
class _File:
    path: str
    data: bytes
    lfs: bool

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def blob_id(self) -> str:
        """Git object id of what git stores: the content, or the LFS pointer."""
        return git_blob_sha1(lfs_pointer(self.data) if self.lfs else self.data)

    @property
    def etag(self) -> str:
        return self.sha256 if self.lfs else self.blob_id


@dataclass
class _Commit:
    sha: str
    files: dict[str, _File]
    date: datetime


@dataclass
class _Repo:
    repo_id: str
    gated: bool = False
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    commits: dict[str, _Commit] = field(default_factory=dict)

    def resolve(self, revision: str) -> _Commit | None:
        sha = self.branches.get(revision) or self.tags.get(revision) or revision
        return self.commits.get(sha)


class _HubError(Exception):
    def __init__(self, status: int, code: str | None, message: str, headers=None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = dict(headers or {})


def _iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _read_files(files: Mapping[str, bytes] | str | os.PathLike) -> dict[str, bytes]:
    if isinstance(files, Mapping):
        out = {}
        for name, data in files.items():
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise TypeError(f"contents of {name!r} must be bytes, not {type(data).__name__}")
            out[str(name).replace(os.sep, "/").lstrip("/")] = bytes(data)
        return out
    root = Path(files)
    if not root.is_dir():
        raise NotADirectoryError(f"{root} is not a directory")
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(root).parts
    }


def _parse_range(header: str | None, total: int) -> tuple[int, int] | None:
    """``(start, stop)`` (stop exclusive) for a single ``bytes=`` range; None means whole file.

    Raises ``ValueError`` when the range cannot be satisfied."""
    if header is None:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None  # unsupported forms are ignored, like many servers do
    first, _, last = spec.strip().partition("-")
    try:
        if first == "":  # suffix: last N bytes
            n = int(last)
            if n <= 0:
                raise ValueError(header)
            return max(total - n, 0), total
        start = int(first)
        stop = min(int(last) + 1, total) if last else total
    except ValueError:
        raise ValueError(header) from None
    if start >= total or stop <= start:
        raise ValueError(header)
    return start, stop


class FakeHub:
    """A fake Hugging Face Hub on ``127.0.0.1`` (see the module docstring).

    The sockets are bound at construction, so ``url`` / ``cdn_url`` are valid at once;
    :meth:`start` (or ``with FakeHub() as hub:``) begins serving.
    """

    def __init__(self):
        self._lock = threading.RLock()
        self._repos: dict[str, _Repo] = {}
        self._faults: dict[tuple[str, str], list] = {}  # (repo_id, path) -> [kind, times_left]
        self._counter = 0
        self.requests: list[Request] = []
        handler = _make_handler(self)
        self._servers = [
            _Server(("127.0.0.1", 0), handler),  # the hub
            _Server(("127.0.0.1", 0), handler),  # the "CDN", another origin
        ]
        self._threads: list[threading.Thread] = []
        self.url = f"http://127.0.0.1:{self._servers[0].server_address[1]}"
        self.cdn_url = f"http://127.0.0.1:{self._servers[1].server_address[1]}"

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> FakeHub:
        with self._lock:
            if not self._threads:
                for server in self._servers:
                    t = threading.Thread(
                        target=server.serve_forever,
                        kwargs={"poll_interval": 0.05},
                        name=f"FakeHub {server.server_address[1]}",
                        daemon=True,
                    )
                    t.start()
                    self._threads.append(t)
        return self

    def stop(self) -> None:
        with self._lock:
            threads, self._threads = self._threads, []
        for server in self._servers:
            if threads:
                server.shutdown()
            server.server_close()
        for t in threads:
            t.join(timeout=5)

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ----------------------------------------------------------------- content

    def add_repo(
        self,
        repo_id: str,
        files: Mapping[str, bytes] | str | os.PathLike,
        *,
        branch: str = "main",
        tags: Sequence[str] = (),
        gated: bool = False,
        lfs_suffixes: Sequence[str] = LFS_SUFFIXES,
    ) -> str:
        """Commit exactly ``files`` as the new head of ``branch``; ``tags`` point to it too.

        ``files`` is ``{path: bytes}`` or a directory read recursively. Files whose name ends
        with one of ``lfs_suffixes`` are served as LFS files (302 to the CDN). Returns the
        commit sha (deterministic: depends on the repo, branch, contents and call order).
        Older commits stay reachable by sha. ``gated`` applies to the whole repo."""
        if isinstance(tags, str):
            tags = (tags,)
        contents = _read_files(files)
        suffixes = tuple(lfs_suffixes)
        with self._lock:
            self._counter += 1
            entries = {
                path: _File(path, data, lfs=bool(suffixes) and path.endswith(suffixes))
                for path, data in sorted(contents.items())
            }
            h = hashlib.sha1(f"{repo_id}\0{branch}\0{self._counter}\0".encode())
            for path, f in entries.items():
                h.update(f"{path}\0{f.blob_id}\0".encode())
            sha = h.hexdigest()
            repo = self._repos.setdefault(repo_id, _Repo(repo_id))
            repo.gated = gated
            repo.commits[sha] = _Commit(sha, entries, _EPOCH + timedelta(minutes=self._counter))
            repo.branches[branch] = sha
            for tag in tags:
                repo.tags[tag] = sha
            return sha

    def fault(self, repo_id: str, filename: str, kind: str, *, times: int = 1) -> None:
        """Make the next ``times`` content GETs of ``filename`` (any revision) misbehave.

        ``"truncate"``: announce the full Content-Length (of the requested range) but send
        only half the bytes, then close the connection. ``"wrong_content"``: the right
        headers and length, every byte flipped. ``"error500"``: HTTP 500. For LFS files the
        fault hits the CDN GET; the metadata HEAD is never affected."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {FAULT_KINDS}")
        with self._lock:
            if times <= 0:
                self._faults.pop((repo_id, filename), None)
            else:
                self._faults[(repo_id, filename)] = [kind, times]

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, repo_id: str | None, filename: str | None) -> str | None:
        with self._lock:
            entry = self._faults.get((repo_id, filename))
            if entry is None:
                return None
            entry[1] -= 1
            if entry[1] <= 0:
                del self._faults[(repo_id, filename)]
            return entry[0]

    # ----------------------------------------------------------------- requests

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    def content_gets(self) -> list[Request]:
        """GET requests for file contents (``/resolve/`` or CDN URLs), not HEAD or ``/api``."""
        with self._lock:
            return [r for r in self.requests if r.method == "GET" and _is_content_path(r.path)]

    def _record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    # ----------------------------------------------------------------- lookups

    def _repo(self, repo_id: str, headers: Mapping[str, str]) -> _Repo:
        repo = self._repos.get(repo_id)
        if repo is None:
            raise _HubError(404, "RepoNotFound", "Repository not found")
        if repo.gated and not headers.get("authorization", "").startswith("Bearer "):
            raise _HubError(
                401,
                "GatedRepo",
                f"Access to model {repo_id} is restricted. You must have access to it and be"
                " authenticated to access it. Please log in.",
            )
        return repo

    def _commit(self, repo: _Repo, revision: str) -> _Commit:
        commit = repo.resolve(revision)
        if commit is None:
            raise _HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return commit

    def _split_repo(self, segments: list[str], marker: str) -> tuple[str, list[str]]:
        """Split ``[*repo_id_parts, marker, *rest]``; repo ids have one or two segments."""
        candidates = [k for k in (1, 2) if len(segments) > k and segments[k] == marker]
        if not candidates:
            raise _HubError(404, None, "Not Found")
        with self._lock:
            for k in candidates:
                repo_id = "/".join(segments[:k])
                if repo_id in self._repos:
                    return repo_id, segments[k + 1 :]
        k = candidates[-1]
        return "/".join(segments[:k]), segments[k + 1 :]


def _is_content_path(raw_path: str) -> bool:
    path = urlsplit(raw_path).path
    return path.startswith("/cdn/") or (not path.startswith("/api/") and "/resolve/" in path)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # idle keep-alive connections must not block stop()
    allow_reuse_address = True


def _make_handler(hub: FakeHub):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "FakeHub/1.0"
        sys_version = ""
        timeout = 30  # idle keep-alive connections end eventually

        def log_message(self, format, *args):  # silence the default stderr logging
            pass

        # ---- dispatch

        def do_GET(self):
            self._handle(head=False)

        def do_HEAD(self):
            self._handle(head=True)

        def _other(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            self._record()
            self._error(_HubError(405, None, "Method not allowed"))

        do_POST = do_PUT = do_DELETE = do_PATCH = _other

        def _record(self):
            headers = {k.lower(): v for k, v in self.headers.items()}
            hub._record(Request(self.command, self.path, headers, headers.get("range")))
            return headers

        def _handle(self, head: bool):
            self._head = head
            headers = self._record()
            url = urlsplit(self.path)
            segments = url.path.split("/")[1:]
            query = parse_qs(url.query)
            try:
                if segments[:1] == ["cdn"] and len(segments) == 2:
                    self._cdn(segments[1], query)
                elif segments[:2] == ["api", "models"]:
                    self._api(segments[2:], query, headers)
                else:
                    self._resolve(segments, headers)
            except _HubError as e:
                self._error(e)

        # ---- responses

        def _send(self, status: int, headers: Mapping[str, str], body: bytes = b""):
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            if "Content-Length" not in headers:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not self._head and body:
                self.wfile.write(body)

        def _json(self, obj, headers=None):
            body = json.dumps(obj).encode()
            self._send(200, {"Content-Type": "application/json", **(headers or {})}, body)

        def _error(self, e: _HubError):
            headers = {"Content-Type": "application/json", **e.headers}
            if e.code is not None:
                headers["X-Error-Code"] = e.code
                headers["X-Error-Message"] = e.message
            self._send(e.status, headers, json.dumps({"error": e.message}).encode())

        def _bytes(self, data: bytes, headers: dict, fault_key: tuple[str | None, str | None]):
            """Serve ``data`` honouring ``Range`` and, for GETs, any injected fault."""
            total = len(data)
            try:
                rng = _parse_range(self.headers.get("Range"), total)
            except ValueError:
                raise _HubError(
                    416, None, "Range Not Satisfiable", {"Content-Range": f"bytes */{total}"}
                ) from None
            status = 200
            if rng is not None:
                start, stop = rng
                data = data[start:stop]
                status = 206
                headers["Content-Range"] = f"bytes {start}-{stop - 1}/{total}"
            headers.setdefault("Accept-Ranges", "bytes")
            headers["Content-Length"] = str(len(data))
            kind = None if self._head else hub._take_fault(*fault_key)
            if kind == "error500":
                raise _HubError(500, None, "Internal Error (injected fault)")
            if kind == "wrong_content":
                data = bytes(b ^ 0xFF for b in data)
            if kind == "truncate":
                self._send(status, headers)
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self._send(status, headers, data)

        # ---- routes

        def _cdn(self, sha256: str, query):
            repo_id = (query.get("repo") or [None])[0]
            filename = (query.get("file") or [None])[0]
            with hub._lock:
                data = next(
                    (
                        f.data
                        for repo in hub._repos.values()
                        for commit in repo.commits.values()
                        for f in commit.files.values()
                        if f.lfs and f.sha256 == sha256
                    ),
                    None,
                )
            if data is None:
                raise _HubError(404, None, "Not Found")
            headers = {
                "Content-Type": "application/octet-stream",
                "ETag": f'"{sha256}"',
            }
            if filename:
                name = filename.rsplit("/", 1)[-1]
                headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(name)};"
            self._bytes(data, headers, (repo_id, filename))

        def _resolve(self, segments: list[str], headers):
            repo_id, rest = hub._split_repo(segments, "resolve")
            if len(rest) < 2 or not rest[-1]:
                raise _HubError(404, None, "Not Found")
            revision = unquote(rest[0])
            path = "/".join(unquote(s) for s in rest[1:])
            with hub._lock:
                repo = hub._repo(repo_id, headers)
                commit = hub._commit(repo, revision)
            f = commit.files.get(path)
            if f is None:
                extra = {"X-Repo-Commit": commit.sha}
                raise _HubError(404, "EntryNotFound", "Entry not found", extra)
            if f.lfs:
                location = (
                    f"{hub.cdn_url}/cdn/{f.sha256}?repo={quote(repo_id, safe='')}"
                    f"&file={quote(path, safe='')}"
                )
                self._send(
                    302,
                    {
                        "Location": location,
                        "X-Repo-Commit": commit.sha,
                        "X-Linked-Etag": f'"{f.sha256}"',
                        "X-Linked-Size": str(f.size),
                        "ETag": f'"{f.blob_id}"',
                        "Content-Length": "0",
                    },
                )
                return
            out = {
                "Content-Type": "application/octet-stream",
                "ETag": f'"{f.blob_id}"',
                "X-Repo-Commit": commit.sha,
            }
            self._bytes(f.data, out, (repo_id, path))

        def _api(self, segments: list[str], query, headers):
            if not segments or not segments[0]:
                raise _HubError(404, None, "Not Found")
            kind = None
            for marker in ("revision", "tree"):
                if marker in segments[1:3]:
                    repo_id, rest = hub._split_repo(segments, marker)
                    kind = marker
                    break
            else:
                if len(segments) > 2:
                    raise _HubError(404, None, "Not Found")
                repo_id, rest = "/".join(segments), []
            with hub._lock:
                repo = hub._repo(repo_id, headers)
                if kind is None:
                    commit = hub._commit(repo, "main")
                elif not rest or not rest[0]:
                    raise _HubError(404, None, "Not Found")
                else:
                    commit = hub._commit(repo, unquote(rest[0]))
            if kind == "tree":
                sub = "/".join(unquote(s) for s in rest[1:]).strip("/")
                recursive = (query.get("recursive") or ["false"])[0].lower() in ("1", "true")
                self._json(_tree(commit, sub, recursive))
                return
            blobs = (query.get("blobs") or ["false"])[0].lower() in ("1", "true")
            self._json(_model_info(repo, commit, blobs))

    return Handler


def _sibling(f: _File, blobs: bool) -> dict:
    out: dict = {"rfilename": f.path}
    if blobs:
        out["size"] = f.size
        out["blobId"] = f.blob_id
        if f.lfs:
            pointer = lfs_pointer(f.data)
            out["lfs"] = {"size": f.size, "sha256": f.sha256, "pointerSize": len(pointer)}
    return out


def _model_info(repo: _Repo, commit: _Commit, blobs: bool) -> dict:
    author = repo.repo_id.split("/")[0] if "/" in repo.repo_id else None
    first = min(c.date for c in repo.commits.values())
    info = {
        "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24],
        "id": repo.repo_id,
        "modelId": repo.repo_id,
        "sha": commit.sha,
        "lastModified": _iso(commit.date),
        "createdAt": _iso(first),
        "private": False,
        "gated": "auto" if repo.gated else False,
        "disabled": False,
        "downloads": 0,
        "likes": 0,
        "tags": [],
        "siblings": [_sibling(f, blobs) for f in commit.files.values()],
        "spaces": [],
    }
    if author is not None:
        info["author"] = author
    if blobs:
        info["usedStorage"] = sum(f.size for f in commit.files.values())
    return info


def _tree(commit: _Commit, sub: str, recursive: bool) -> list[dict]:
    prefix = f"{sub}/" if sub else ""
    if sub and not any(p.startswith(prefix) for p in commit.files):
        raise _HubError(404, "EntryNotFound", f'{sub} does not exist on "{commit.sha}"')
    folders: dict[str, None] = {}
    files: list[_File] = []
    for path, f in commit.files.items():
        if not path.startswith(prefix):
            continue
        parts = path[len(prefix) :].split("/")
        for i in range(1, len(parts)):
            folders[prefix + "/".join(parts[:i])] = None
            if not recursive:
                break
        if recursive or len(parts) == 1:
            files.append(f)
    out: list[dict] = [
        {
            "type": "directory",
            "oid": hashlib.sha1(f"tree {commit.sha} {d}".encode()).hexdigest(),
            "size": 0,
            "path": d,
        }
        for d in folders
    ]
    for f in files:
        entry: dict = {"type": "file", "oid": f.blob_id, "size": f.size, "path": f.path}
        if f.lfs:
            pointer_size = len(lfs_pointer(f.data))
            entry["lfs"] = {"oid": f.sha256, "size": f.size, "pointerSize": pointer_size}
        out.append(entry)
    return out
