"""Llama's models: the shared Llama-style decoder (:mod:`ptfunc.archs.decoder`) with
:class:`LlamaConfig`, under ``transformers``' class names."""

from __future__ import annotations

from ..decoder.heads import family
from .config import LlamaConfig

__all__ = ["LlamaModel", "LlamaForCausalLM", "LlamaForSequenceClassification"]

LlamaModel, LlamaForCausalLM, LlamaForSequenceClassification = family(
    "Llama", LlamaConfig, __name__
)
