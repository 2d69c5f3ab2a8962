"""Mistral's configuration: Llama's blocks with grouped-query and sliding-window attention."""

from __future__ import annotations

import dataclasses

from ..config import SIZE
from ..decoder.config import DecoderConfig

__all__ = ["MistralConfig"]


@dataclasses.dataclass(frozen=True)
class MistralConfig(DecoderConfig):
    """Configuration of the Mistral models (defaults: Mistral-7B-v0.1), config.json's names.

    ``sliding_window``: each query attends to the last ``sliding_window`` positions (itself
    included), in every layer; None for full causal attention (Mistral v0.2 onwards).

    Example:
        >>> c = MistralConfig(vocab_size=99, hidden_size=32, intermediate_size=64,
        ...                   num_hidden_layers=2, num_attention_heads=4,
        ...                   num_key_value_heads=2, sliding_window=8)
        >>> c.sliding_windows()
        (8, 8)
    """

    intermediate_size: int = 14336
    num_key_value_heads: int | None = 8
    max_position_embeddings: int = 4096 * 32
    sliding_window: int | None = 4096

    model_type = "mistral"
    constraints = {"sliding_window": SIZE}

    def sliding_windows(self) -> tuple[int | None, ...]:
        return (self.sliding_window,) * self.num_hidden_layers
