"""DistilBERT's configuration."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from ..config import ACTIVATION, COUNT, DROPOUT, NON_NEGATIVE, SIZE, PretrainedConfig

__all__ = ["DistilBertConfig"]


@dataclasses.dataclass(frozen=True)
class DistilBertConfig(PretrainedConfig):
    """Configuration of the DistilBERT models (defaults: distilbert-base-uncased).

    Field names and defaults of transformers' ``DistilBertConfig``; ``hidden_size``,
    ``num_attention_heads`` and ``num_hidden_layers`` read as ``dim``, ``n_heads`` and
    ``n_layers`` (transformers' ``attribute_map``). Values are checked as
    :mod:`ptfunc.archs.config` describes (``dim`` a multiple of ``n_heads``...).

    Example:
        >>> c = DistilBertConfig(vocab_size=99, dim=32, n_layers=2, n_heads=4, hidden_dim=37)
        >>> DistilBertConfig.from_dict(c.to_dict()) == c, c.hidden_size, c.head_dim
        (True, 32, 8)
    """

    vocab_size: int = 30522
    max_position_embeddings: int = 512
    sinusoidal_pos_embds: bool = False
    n_layers: int = 6
    n_heads: int = 12
    dim: int = 768
    hidden_dim: int = 3072
    dropout: float = 0.1
    attention_dropout: float = 0.1
    activation: str | Callable = "gelu"
    initializer_range: float = 0.02
    qa_dropout: float = 0.1
    seq_classif_dropout: float = 0.2
    pad_token_id: int = 0

    model_type = "distilbert"
    aliases = {
        "hidden_size": "dim",
        "num_attention_heads": "n_heads",
        "num_hidden_layers": "n_layers",
    }
    constraints = {
        "vocab_size": SIZE,
        "max_position_embeddings": SIZE,
        "n_layers": SIZE,
        "n_heads": SIZE,
        "dim": SIZE,
        "hidden_dim": SIZE,
        "dropout": DROPOUT,
        "attention_dropout": DROPOUT,
        "activation": ACTIVATION,
        "initializer_range": NON_NEGATIVE,
        "qa_dropout": DROPOUT,
        "seq_classif_dropout": DROPOUT,
        "pad_token_id": COUNT,
    }
    multiples = (("dim", "n_heads"),)
    indices = (("pad_token_id", "vocab_size"),)
    param_terms = (
        ("vocab_size", "dim"),
        ("max_position_embeddings", "dim"),
        (4, "n_layers", "dim", "dim"),
        (2, "n_layers", "dim", "hidden_dim"),
    )

    layer_norm_eps = 1e-12
    """Every LayerNorm's epsilon (fixed in transformers' DistilBERT, not a config field)."""

    @property
    def head_dim(self) -> int:
        """Width of one attention head."""
        return self.dim // self.n_heads
