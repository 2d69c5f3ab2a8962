"""BERT (Devlin et al., 2018): config, base model and the eight heads of pytorch-transformers 1.0.

Example:
    >>> import torch, ptfunc
    >>> from ptfunc.archs import bert
    >>> config = bert.BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2,
    ...                          num_attention_heads=4, intermediate_size=37)
    >>> model = bert.BertForMaskedLM(config)
    >>> params = model.init(ptfunc.random.key(0))
    >>> out = model.apply(params, torch.tensor([[2, 5, 7]]))
    >>> out.logits.shape
    torch.Size([1, 3, 99])
"""

from ..resize import resize_token_embeddings
from .config import BertConfig
from .heads import (
    BertForMaskedLM,
    BertForMultipleChoice,
    BertForNextSentencePrediction,
    BertForPreTraining,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
)
from .model import BertModel
from .transforms import prune_heads

__all__ = [
    "BertConfig",
    "BertModel",
    "BertForPreTraining",
    "BertForMaskedLM",
    "BertForNextSentencePrediction",
    "BertForSequenceClassification",
    "BertForMultipleChoice",
    "BertForTokenClassification",
    "BertForQuestionAnswering",
    "resize_token_embeddings",
    "prune_heads",
]
