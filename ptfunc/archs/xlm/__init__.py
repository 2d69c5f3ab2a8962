"""XLM (Lample & Conneau, 2019): config, base model and the three heads of pytorch-transformers 1.0.

Example:
    >>> import torch, ptfunc
    >>> from ptfunc.archs import xlm
    >>> config = xlm.XLMConfig(vocab_size=99, emb_dim=16, n_layers=2, n_heads=2, causal=True)
    >>> model = xlm.XLMWithLMHeadModel(config)
    >>> params = model.init(ptfunc.random.key(0))
    >>> out = model.apply(params, torch.tensor([[5, 7, 9]]), use_cache=True)
    >>> out.logits.shape, len(out.cache), out.cache[0].shape  # (2, b, heads, length, head_dim)
    (torch.Size([1, 3, 99]), 2, torch.Size([2, 1, 2, 3, 8]))
    >>> out = model.apply(params, torch.tensor([[11]]), cache=out.cache)  # new tokens only
    >>> out.cache[0].shape
    torch.Size([2, 1, 2, 4, 8])
"""

from .config import XLMConfig
from .heads import (
    XLMForQuestionAnswering,
    XLMForQuestionAnsweringLossOutput,
    XLMForQuestionAnsweringOutput,
    XLMForSequenceClassification,
    XLMForSequenceClassificationOutput,
    XLMWithLMHeadModel,
    XLMWithLMHeadModelOutput,
)
from .model import XLMModel, XLMModelOutput

__all__ = [
    "XLMConfig",
    "XLMModel",
    "XLMWithLMHeadModel",
    "XLMForSequenceClassification",
    "XLMForQuestionAnswering",
    "XLMModelOutput",
    "XLMWithLMHeadModelOutput",
    "XLMForSequenceClassificationOutput",
    "XLMForQuestionAnsweringOutput",
    "XLMForQuestionAnsweringLossOutput",
]
