"""What a converted model directory holds, built in memory before one atomic write.

Every converter ends the same way: a model and its params become
``config.json`` + ``model.safetensors`` (the content :func:`ptfunc.io.save_pretrained`
writes: the config with ``architectures``, the seed's names, tied copies left
out), the user's tokenizer files are copied beside them, and the whole set goes
to :func:`._common.write_directory` in one call, so that nothing is written half.

    >>> files = model_files(model, params)                       # doctest: +SKIP
    >>> files.update(copied_files({"vocab.txt": vocab_path}))    # doctest: +SKIP
    >>> write_directory(output_dir, files)                       # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from ...tree import Params
from ..pretrained import CONFIG_NAME, SAFE_WEIGHTS_NAME
from ..safetensors_io import to_safetensors_bytes
from ..state_dict import to_torch_state_dict
from ._common import read_file_bytes

__all__ = ["config_text", "model_config_dict", "model_files", "copied_files"]


def model_config_dict(model: Any) -> dict[str, Any]:
    """``model.config.to_dict()`` with ``architectures`` naming the model's class."""
    config = model.config.to_dict()
    config["architectures"] = [type(model).__name__]
    return config


def config_text(config: Mapping[str, Any]) -> str:
    """config.json text as ptfunc and the seed write it: indent 2, sorted keys, newline."""
    return json.dumps(config, indent=2, sort_keys=True) + "\n"


def model_files(model: Any, params: Params) -> dict[str, str | bytes]:
    """``{"config.json": text, "model.safetensors": bytes}`` for ``(model, params)``.

    The same content as :func:`ptfunc.io.save_pretrained`: today's ``transformers``
    reads it, and so does :func:`ptfunc.io.from_pretrained`.
    """
    flat = to_torch_state_dict(model, params, include_tied=False)
    return {
        CONFIG_NAME: config_text(model_config_dict(model)),
        SAFE_WEIGHTS_NAME: to_safetensors_bytes(flat),
    }


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
