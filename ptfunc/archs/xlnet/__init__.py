"""XLNet (Yang et al., 2019): config, base model and the three heads of pytorch-transformers 1.0.

Example:
    >>> import torch, ptfunc
    >>> from ptfunc.archs import xlnet
    >>> config = xlnet.XLNetConfig(vocab_size=99, d_model=16, n_layer=2, n_head=2, d_inner=24,
    ...                            mem_len=4)
    >>> model = xlnet.XLNetLMHeadModel(config)
    >>> params = model.init(ptfunc.random.key(0))
    >>> out = model.apply(params, torch.tensor([[2, 5, 7]]))
    >>> out.logits.shape, len(out.mems), out.mems[0].shape  # mems: (mem_len, batch, d_model)
    (torch.Size([1, 3, 99]), 2, torch.Size([3, 1, 16]))
    >>> out = model.apply(params, torch.tensor([[8, 9]]), mems=out.mems)
    >>> out.mems[0].shape
    torch.Size([4, 1, 16])
"""

from .config import XLNetConfig
from .heads import (
    XLNetForQuestionAnswering,
    XLNetForQuestionAnsweringLossOutput,
    XLNetForQuestionAnsweringOutput,
    XLNetForSequenceClassification,
    XLNetForSequenceClassificationOutput,
    XLNetLMHeadModel,
    XLNetLMHeadModelOutput,
)
from .model import XLNetModel, XLNetModelOutput

__all__ = [
    "XLNetConfig",
    "XLNetModel",
    "XLNetLMHeadModel",
    "XLNetForSequenceClassification",
    "XLNetForQuestionAnswering",
    "XLNetModelOutput",
    "XLNetLMHeadModelOutput",
    "XLNetForSequenceClassificationOutput",
    "XLNetForQuestionAnsweringOutput",
    "XLNetForQuestionAnsweringLossOutput",
]
