"""Transformer-XL (Dai et al., 2019): config, base model and adaptive-softmax LM head.

Memories are time-major ``(mem_len, batch, d_model)`` per layer, as in
pytorch-transformers; ``mems=None`` attends to 1.0's ``mem_len`` zero memories
(``model.init_mems(batch)``), ``mems=()`` to none (the paper's first segment).
``labels`` are 1.0's: not shifted, per-token ``losses`` first in the output. See
:mod:`ptfunc.archs.transfo_xl.model` for every decision on the seed's quirks.

Example:
    >>> import torch, ptfunc
    >>> from ptfunc.archs import transfo_xl
    >>> config = transfo_xl.TransfoXLConfig(vocab_size=20, cutoffs=[10], d_model=8, d_embed=8,
    ...     n_head=2, d_head=4, d_inner=16, div_val=1, n_layer=2, mem_len=4)
    >>> model = transfo_xl.TransfoXLLMHeadModel(config)
    >>> params = model.init(ptfunc.random.key(0))
    >>> first = model.apply(params, torch.tensor([[1, 2, 3]]), labels=torch.tensor([[2, 3, 4]]))
    >>> first.losses.shape, first.loss.shape             # per token; their mean, by name
    (torch.Size([1, 3]), torch.Size([]))
    >>> second = model.apply(params, torch.tensor([[4, 5, 6]]), mems=first.mems)
    >>> second.prediction_scores.shape, second.mems[0].shape
    (torch.Size([1, 3, 20]), torch.Size([4, 1, 8]))
"""

from .config import TransfoXLConfig
from .model import (
    TransfoXLLMHeadModel,
    TransfoXLLMHeadModelOutput,
    TransfoXLLMHeadModelOutputWithLoss,
    TransfoXLModel,
    TransfoXLModelOutput,
)

__all__ = [
    "TransfoXLConfig",
    "TransfoXLModel",
    "TransfoXLLMHeadModel",
    "TransfoXLModelOutput",
    "TransfoXLLMHeadModelOutput",
    "TransfoXLLMHeadModelOutputWithLoss",
]
