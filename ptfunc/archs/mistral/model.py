"""Mistral's models: the shared Llama-style decoder (:mod:`ptfunc.archs.decoder`) with
:class:`MistralConfig`, under ``transformers``' class names."""

from __future__ import annotations

from ..decoder.heads import DecoderForCausalLM, DecoderForSequenceClassification, DecoderModel
from .config import MistralConfig

__all__ = ["MistralModel", "MistralForCausalLM", "MistralForSequenceClassification"]


class MistralModel(DecoderModel):
    __doc__ = DecoderModel.__doc__
    config_class = MistralConfig


class MistralForCausalLM(DecoderForCausalLM):
    __doc__ = DecoderForCausalLM.__doc__
    config_class = MistralConfig


class MistralForSequenceClassification(DecoderForSequenceClassification):
    __doc__ = DecoderForSequenceClassification.__doc__
    config_class = MistralConfig
