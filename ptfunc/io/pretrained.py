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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor

from .._atomic import write_files_atomically
from ..random import Key
from ..tree import Params
from ._torch_load import load_torch_object
from .safetensors_io import load_flat, to_safetensors_bytes
from .state_dict import from_torch_state_dict, to_torch_state_dict

__all__ = [
    "from_pretrained",
    "save_pretrained",
    "load_state_dict_file",
    "load_torch_object",
    "weight_files",
    "pretrained_files",
    "model_config_dict",
    "config_text",
    "CONFIG_NAME",
    "SAFE_WEIGHTS_NAME",
    "WEIGHTS_NAME",
]

CONFIG_NAME = "config.json"
SAFE_WEIGHTS_NAME = "model.safetensors"
WEIGHTS_NAME = "pytorch_model.bin"


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


def weight_files(directory: str | os.PathLike[str]) -> list[Path] | None:
    """The weight files of a model directory, shards in order, or None when it has none.

    A sharded ``model.safetensors.index.json`` / ``pytorch_model.bin.index.json`` names
    its shards; otherwise ``model.safetensors`` is preferred to ``pytorch_model.bin``.
    """
    directory = Path(directory)
    for index_name in (SAFE_WEIGHTS_NAME + ".index.json", WEIGHTS_NAME + ".index.json"):
        index = directory / index_name
        if index.is_file():
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            return [directory / shard for shard in sorted(set(weight_map.values()))]
    for name in (SAFE_WEIGHTS_NAME, WEIGHTS_NAME):
        if (directory / name).is_file():
            return [directory / name]
    return None


def _read_weights(directory: Path) -> dict[str, Tensor]:
    files = weight_files(directory)
    if files is None:
        raise FileNotFoundError(
            f"no weights in {directory}: expected {SAFE_WEIGHTS_NAME} or {WEIGHTS_NAME} "
            "(or a sharded .index.json)"
        )
    state: dict[str, Tensor] = {}
    for file in files:
        state.update(load_state_dict_file(file))
    return state


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


def model_config_dict(model: Any) -> dict[str, Any]:
    """``model.config.to_dict()`` with ``architectures`` naming the model's class."""
    config = model.config.to_dict()
    config["architectures"] = [type(model).__name__]
    return config


def config_text(config: Mapping[str, Any]) -> str:
    """config.json text as ptfunc and the seed write it: indent 2, sorted keys, newline."""
    return json.dumps(config, indent=2, sort_keys=True) + "\n"


def pretrained_files(model: Any, params: Params) -> dict[str, str | bytes]:
    """``{"config.json": text, "model.safetensors": bytes}``: what :func:`save_pretrained` writes.

    Converters add tokenizer files to this and write the lot in one atomic step.
    """
    flat = to_torch_state_dict(model, params, include_tied=False)
    return {
        CONFIG_NAME: config_text(model_config_dict(model)),
        SAFE_WEIGHTS_NAME: to_safetensors_bytes(flat),
    }


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
    files = pretrained_files(model, params)
    write_files_atomically({directory / name: data for name, data in files.items()})
