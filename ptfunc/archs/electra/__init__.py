"""ELECTRA (Clark et al., 2020): config, base model and the heads of transformers.

The encoder is BERT's (:mod:`ptfunc.archs.bert`), with embeddings of their own width
(``embedding_size``) projected to ``hidden_size``. The tokenizer is BERT's WordPiece
(:class:`ptfunc.tokenize.bert.BertTokenizer`).

Example:
    >>> import torch, ptfunc
    >>> from ptfunc.archs import electra
    >>> config = electra.ElectraConfig(vocab_size=99, embedding_size=16, hidden_size=32,
    ...                                num_hidden_layers=2, num_attention_heads=4,
    ...                                intermediate_size=37)
    >>> model = electra.ElectraForPreTraining(config)
    >>> params = model.init(ptfunc.random.key(0))
    >>> out = model.apply(params, torch.tensor([[2, 5, 7]]))
    >>> out.logits.shape
    torch.Size([1, 3])
"""

from ..resize import resize_token_embeddings
from .config import ElectraConfig
from .heads import (
    ElectraForMaskedLM,
    ElectraForMultipleChoice,
    ElectraForPreTraining,
    ElectraForQuestionAnswering,
    ElectraForSequenceClassification,
    ElectraForTokenClassification,
)
from .model import ElectraModel

__all__ = [
    "ElectraConfig",
    "ElectraModel",
    "ElectraForPreTraining",
    "ElectraForMaskedLM",
    "ElectraForSequenceClassification",
    "ElectraForMultipleChoice",
    "ElectraForTokenClassification",
    "ElectraForQuestionAnswering",
    "resize_token_embeddings",
]
