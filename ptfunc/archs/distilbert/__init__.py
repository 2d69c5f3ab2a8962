"""DistilBERT (Sanh et al., 2019): config, base model and the heads of transformers.

Example:
    >>> import torch, ptfunc
    >>> from ptfunc.archs import distilbert
    >>> config = distilbert.DistilBertConfig(vocab_size=99, dim=32, n_layers=2, n_heads=4,
    ...                                      hidden_dim=37)
    >>> model = distilbert.DistilBertForMaskedLM(config)
    >>> params = model.init(ptfunc.random.key(0))
    >>> out = model.apply(params, torch.tensor([[2, 5, 7]]))
    >>> out.logits.shape
    torch.Size([1, 3, 99])
"""

from .config import DistilBertConfig
from .heads import (
    DistilBertForMaskedLM,
    DistilBertForMultipleChoice,
    DistilBertForQuestionAnswering,
    DistilBertForSequenceClassification,
    DistilBertForTokenClassification,
)
from .model import BaseModelOutput, DistilBertModel

__all__ = [
    "DistilBertConfig",
    "DistilBertModel",
    "DistilBertForMaskedLM",
    "DistilBertForSequenceClassification",
    "DistilBertForMultipleChoice",
    "DistilBertForTokenClassification",
    "DistilBertForQuestionAnswering",
    "BaseModelOutput",
]
