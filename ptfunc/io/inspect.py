"""List what a checkpoint holds, in any format ptfunc reads, without loading the data.

Formats: a ptfunc / ``transformers`` / pytorch-transformers 1.0 model directory
(``model.safetensors``, ``pytorch_model.bin``, sharded ``*.index.json``); a single
``.safetensors`` file; a PyTorch ``.bin`` / ``.pt`` / ``.pth`` file (read with
``weights_only=True``; nested dicts such as an original XLM checkpoint are listed
with dotted names); a TensorFlow checkpoint (prefix, ``.index`` file, or a directory
holding one); the original OpenAI GPT release (``params_shapes.json`` + ``params_*.npy``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

__all__ = ["TensorInfo", "CheckpointSummary", "inspect_checkpoint"]


class TensorInfo(NamedTuple):
    """One tensor: its ``name``, ``shape``, ``dtype`` (e.g. ``"float32"``) and ``nbytes``."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    nbytes: int


class CheckpointSummary(NamedTuple):
    """What :func:`inspect_checkpoint` found: the ``format`` and the tensors, sorted by name."""

    format: str
    tensors: list[TensorInfo]

    @property
    def num_parameters(self) -> int:
        """Total number of elements over all tensors."""
        return sum(int(np.prod(t.shape, dtype=np.int64)) for t in self.tensors)

    @property
    def nbytes(self) -> int:
        """Total size of the tensors' data in bytes."""
        return sum(t.nbytes for t in self.tensors)


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _info(name: str, shape: Any, dtype: torch.dtype) -> TensorInfo:
    shape = tuple(int(d) for d in shape)
    itemsize = torch.empty((), dtype=dtype).element_size()
    return TensorInfo(
        name, shape, _dtype_name(dtype), int(np.prod(shape, dtype=np.int64)) * itemsize
    )


def _safetensors(path: Path) -> list[TensorInfo]:
    """Read only the header of a safetensors file, checked as the loader checks it."""
    from .safetensors_io import read_header

    entries, _, _ = read_header(path)
    return [
        TensorInfo(
            e.name,
            e.shape,
            _dtype_name(e.torch_dtype) if e.torch_dtype is not None else e.dtype.lower(),
            e.end - e.begin,
        )
        for e in entries
    ]


def _flatten(prefix: str, value: Any, out: list[TensorInfo]) -> None:
    if isinstance(value, torch.Tensor):
        out.append(_info(prefix, value.shape, value.dtype))
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), item, out)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _flatten(f"{prefix}.{i}" if prefix else str(i), item, out)


def _torch_file(path: Path) -> list[TensorInfo]:
    from .pretrained import load_torch_object

    out: list[TensorInfo] = []
    _flatten("", load_torch_object(path, mmap=True, allow_numpy=True), out)
    return out


def _tf(path: Path) -> list[TensorInfo]:
    from .tf_checkpoint import TFCheckpoint

    ckpt = TFCheckpoint(path)
    return [
        TensorInfo(name, tuple(ckpt.shape(name)), ckpt.tf_dtype(name), ckpt.nbytes(name))
        for name in ckpt.names
    ]


def _openai_numpy(directory: Path) -> list[TensorInfo]:
    from .convert.openai_gpt import read_release_layout

    names, shapes, dtype = read_release_layout(directory)
    return [_info(n, s, torch.from_numpy(np.zeros(0, dtype)).dtype) for n, s in zip(names, shapes)]


def _model_directory(directory: Path) -> tuple[str, list[TensorInfo]] | None:
    from .pretrained import weight_files

    files = weight_files(directory)
    if files is None:
        return None
    listed = [_file(file) for file in files]
    tensors = [info for _, infos in listed for info in infos]
    fmt = listed[0][0]
    return (f"sharded {fmt}" if len(files) > 1 else fmt), tensors


def _file(path: Path) -> tuple[str, list[TensorInfo]]:
    if path.suffix == ".safetensors":
        return "safetensors", _safetensors(path)
    if path.suffix == ".index" or Path(str(path) + ".index").is_file():
        return "tensorflow checkpoint", _tf(path)
    if path.suffix in (".bin", ".pt", ".pth", ".ckpt", ".pkl"):
        return "pytorch (weights_only)", _torch_file(path)
    raise ValueError(
        f"{path}: unknown checkpoint format; expected .safetensors, .bin/.pt/.pth, a TensorFlow "
        "checkpoint (prefix or .index), or a directory"
    )


def inspect_checkpoint(path: str | os.PathLike[str]) -> CheckpointSummary:
    """Names, shapes, dtypes and sizes of the tensors in ``path`` (see the module docstring).

    Raises:
        FileNotFoundError: nothing at ``path`` (or a TensorFlow prefix without its files).
        ValueError: an unknown or corrupt format, with the reason.

    Example:
        >>> from ptfunc.cli import DEFAULT_MODEL
        >>> summary = inspect_checkpoint(DEFAULT_MODEL)
        >>> summary.format, summary.tensors[0].dtype
        ('safetensors', 'float32')
    """
    path = Path(path)
    if path.is_dir():
        found = _model_directory(path)
        if found is not None:
            fmt, tensors = found
        elif (path / "params_shapes.json").is_file():
            fmt, tensors = "openai-gpt numpy", _openai_numpy(path)
        elif any(path.glob("*.index")) or (path / "checkpoint").is_file():
            fmt, tensors = "tensorflow checkpoint", _tf(path)
        else:
            raise FileNotFoundError(
                f"{path} holds no checkpoint: expected model.safetensors, pytorch_model.bin, "
                "a TensorFlow *.index, or params_shapes.json"
            )
    elif path.is_file() or Path(str(path) + ".index").is_file():
        fmt, tensors = _file(path)
    else:
        raise FileNotFoundError(f"no checkpoint at {path}")
    return CheckpointSummary(fmt, sorted(tensors, key=lambda t: t.name))
