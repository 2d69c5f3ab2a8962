"""Converters from the original checkpoints, and export between directory layouts.

Each converter reads one original format and writes a ptfunc model directory
(``config.json`` + ``model.safetensors`` + tokenizer files), atomically:

* :func:`convert_bert`, :func:`convert_gpt2`, :func:`convert_transfo_xl`,
  :func:`convert_xlnet`: TensorFlow checkpoints, read by
  :mod:`ptfunc.io.tf_checkpoint` (TensorFlow is not needed);
* :func:`convert_openai_gpt`: the NumPy release of OpenAI GPT;
* :func:`convert_xlm`: the original PyTorch ``.pth`` of XLM (weights only);
* :func:`export_directory`: any model directory to today's ``transformers``
  layout or to pytorch-transformers 1.0's.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._common import Progress

__all__ = [
    "Progress",
    "convert_bert",
    "convert_gpt2",
    "convert_transfo_xl",
    "convert_xlnet",
    "convert_openai_gpt",
    "convert_xlm",
    "export_directory",
]

_MODULES = {
    "convert_bert": "bert",
    "convert_gpt2": "gpt2",
    "convert_transfo_xl": "transfo_xl",
    "convert_xlnet": "xlnet",
    "convert_openai_gpt": "openai_gpt",
    "convert_xlm": "xlm",
    "export_directory": "export",
}


def __getattr__(name: str) -> Any:
    # Each converter imports only what its format needs, when first used.
    if name in _MODULES:
        return getattr(importlib.import_module(f".{_MODULES[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
