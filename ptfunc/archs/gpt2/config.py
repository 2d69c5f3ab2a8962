"""GPT-2's configuration."""

from __future__ import annotations

import dataclasses

from ..config import PretrainedConfig

__all__ = ["GPT2Config"]


@dataclasses.dataclass(frozen=True)
class GPT2Config(PretrainedConfig):
    """Configuration of the GPT-2 models (defaults: gpt2, 117M).

    Field names and positional order follow pytorch-transformers 1.0; today's
    names (``hidden_size``, ``num_attention_heads``, ``num_hidden_layers``,
    ``max_position_embeddings``) are read as aliases and available as properties.
    """

    vocab_size: int = 50257
    n_positions: int = 1024
    n_ctx: int = 1024
    n_embd: int = 768
    n_layer: int = 12
    n_head: int = 12
    resid_pdrop: float = 0.1
    embd_pdrop: float = 0.1
    attn_pdrop: float = 0.1
    layer_norm_epsilon: float = 1e-5
    initializer_range: float = 0.02
    summary_type: str = "cls_index"
    summary_use_proj: bool = True
    summary_activation: str | None = None
    summary_proj_to_labels: bool = True
    summary_first_dropout: float = 0.1
    num_labels: int = dataclasses.field(default=1, kw_only=True)  # one score per choice

    model_type = "gpt2"
    aliases = {
        "hidden_size": "n_embd",
        "num_attention_heads": "n_head",
        "num_hidden_layers": "n_layer",
        "max_position_embeddings": "n_positions",
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head})")
        for name in ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head"):
            if getattr(self, name) < 1:
                raise ValueError(f"GPT2Config.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("resid_pdrop", "embd_pdrop", "attn_pdrop", "summary_first_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"GPT2Config.{name} must lie in [0, 1), got {getattr(self, name)}")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head
