"""Qwen3's models: the shared Llama-style decoder (:mod:`ptfunc.archs.decoder`) with
:class:`Qwen3Config`, under ``transformers``' class names."""

from __future__ import annotations

from ..decoder.heads import family
from .config import Qwen3Config

__all__ = ["Qwen3Model", "Qwen3ForCausalLM", "Qwen3ForSequenceClassification"]

Qwen3Model, Qwen3ForCausalLM, Qwen3ForSequenceClassification = family(
    "Qwen3", Qwen3Config, __name__
)
