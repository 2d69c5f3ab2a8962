"""Qwen2's models: the shared Llama-style decoder (:mod:`ptfunc.archs.decoder`) with
:class:`Qwen2Config`, under ``transformers``' class names."""

from __future__ import annotations

from ..decoder.heads import family
from .config import Qwen2Config

__all__ = ["Qwen2Model", "Qwen2ForCausalLM", "Qwen2ForSequenceClassification"]

Qwen2Model, Qwen2ForCausalLM, Qwen2ForSequenceClassification = family(
    "Qwen2", Qwen2Config, __name__
)
