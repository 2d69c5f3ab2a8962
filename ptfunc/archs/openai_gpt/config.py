"""OpenAI GPT's configuration."""

from __future__ import annotations

import dataclasses

from ..config import COUNT, GPT_FAMILY_CONSTRAINTS, OneOf, PretrainedConfig

__all__ = ["OpenAIGPTConfig"]


@dataclasses.dataclass(frozen=True)
class OpenAIGPTConfig(PretrainedConfig):
    """Configuration of the OpenAI GPT models (defaults: openai-gpt).

    ``afn`` is the feed-forward activation (``gelu`` is the tanh approximation
    here, as in the seed and today's ``transformers``). Values are checked as
    :mod:`ptfunc.archs.config` describes.
    """

    vocab_size: int = 40478
    n_positions: int = 512
    n_ctx: int = 512
    n_embd: int = 768
    n_layer: int = 12
    n_head: int = 12
    afn: str = "gelu"
    resid_pdrop: float = 0.1
    embd_pdrop: float = 0.1
    attn_pdrop: float = 0.1
    layer_norm_epsilon: float = 1e-5
    initializer_range: float = 0.02
    predict_special_tokens: bool = True
    summary_type: str = "cls_index"
    summary_use_proj: bool = True
    summary_activation: str | None = None
    summary_proj_to_labels: bool = True
    summary_first_dropout: float = 0.1
    n_special: int = dataclasses.field(default=0, kw_only=True)
    num_labels: int = dataclasses.field(default=1, kw_only=True)  # one score per choice

    model_type = "openai-gpt"
    aliases = {
        "hidden_size": "n_embd",
        "num_attention_heads": "n_head",
        "num_hidden_layers": "n_layer",
        "max_position_embeddings": "n_positions",
    }
    constraints = {
        **GPT_FAMILY_CONSTRAINTS,
        "afn": OneOf(("gelu", "relu", "swish", "silu")),
        "n_special": COUNT,
    }
    multiples = (("n_embd", "n_head"),)
    param_terms = (
        ("vocab_size", "n_embd"),
        ("n_special", "n_embd"),
        ("n_positions", "n_embd"),
        (12, "n_layer", "n_embd", "n_embd"),
    )

    @property
    def total_tokens_embeddings(self) -> int:
        """Rows of ``tokens_embed``: the vocabulary plus ``n_special`` learned special tokens
        (pytorch-pretrained-bert 0.6's ``n_special``; 0 in 1.0 and today's files)."""
        return self.vocab_size + self.n_special

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head
