"""RoBERTa's configuration: BERT's fields with RoBERTa's defaults and special tokens."""

from __future__ import annotations

import dataclasses

from ..bert.config import BertConfig
from ..config import COUNT, DROPOUT

__all__ = ["RobertaConfig"]


@dataclasses.dataclass(frozen=True)
class RobertaConfig(BertConfig):
    """Configuration of the RoBERTa models (defaults: roberta-base).

    The fields of :class:`~ptfunc.archs.bert.BertConfig` with roberta-base's values as
    defaults (transformers' ``RobertaConfig()`` keeps BERT's 512 positions, 2 token types
    and ``layer_norm_eps=1e-12``; every RoBERTa checkpoint's config.json sets its own),
    plus the special tokens and ``classifier_dropout`` (None: the classification head
    drops out with ``hidden_dropout_prob``). Positions start at
    ``pad_token_id + 1``, so a sequence holds at most ``max_position_embeddings -
    pad_token_id - 1`` tokens (512 with the defaults).

    Example:
        >>> c = RobertaConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2,
        ...                   num_attention_heads=4, intermediate_size=37)
        >>> RobertaConfig.from_dict(c.to_dict()) == c, c.pad_token_id, c.layer_norm_eps
        (True, 1, 1e-05)
    """

    vocab_size: int = 50265
    max_position_embeddings: int = 514
    type_vocab_size: int = 1
    layer_norm_eps: float = 1e-5
    pad_token_id: int = 1
    bos_token_id: int = 0
    eos_token_id: int = 2
    classifier_dropout: float | None = None

    model_type = "roberta"
    constraints = {"bos_token_id": COUNT, "eos_token_id": COUNT, "classifier_dropout": DROPOUT}
    indices = (
        ("pad_token_id", "vocab_size"),
        ("bos_token_id", "vocab_size"),
        ("eos_token_id", "vocab_size"),
        ("pad_token_id", "max_position_embeddings"),
    )
