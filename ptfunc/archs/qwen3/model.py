"""Qwen3's models: the shared Llama-style decoder (:mod:`ptfunc.archs.decoder`) with
:class:`Qwen3Config`, under ``transformers``' class names."""

from __future__ import annotations

from ..decoder.heads import DecoderForCausalLM, DecoderForSequenceClassification, DecoderModel
from .config import Qwen3Config

__all__ = ["Qwen3Model", "Qwen3ForCausalLM", "Qwen3ForSequenceClassification"]


class Qwen3Model(DecoderModel):
    __doc__ = DecoderModel.__doc__
    config_class = Qwen3Config


class Qwen3ForCausalLM(DecoderForCausalLM):
    __doc__ = DecoderForCausalLM.__doc__
    config_class = Qwen3Config


class Qwen3ForSequenceClassification(DecoderForSequenceClassification):
    __doc__ = DecoderForSequenceClassification.__doc__
    config_class = Qwen3Config
