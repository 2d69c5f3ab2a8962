"""Qwen3's configuration: Qwen2's layout with RMSNorm on queries and keys, no q/k/v biases."""

from __future__ import annotations

import dataclasses

from ..qwen2.config import QwenConfigBase

__all__ = ["Qwen3Config"]


@dataclasses.dataclass(frozen=True)
class Qwen3Config(QwenConfigBase):
    """Configuration of the Qwen3 dense models (defaults: Qwen3-8B-like), config.json's names.

    ``head_dim`` is its own field (128 by default, not ``hidden_size // heads``);
    ``attention_bias`` puts biases on all four projections; each query and key head is
    RMS-normalised (``q_norm``, ``k_norm``) before the rotation. Sliding windows as Qwen2.

    Example:
        >>> c = Qwen3Config(vocab_size=99, hidden_size=32, intermediate_size=64,
        ...                 num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        ...                 head_dim=16)
        >>> c.head_dim, c.qk_norm
        (16, True)
    """

    head_dim: int | None = 128
    attention_bias: bool = False

    model_type = "qwen3"
    qk_norm = True

    def attention_biases(self) -> tuple[bool, bool]:
        return self.attention_bias, self.attention_bias
