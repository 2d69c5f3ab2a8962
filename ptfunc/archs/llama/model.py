"""Llama's models: the shared Llama-style decoder (:mod:`ptfunc.archs.decoder`) with
:class:`LlamaConfig`, under ``transformers``' class names."""

from __future__ import annotations

from ..decoder.heads import DecoderForCausalLM, DecoderForSequenceClassification, DecoderModel
from .config import LlamaConfig

__all__ = ["LlamaModel", "LlamaForCausalLM", "LlamaForSequenceClassification"]


class LlamaModel(DecoderModel):
    __doc__ = DecoderModel.__doc__
    config_class = LlamaConfig


class LlamaForCausalLM(DecoderForCausalLM):
    __doc__ = DecoderForCausalLM.__doc__
    config_class = LlamaConfig


class LlamaForSequenceClassification(DecoderForSequenceClassification):
    __doc__ = DecoderForSequenceClassification.__doc__
    config_class = LlamaConfig
