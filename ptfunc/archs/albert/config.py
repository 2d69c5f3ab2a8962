"""ALBERT's configuration: BERT's fields, a separate embedding width and layer sharing."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from ..bert.config import BertConfig
from ..config import DROPOUT, SIZE, ConfigError

__all__ = ["AlbertConfig"]


@dataclasses.dataclass(frozen=True)
class AlbertConfig(BertConfig):
    """Configuration of the ALBERT models (defaults: transformers' ``AlbertConfig``,
    albert-xxlarge).

    BERT's fields (:class:`~ptfunc.archs.bert.BertConfig`, checked the same way) plus:

    * ``embedding_size``: width of the embedding tables, mapped to ``hidden_size`` by
      ``encoder.embedding_hidden_mapping_in``;
    * ``num_hidden_groups``: how many distinct sets of layer params; layer ``l`` of
      ``num_hidden_layers`` uses group ``int(l / (num_hidden_layers / num_hidden_groups))``;
    * ``inner_group_num``: layers inside each group, all run at every one of the
      ``num_hidden_layers`` steps (``num_hidden_layers * inner_group_num`` layer calls);
    * ``classifier_dropout_prob``: the classification heads' dropout.

    Example:
        >>> c = AlbertConfig(vocab_size=99, embedding_size=16, hidden_size=32,
        ...                  num_hidden_layers=4, num_hidden_groups=2, num_attention_heads=4,
        ...                  intermediate_size=37)
        >>> AlbertConfig.from_dict(c.to_dict()) == c
        True
    """

    vocab_size: int = 30000
    hidden_size: int = 4096
    num_attention_heads: int = 64
    intermediate_size: int = 16384
    hidden_act: str | Callable = "gelu_new"
    hidden_dropout_prob: float = 0.0
    attention_probs_dropout_prob: float = 0.0
    embedding_size: int = 128
    num_hidden_groups: int = 1
    inner_group_num: int = 1
    classifier_dropout_prob: float = 0.1

    model_type = "albert"
    constraints = {
        "embedding_size": SIZE,
        "num_hidden_groups": SIZE,
        "inner_group_num": SIZE,
        "classifier_dropout_prob": DROPOUT,
    }
    param_terms = (
        ("vocab_size", "embedding_size"),
        ("max_position_embeddings", "embedding_size"),
        ("type_vocab_size", "embedding_size"),
        ("embedding_size", "hidden_size"),
        (4, "num_hidden_groups", "inner_group_num", "hidden_size", "hidden_size"),
        (2, "num_hidden_groups", "inner_group_num", "hidden_size", "intermediate_size"),
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_hidden_groups > self.num_hidden_layers:
            raise ConfigError(
                f"AlbertConfig.num_hidden_groups ({self.num_hidden_groups}) must be <= "
                f"num_hidden_layers ({self.num_hidden_layers}): every group is used"
            )

    def group_of_layer(self, layer: int) -> int:
        """The params group that layer ``layer`` runs (transformers' formula)."""
        return int(layer / (self.num_hidden_layers / self.num_hidden_groups))
