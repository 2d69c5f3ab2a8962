"""BERT's configuration."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from ..config import PretrainedConfig

__all__ = ["BertConfig"]


@dataclasses.dataclass(frozen=True)
class BertConfig(PretrainedConfig):
    """Configuration of the BERT models (defaults: bert-base-uncased).

    Positional order and names follow pytorch-transformers 1.0; the 1.0 key
    ``vocab_size_or_config_json_file`` is read as ``vocab_size``.

    Example:
        >>> c = BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2,
        ...                num_attention_heads=4, intermediate_size=37)
        >>> BertConfig.from_dict(c.to_dict()) == c
        True
    """

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str | Callable = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0

    model_type = "bert"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be a multiple of num_attention_heads "
                f"({self.num_attention_heads})"
            )
        for name in (
            "vocab_size",
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
            "max_position_embeddings",
            "type_vocab_size",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"BertConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"BertConfig.{name} must lie in [0, 1), got {getattr(self, name)}")

    @property
    def head_dim(self) -> int:
        """Width of one attention head."""
        return self.hidden_size // self.num_attention_heads
