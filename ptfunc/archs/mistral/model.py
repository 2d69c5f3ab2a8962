"""Mistral's models: the shared Llama-style decoder (:mod:`ptfunc.archs.decoder`) with
:class:`MistralConfig`, under ``transformers``' class names."""

from __future__ import annotations

from ..decoder.heads import family
from .config import MistralConfig

__all__ = ["MistralModel", "MistralForCausalLM", "MistralForSequenceClassification"]

MistralModel, MistralForCausalLM, MistralForSequenceClassification = family(
    "Mistral", MistralConfig, __name__
)
