"""BERT's configuration."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from ..config import ACTIVATION, COUNT, DROPOUT, NON_NEGATIVE, SIZE, PretrainedConfig

__all__ = ["BertConfig"]


@dataclasses.dataclass(frozen=True)
class BertConfig(PretrainedConfig):
    """Configuration of the BERT models (defaults: bert-base-uncased).

    Positional order and names follow pytorch-transformers 1.0; the 1.0 key
    ``vocab_size_or_config_json_file`` is read as ``vocab_size``. Values are checked
    as :mod:`ptfunc.archs.config` describes (sizes in ``[1, 2**24]``, dropouts in
    ``[0, 1)``, ``hidden_size`` a multiple of ``num_attention_heads``...).

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
    constraints = {
        "vocab_size": SIZE,
        "hidden_size": SIZE,
        "num_hidden_layers": SIZE,
        "num_attention_heads": SIZE,
        "intermediate_size": SIZE,
        "hidden_act": ACTIVATION,
        "hidden_dropout_prob": DROPOUT,
        "attention_probs_dropout_prob": DROPOUT,
        "max_position_embeddings": SIZE,
        "type_vocab_size": SIZE,
        "initializer_range": NON_NEGATIVE,
        "layer_norm_eps": NON_NEGATIVE,
        "pad_token_id": COUNT,
    }
    multiples = (("hidden_size", "num_attention_heads"),)
    indices = (("pad_token_id", "vocab_size"),)
    param_terms = (
        ("vocab_size", "hidden_size"),
        ("max_position_embeddings", "hidden_size"),
        ("type_vocab_size", "hidden_size"),
        (4, "num_hidden_layers", "hidden_size", "hidden_size"),
        (2, "num_hidden_layers", "hidden_size", "intermediate_size"),
    )

    @property
    def head_dim(self) -> int:
        """Width of one attention head."""
        return self.hidden_size // self.num_attention_heads
