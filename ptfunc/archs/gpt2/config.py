"""GPT-2's configuration."""

from __future__ import annotations

import dataclasses

from ..config import GPT_FAMILY_CONSTRAINTS, PretrainedConfig

__all__ = ["GPT2Config"]


@dataclasses.dataclass(frozen=True)
class GPT2Config(PretrainedConfig):
    """Configuration of the GPT-2 models (defaults: gpt2, 117M).

    Field names and positional order follow pytorch-transformers 1.0; today's
    names (``hidden_size``, ``num_attention_heads``, ``num_hidden_layers``,
    ``max_position_embeddings``) are read as aliases and available as properties.
    Values are checked as :mod:`ptfunc.archs.config` describes.
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
    constraints = GPT_FAMILY_CONSTRAINTS
    multiples = (("n_embd", "n_head"),)
    param_terms = (
        ("vocab_size", "n_embd"),
        ("n_positions", "n_embd"),
        (12, "n_layer", "n_embd", "n_embd"),
    )

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head
