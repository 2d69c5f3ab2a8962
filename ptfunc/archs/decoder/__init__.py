"""The Llama-style decoder shared by Llama, Mistral, Qwen2 and Qwen3: config fields
(:mod:`.config`), the stack (:mod:`.model`) and the model classes (:mod:`.heads`)."""

from .config import DecoderConfig
from .heads import DecoderForCausalLM, DecoderForSequenceClassification, DecoderModel

__all__ = [
    "DecoderConfig",
    "DecoderModel",
    "DecoderForCausalLM",
    "DecoderForSequenceClassification",
]
