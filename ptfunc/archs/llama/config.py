"""Llama's configuration (Llama 2 and 3.x, and the many models that reuse its layout)."""

from __future__ import annotations

import dataclasses

from ..config import SIZE
from ..decoder.config import DecoderConfig

__all__ = ["LlamaConfig"]


@dataclasses.dataclass(frozen=True)
class LlamaConfig(DecoderConfig):
    """Configuration of the Llama models (defaults: Llama-2-7B), config.json's names.

    ``attention_bias`` puts biases on q/k/v and the output projection, ``mlp_bias`` on the
    gated MLP; ``pretraining_tp`` is read and written back but changes nothing (today's
    ``transformers`` ignores it too). Rotary settings as :mod:`ptfunc.archs.decoder.config`.

    Example:
        >>> c = LlamaConfig(vocab_size=99, hidden_size=32, intermediate_size=64,
        ...                 num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
        >>> c.head_dim, c.num_key_value_heads
        (8, 2)
        >>> LlamaConfig.from_dict(c.to_dict()) == c
        True
    """

    pretraining_tp: int = 1
    attention_bias: bool = False
    mlp_bias: bool = False

    model_type = "llama"
    constraints = {"pretraining_tp": SIZE}

    def attention_biases(self) -> tuple[bool, bool]:
        return self.attention_bias, self.attention_bias

    @property
    def has_mlp_bias(self) -> bool:
        return self.mlp_bias
