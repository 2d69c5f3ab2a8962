"""ALBERT (Lan et al., 2019): config, base model and the heads of transformers.

Factorised embeddings (``embedding_size`` mapped to ``hidden_size``) and layer params
shared across the stack: one subtree per group, run ``num_hidden_layers`` times. The
tokenizer is :class:`ptfunc.tokenize.albert.AlbertTokenizer` (SentencePiece).

Example:
    >>> import torch, ptfunc
    >>> from ptfunc.archs import albert
    >>> config = albert.AlbertConfig(vocab_size=99, embedding_size=16, hidden_size=32,
    ...                              num_hidden_layers=4, num_attention_heads=4,
    ...                              intermediate_size=37)
    >>> model = albert.AlbertForMaskedLM(config)
    >>> params = model.init(ptfunc.random.key(0))
    >>> len(params["albert"]["encoder"]["albert_layer_groups"])  # one group, shared 4 times
    1
    >>> model.apply(params, torch.tensor([[2, 5, 7]])).logits.shape
    torch.Size([1, 3, 99])
"""

from ..resize import resize_token_embeddings
from .config import AlbertConfig
from .heads import (
    AlbertForMaskedLM,
    AlbertForMultipleChoice,
    AlbertForPreTraining,
    AlbertForQuestionAnswering,
    AlbertForSequenceClassification,
    AlbertForTokenClassification,
)
from .model import AlbertModel

__all__ = [
    "AlbertConfig",
    "AlbertModel",
    "AlbertForPreTraining",
    "AlbertForMaskedLM",
    "AlbertForSequenceClassification",
    "AlbertForMultipleChoice",
    "AlbertForTokenClassification",
    "AlbertForQuestionAnswering",
    "resize_token_embeddings",
]
