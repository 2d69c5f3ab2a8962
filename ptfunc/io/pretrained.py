"""Directories of pretrained models: read every layout users have, write today's.

Layouts read by :func:`from_pretrained`:

* pytorch-transformers 1.0: ``config.json`` + ``pytorch_model.bin`` (read with
  ``torch.load(weights_only=True)``, never full pickle), old ``gamma``/``beta``
  LayerNorm names included;
* today's ``transformers``: ``config.json`` + ``model.safetensors`` (or sharded
  with ``model.safetensors.index.json`` / ``pytorch_model.bin.index.json``),
  with or without the base-model prefix;
* ptfunc's own, which is today's layout: :func:`save_pretrained` writes
  ``config.json`` + ``model.safetensors`` that ``transformers`` loads.

Nothing is downloaded: pass a local directory.
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .._atomic import write_files_atomically
from ..random import Key
from ..tree import Params
from .safetensors_io import load_flat, to_safetensors_bytes
from .state_dict import from_torch_state_dict, to_torch_state_dict

__all__ = [
    "from_pretrained",
    "save_pretrained",
    "load_state_dict_file",
    "load_torch_object",
    "CONFIG_NAME",
    "SAFE_WEIGHTS_NAME",
    "WEIGHTS_NAME",
]

CONFIG_NAME = "config.json"
SAFE_WEIGHTS_NAME = "model.safetensors"
WEIGHTS_NAME = "pytorch_model.bin"


def load_torch_object(path: str | os.PathLike[str], *, mmap: bool = False) -> Any:
    """Whatever a ``.bin``/``.pt``/``.pth`` file holds, read with ``torch.load(weights_only=True)``.

    Only tensors and plain containers/numbers/strings come back; a pickle that would
    run code is refused. ``mmap=True`` maps the tensors' storage instead of reading it
    (zip-format files), for listing shapes cheaply.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: truncated, corrupt, or holding objects weights-only loading refuses.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"expected a checkpoint file at {path}")
    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        except RuntimeError as e:
            if not mmap or "mmap" not in str(e):
                raise
            return torch.load(path, map_location="cpu", weights_only=True)  # legacy format
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, OSError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(
            f"{path} is not a readable PyTorch checkpoint (truncated, corrupt, or it holds "
            f"objects that weights_only loading refuses): {reason}"
        ) from None


def load_state_dict_file(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """Read ``.safetensors`` or a ``.bin``/``.pt`` (``torch.load(weights_only=True)``).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: truncated, corrupt, or a pickle holding more than tensors.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        return load_flat(path)
    state = load_torch_object(path)
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"{path} does not hold a state dict of tensors")
    return state


def _read_weights(directory: Path) -> dict[str, Tensor]:
    for index_name in (SAFE_WEIGHTS_NAME + ".index.json", WEIGHTS_NAME + ".index.json"):
        index = directory / index_name
        if index.is_file():
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            state: dict[str, Tensor] = {}
            for shard in sorted(set(weight_map.values())):
                state.update(load_state_dict_file(directory / shard))
            return state
    for name in (SAFE_WEIGHTS_NAME, WEIGHTS_NAME):
        if (directory / name).is_file():
            return load_state_dict_file(directory / name)
    raise FileNotFoundError(
        f"no weights in {directory}: expected {SAFE_WEIGHTS_NAME} or {WEIGHTS_NAME} "
        "(or a sharded .index.json)"
    )


def from_pretrained(
    path: str | os.PathLike[str],
    constructor: Any,
    *,
    key: Key | None = None,
    strict: bool = False,
    output_loading_info: bool = False,
    **config_overrides: Any,
) -> tuple[Any, Params] | tuple[Any, Params, Any]:
    """Load ``(model, params)`` from a local directory holding config.json and weights.

    Args:
        path: a directory (any layout above).
        constructor: the model class, e.g. ``bert.BertForSequenceClassification``.
        key: initialises head params the checkpoint lacks (reported by name).
        strict: missing or unexpected names raise instead of warning.
        output_loading_info: also return the :class:`~ptfunc.io.state_dict.LoadingInfo`.
        **config_overrides: config fields to change (e.g. ``num_labels=3``).

    Example:
        >>> model, params = from_pretrained("bert-dir", bert.BertForMaskedLM)  # doctest: +SKIP
    """
    directory = Path(path)
    if not directory.is_dir():
        raise FileNotFoundError(
            f"{directory} is not a directory. ptfunc reads local directories only (no downloads): "
            f"expected a folder with {CONFIG_NAME} and {SAFE_WEIGHTS_NAME} or {WEIGHTS_NAME}"
        )
    config = constructor.config_class.from_json_file(directory / CONFIG_NAME, **config_overrides)
    model = constructor(config)
    state = _read_weights(directory)
    params, info = from_torch_state_dict(
        model, state, key=key, strict=strict, output_loading_info=True
    )
    return (model, params, info) if output_loading_info else (model, params)


def save_pretrained(directory: str | os.PathLike[str], model: Any, params: Params) -> None:
    """Write ``config.json`` and ``model.safetensors`` (today's layout), atomically.

    Both files are written to temporary names first; a failure leaves the
    previous directory contents intact.

    The weights carry the seed's names; tied copies are left out, as
    ``transformers`` does, so ``transformers``' ``from_pretrained`` loads the
    directory to identical outputs.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    flat = to_torch_state_dict(model, params, include_tied=False)
    config = model.config.to_dict()
    config["architectures"] = [type(model).__name__]
    write_files_atomically(
        {
            directory / SAFE_WEIGHTS_NAME: to_safetensors_bytes(flat),
            directory / CONFIG_NAME: json.dumps(config, indent=2, sort_keys=True) + "\n",
        }
    )
