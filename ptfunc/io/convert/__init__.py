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

from ._common import Progress
from .bert import convert_bert
from .export import export_directory
from .gpt2 import convert_gpt2
from .openai_gpt import convert_openai_gpt
from .transfo_xl import convert_transfo_xl
from .xlm import convert_xlm
from .xlnet import convert_xlnet

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
