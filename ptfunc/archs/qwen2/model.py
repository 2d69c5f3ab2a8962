"""Qwen2's models: the shared Llama-style decoder (:mod:`ptfunc.archs.decoder`) with
:class:`Qwen2Config`, under ``transformers``' class names."""

from __future__ import annotations

from ..decoder.heads import DecoderForCausalLM, DecoderForSequenceClassification, DecoderModel
from .config import Qwen2Config

__all__ = ["Qwen2Model", "Qwen2ForCausalLM", "Qwen2ForSequenceClassification"]


class Qwen2Model(DecoderModel):
    __doc__ = DecoderModel.__doc__
    config_class = Qwen2Config


class Qwen2ForCausalLM(DecoderForCausalLM):
    __doc__ = DecoderForCausalLM.__doc__
    config_class = Qwen2Config


class Qwen2ForSequenceClassification(DecoderForSequenceClassification):
    __doc__ = DecoderForSequenceClassification.__doc__
    config_class = Qwen2Config
