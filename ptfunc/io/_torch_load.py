"""Reading PyTorch pickles safely: ``torch.load(weights_only=True)``, never full unpickling.

Original checkpoints (XLM's ``.pth`` among them) also hold NumPy arrays and scalars in
their hyper-parameters; ``allow_numpy=True`` admits exactly NumPy's data types for one
load, which cannot run code. Everything else a pickle names is refused, and the error
says what was refused.

Before torch reads a file, the file is checked, so that a corrupt or hostile file is a
:class:`~ptfunc.errors.CheckpointError` and never wrong values or a huge allocation:

* zip-format files (torch >= 1.6): every member is stored (uncompressed, as torch writes
  them), unencrypted, inside the file and apart from the others; each member's CRC-32
  is checked against the zip directory (tensor data too, unless ``mmap=True``); and the
  storages the pickle declares exist with exactly their declared sizes;
* legacy files (torch < 1.6, as pytorch-transformers 1.0 wrote them): the storages the
  pickle declares must fit in the file before torch allocates them, and no read goes
  past the end of the file. These files carry no checksums.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import warnings
import zipfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError

__all__ = ["load_torch_object"]

_ZIP_MAGIC = b"PK\x03\x04"
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")  # zip local file header, 30 bytes
_CHUNK = 1 << 20
_UNSUPPORTED_FLAGS = 0x1 | 0x20 | 0x40  # encrypted, compressed patched data, strong encryption
_DOS_DIRECTORY = 0x10  # in the low byte of the external attributes; miniz reads no data then
_REFUSAL_MARKERS = ("Unsupported global", "Trying to load unsupported", "Can only build")


def _numpy_globals() -> list[Any]:
    """What a pickled NumPy array, dtype or scalar refers to (NumPy 1 and 2 module paths)."""
    try:
        from numpy._core import multiarray  # NumPy 2
    except ImportError:  # NumPy 1
        from numpy.core import multiarray  # type: ignore[no-redef]

    allowed: list[Any] = [(np.ndarray, "numpy.ndarray"), (np.dtype, "numpy.dtype")]
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed.append((multiarray._reconstruct, f"{module}._reconstruct"))
        allowed.append((multiarray.scalar, f"{module}.scalar"))
    allowed.extend({type(np.dtype(code)) for code in "?bBhHiIlLqQefdgFDGSU"})
    return allowed


def _unpickler_reason(error: Exception) -> str:
    """The weights-only unpickler's own line (what it refused), without torch's advice."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for marker in _REFUSAL_MARKERS:
        for line in lines:
            if marker in line:
                line = line[line.index(marker) :]
                return line.split(" Please use", 1)[0].split(" Check the documentation", 1)[0]
    for i, line in enumerate(lines):
        if "WeightsUnpickler error" in line:
            tail = line.split("WeightsUnpickler error:", 1)[1].strip()
            return tail or (lines[i + 1] if i + 1 < len(lines) else line)
    return lines[-1] if lines else type(error).__name__


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


# -- zip-format files ---------------------------------------------------------------------------


class _ZipView:
    """A zip-format checkpoint's directory, checked: ``{member name: size}`` and the pickle."""

    def __init__(self, path: Path, size: int, *, check_data: bool) -> None:
        self.path, self.size = path, size
        try:
            with zipfile.ZipFile(path) as archive, open(path, "rb") as handle:
                infos = archive.infolist()
                self._check_layout(handle, infos, size)
                self._check_crcs(archive, infos, check_data)
                self.sizes = {info.filename: info.file_size for info in infos}
                self.prefix = infos[0].filename.split("/", 1)[0]
                pickle_name = f"{self.prefix}/data.pkl"
                if pickle_name not in self.sizes:
                    raise self._error(f"no {pickle_name} record (not a torch.save file)")
                self.pickle = archive.read(pickle_name)
        except CheckpointError:
            raise
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as e:
            reason = _first_line(e)
            raise self._error(f"a broken zip archive, truncated or corrupt ({reason})") from None
        except (struct.error, KeyError, IndexError, OverflowError, NotImplementedError) as e:
            raise self._error(
                f"a broken zip archive, truncated or corrupt ({type(e).__name__}: {e})"
            ) from None

    def _error(self, what: str) -> CheckpointError:
        return CheckpointError(f"{self.path} is not a readable PyTorch checkpoint: {what}")

    def _check_layout(self, handle: Any, infos: list[zipfile.ZipInfo], size: int) -> None:
        """Members stored, unencrypted, inside the file, each once, none overlapping."""
        if not infos:
            raise self._error("an empty zip archive")
        spans: list[tuple[int, int, str]] = []
        seen: set[str] = set()
        for info in infos:
            name = info.filename
            if name in seen:
                raise self._error(f"the zip archive holds {name!r} twice")
            seen.add(name)
            if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
                raise self._error(
                    f"{name!r} is compressed (method {info.compress_type}, {info.compress_size} "
                    f"bytes for {info.file_size}); torch.save stores members uncompressed"
                )
            if info.flag_bits & _UNSUPPORTED_FLAGS:
                raise self._error(f"{name!r} is encrypted or patched (flags {info.flag_bits:#x})")
            if name.endswith("/") or info.external_attr & _DOS_DIRECTORY:
                raise self._error(f"{name!r} is marked as a directory")
            start = info.header_offset
            if start + _LOCAL_HEADER.size > size:
                raise self._error(f"{name!r} starts at byte {start}, past the end (truncated?)")
            handle.seek(start)
            header = handle.read(_LOCAL_HEADER.size)
            if len(header) != _LOCAL_HEADER.size or header[:4] != _ZIP_MAGIC:
                raise self._error(f"{name!r}: no local file header at byte {start}")
            fields = _LOCAL_HEADER.unpack(header)
            data_start = start + _LOCAL_HEADER.size + fields[-2] + fields[-1]
            end = data_start + info.compress_size
            if end > size:
                raise self._error(
                    f"{name!r} needs bytes [{data_start}, {end}) but the file has {size} "
                    "(truncated?)"
                )
            spans.append((start, end, name))
        spans.sort()
        for (_, end, first), (start, _, second) in zip(spans, spans[1:]):
            if start < end:
                raise self._error(f"the zip members {first!r} and {second!r} overlap")

    def _check_crcs(
        self, archive: zipfile.ZipFile, infos: list[zipfile.ZipInfo], check_data: bool
    ) -> None:
        if all(info.CRC == 0 for info in infos if info.file_size):
            return  # written with torch.serialization.config.save.compute_crc32 = False
        for info in infos:
            if not check_data and "/data/" in info.filename and info.filename.count("/") == 2:
                continue
            with archive.open(info) as member:  # zipfile checks the CRC-32 at the end
                while member.read(_CHUNK):
                    pass


# -- the storages a pickle declares --------------------------------------------------------------


def _declared_storages(
    storage_arity: int, path: Path, size: int
) -> tuple[Callable[[Any], Any], dict[str, int]]:
    """A ``persistent_load`` that records ``{storage key: declared bytes}`` in the returned
    dict and hands back empty meta storages (nothing allocated)."""
    declared: dict[str, int] = {}

    def persistent_load(saved_id: Any) -> Any:
        if not isinstance(saved_id, tuple) or len(saved_id) != storage_arity + 1:
            raise CheckpointError(f"{path}: malformed storage reference {saved_id!r:.80}")
        storage_type, key, _, numel = saved_id[1:5]
        if storage_type is torch.UntypedStorage:
            dtype = torch.uint8
        else:
            dtype = getattr(storage_type, "dtype", None)
        if not isinstance(dtype, torch.dtype) or not isinstance(key, str):
            raise CheckpointError(f"{path}: malformed storage reference {saved_id!r:.80}")
        if isinstance(numel, bool) or not isinstance(numel, int) or numel < 0:
            raise CheckpointError(f"{path}: storage {key!r} declares {numel!r} elements")
        nbytes = numel * torch.empty((), dtype=dtype).element_size()
        if nbytes > size:
            raise CheckpointError(
                f"{path} is not a readable PyTorch checkpoint: storage {key!r} needs {nbytes} "
                f"bytes, more than the whole file ({size})"
            )
        declared.setdefault(key, nbytes)
        storage = torch.UntypedStorage(nbytes, device="meta")
        return torch.storage.TypedStorage(wrap_storage=storage, dtype=dtype, _internal=True)

    return persistent_load, declared


def _unpickler(file: Any) -> Any:
    """torch's weights-only unpickler (what ``torch.load(weights_only=True)`` runs)."""
    from torch import _weights_only_unpickler

    return _weights_only_unpickler.Unpickler(file, encoding="utf-8")


def _dry_run(check: Callable[[], None]) -> None:
    """Run a check that unpickles, without the protocol warning torch gives again later."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Detected pickle protocol")
        check()


def _check_zip_storages(view: _ZipView) -> None:
    """Every storage the pickle declares is a record of exactly its declared size."""
    unpickler = _unpickler(io.BytesIO(view.pickle))
    unpickler.persistent_load, declared = _declared_storages(4, view.path, view.size)
    unpickler.load()
    for key, nbytes in declared.items():
        record = f"{view.prefix}/data/{key}"
        found = view.sizes.get(record)
        if found is None:
            raise view._error(f"the pickle refers to storage {key!r}, but {record} is missing")
        if found != nbytes:
            raise view._error(
                f"storage {key!r} is declared as {nbytes} bytes, {record} holds {found}"
            )


# -- legacy files ---------------------------------------------------------------------------------


class _BoundedReader:
    """A read-only file that refuses reads past its end (no ``fileno``: torch reads through it).

    A pickle opcode may declare a length of up to 4 GiB; a plain file object would
    allocate that much before finding the file shorter.
    """

    def __init__(self, handle: io.BufferedReader, size: int, path: Path) -> None:
        self._handle, self._size, self._path = handle, size, path

    def _clamp(self, n: int | None) -> int:
        left = self._size - self._handle.tell()
        if n is None or n < 0:
            return max(left, 0)
        if n > left:
            raise CheckpointError(
                f"{self._path} is not a readable PyTorch checkpoint: it asks for {n} bytes at "
                f"byte {self._handle.tell()}, but only {max(left, 0)} are left (truncated?)"
            )
        return n

    def read(self, n: int | None = -1) -> bytes:
        return self._handle.read(self._clamp(n))

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        return self._handle.readinto(view[: self._clamp(len(view))])

    def readline(self, limit: int = -1) -> bytes:
        return self._handle.readline(self._clamp(limit if limit >= 0 else None))

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._handle.seek(offset, whence)

    def tell(self) -> int:
        return self._handle.tell()

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True


def _check_legacy_storages(reader: _BoundedReader, size: int, path: Path) -> None:
    """The storages a legacy file's pickle declares fit in the bytes after the pickles."""
    for _ in range(3):  # magic number, protocol version, system info
        _unpickler(reader).load()
    unpickler = _unpickler(reader)
    unpickler.persistent_load, declared = _declared_storages(5, path, size)
    unpickler.load()
    keys = _unpickler(reader).load()
    if not isinstance(keys, list) or set(keys) != set(declared) or len(keys) != len(declared):
        raise CheckpointError(
            f"{path} is not a readable PyTorch checkpoint: the storage list does not match the "
            "storages the pickle refers to"
        )
    left = size - reader.tell()
    need = sum(declared.values()) + 8 * len(declared)  # each storage: 8-byte count, then data
    if need > left:
        raise CheckpointError(
            f"{path} is not a readable PyTorch checkpoint: its tensors need {need} bytes, "
            f"the file has {left} after the pickle (truncated or corrupt?)"
        )


# -- loading --------------------------------------------------------------------------------------


def _safe_globals(allow_numpy: bool) -> AbstractContextManager[Any]:
    return torch.serialization.safe_globals(_numpy_globals()) if allow_numpy else nullcontext()


def _checked_load(path: Path, mmap: bool, allow_numpy: bool) -> Any:
    size = path.stat().st_size
    with open(path, "rb") as handle:
        is_zip = handle.read(4) == _ZIP_MAGIC
    with _safe_globals(allow_numpy):
        if is_zip:
            view = _ZipView(path, size, check_data=not mmap)
            _dry_run(lambda: _check_zip_storages(view))
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        with open(path, "rb") as handle:
            reader = _BoundedReader(handle, size, path)
            _dry_run(lambda: _check_legacy_storages(reader, size, path))
            reader.seek(0)
            return torch.load(reader, map_location="cpu", weights_only=True)  # type: ignore[arg-type]


def _iter_causes(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__  # type: ignore[assignment]


def load_torch_object(
    path: str | os.PathLike[str],
    *,
    mmap: bool = False,
    allow_numpy: bool = False,
    what: str = "a checkpoint file",
) -> Any:
    """Whatever a ``.bin``/``.pt``/``.pth`` file holds, read with ``torch.load(weights_only=True)``.

    Args:
        path: the file.
        mmap: map the tensors' storage instead of reading it (zip-format files), to list
            shapes cheaply; the tensor records' checksums are then not verified.
        allow_numpy: also admit NumPy arrays, dtypes and scalars.
        what: how a missing file is named in the error.

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: (a ``ValueError``) truncated or corrupt (a checksum, size or
            structure that does not hold, named), or holding objects weights-only loading
            refuses (the refused global is named).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"expected {what} at {path}")
    try:
        return _checked_load(path, mmap, allow_numpy)
    except CheckpointError:
        raise
    except pickle.UnpicklingError as e:
        for cause in _iter_causes(e):
            if isinstance(cause, CheckpointError):
                raise cause from None
        reason = _unpickler_reason(e)
        if any(marker in reason for marker in _REFUSAL_MARKERS) or "persistent" in reason:
            raise CheckpointError(
                f"refused to load {path}: it holds objects other than tensors, numbers, strings, "
                f"containers{' and NumPy arrays' if allow_numpy else ''} ({reason}); "
                "ptfunc reads checkpoints with weights_only loading and never unpickles code"
            ) from None
        raise CheckpointError(
            f"{path} is not a readable PyTorch checkpoint (truncated or corrupt?): the "
            f"weights_only unpickler stopped at: {reason}"
        ) from None
    except (PermissionError, IsADirectoryError):
        raise
    except Exception as e:  # noqa: BLE001 - whatever a corrupt file makes torch raise
        for cause in _iter_causes(e):
            if isinstance(cause, CheckpointError):
                raise cause from None
        raise CheckpointError(
            f"{path} is not a readable PyTorch checkpoint (truncated or corrupt?): {_first_line(e)}"
        ) from None
