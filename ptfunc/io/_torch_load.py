"""Reading PyTorch pickles safely: ``torch.load(weights_only=True)``, never full unpickling.

Original checkpoints (XLM's ``.pth`` among them) also hold NumPy arrays and scalars in
their hyper-parameters; ``allow_numpy=True`` admits exactly NumPy's data types for one
load, which cannot run code. Everything else a pickle names is refused, and the error
says what was refused.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["load_torch_object"]


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
    for marker in ("Unsupported global", "Trying to load unsupported", "Can only build"):
        for line in lines:
            if marker in line:
                line = line[line.index(marker) :]
                return line.split(" Please use", 1)[0].split(" Check the documentation", 1)[0]
    for i, line in enumerate(lines):
        if "WeightsUnpickler error" in line:
            tail = line.split("WeightsUnpickler error:", 1)[1].strip()
            return tail or (lines[i + 1] if i + 1 < len(lines) else line)
    return lines[-1] if lines else type(error).__name__


def _load(path: Path, mmap: bool, allow_numpy: bool) -> Any:
    def load(use_mmap: bool) -> Any:
        if allow_numpy:
            with torch.serialization.safe_globals(_numpy_globals()):
                return torch.load(path, map_location="cpu", weights_only=True, mmap=use_mmap)
        return torch.load(path, map_location="cpu", weights_only=True, mmap=use_mmap)

    if not mmap:
        return load(False)
    try:
        return load(True)
    except RuntimeError as e:  # legacy (non-zip) files cannot be mapped
        if "mmap" not in str(e):
            raise
        return load(False)


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
            shapes cheaply.
        allow_numpy: also admit NumPy arrays, dtypes and scalars.
        what: how a missing file is named in the error.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: truncated or corrupt, or holding objects weights-only loading refuses
            (the refused global is named).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"expected {what} at {path}")
    try:
        return _load(path, mmap, allow_numpy)
    except pickle.UnpicklingError as e:
        raise ValueError(
            f"refused to load {path}: it holds objects other than tensors, numbers, strings, "
            f"containers{' and NumPy arrays' if allow_numpy else ''} ({_unpickler_reason(e)}); "
            "ptfunc reads checkpoints with weights_only loading and never unpickles code"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(
            f"{path} is not a readable PyTorch checkpoint (truncated or corrupt?): {reason}"
        ) from None
