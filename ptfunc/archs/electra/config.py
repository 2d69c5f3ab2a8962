"""ELECTRA's configuration: BERT's fields plus a separate embedding width and the heads' options."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from ...layers.sequence_summary import SUMMARY_TYPES
from ..bert.config import BertConfig
from ..config import ACTIVATION, DROPOUT, SIZE, OneOf

__all__ = ["ElectraConfig"]


@dataclasses.dataclass(frozen=True)
class ElectraConfig(BertConfig):
    """Configuration of the ELECTRA models (defaults: ``google/electra-small-discriminator``).

    BERT's fields (:class:`~ptfunc.archs.bert.BertConfig`, checked the same way) with
    transformers' ELECTRA defaults, plus ``embedding_size``: the width of the embedding
    tables, projected to ``hidden_size`` by ``embeddings_project`` when the two differ.
    ``summary_*`` configure the multiple-choice head's sequence summary;
    ``classifier_dropout`` (None: ``hidden_dropout_prob``) the classifiers' dropout.

    Example:
        >>> c = ElectraConfig(vocab_size=99, embedding_size=16, hidden_size=32,
        ...                   num_hidden_layers=2, num_attention_heads=4, intermediate_size=37)
        >>> ElectraConfig.from_dict(c.to_dict()) == c
        True
    """

    hidden_size: int = 256
    num_attention_heads: int = 4
    intermediate_size: int = 1024
    embedding_size: int = 128
    summary_type: str = "first"
    summary_use_proj: bool = True
    summary_activation: str | Callable | None = "gelu"
    summary_last_dropout: float = 0.1
    classifier_dropout: float | None = None

    model_type = "electra"
    constraints = {
        "embedding_size": SIZE,
        "summary_type": OneOf(SUMMARY_TYPES),
        "summary_activation": ACTIVATION,
        "summary_last_dropout": DROPOUT,
        "classifier_dropout": DROPOUT,
    }
    param_terms = (
        ("vocab_size", "embedding_size"),
        ("max_position_embeddings", "embedding_size"),
        ("type_vocab_size", "embedding_size"),
        ("embedding_size", "hidden_size"),
        (4, "num_hidden_layers", "hidden_size", "hidden_size"),
        (2, "num_hidden_layers", "hidden_size", "intermediate_size"),
    )

    @property
    def classifier_dropout_rate(self) -> float:
        """``classifier_dropout``, or ``hidden_dropout_prob`` when it is None."""
        if self.classifier_dropout is None:
            return self.hidden_dropout_prob
        return self.classifier_dropout
