"""RoBERTa (Liu et al., 2019): BERT's encoder with padding-aware positions, and its heads.

Example:
    >>> import torch, ptfunc
    >>> from ptfunc.archs import roberta
    >>> config = roberta.RobertaConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2,
    ...                                num_attention_heads=4, intermediate_size=37)
    >>> model = roberta.RobertaForMaskedLM(config)
    >>> params = model.init(ptfunc.random.key(0))
    >>> out = model.apply(params, torch.tensor([[0, 5, 7, 2, 1]]))  # <s> ... </s> <pad>
    >>> out.logits.shape
    torch.Size([1, 5, 99])
"""

from .config import RobertaConfig
from .heads import (
    RobertaForMaskedLM,
    RobertaForMultipleChoice,
    RobertaForQuestionAnswering,
    RobertaForSequenceClassification,
    RobertaForTokenClassification,
)
from .model import RobertaModel, position_ids_from_input_ids

__all__ = [
    "RobertaConfig",
    "RobertaModel",
    "RobertaForMaskedLM",
    "RobertaForSequenceClassification",
    "RobertaForMultipleChoice",
    "RobertaForTokenClassification",
    "RobertaForQuestionAnswering",
    "position_ids_from_input_ids",
]
