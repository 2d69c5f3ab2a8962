"""GPT-2 (Radford et al., 2019): config, base model, LM head and double heads.

Example:
    >>> import torch, ptfunc
    >>> from ptfunc.archs import gpt2
    >>> config = gpt2.GPT2Config(vocab_size=50, n_positions=16, n_ctx=16, n_embd=8,
    ...                          n_layer=2, n_head=2)
    >>> model = gpt2.GPT2LMHeadModel(config)
    >>> params = model.init(ptfunc.random.key(0))
    >>> out = model.apply(params, torch.tensor([[1, 2, 3]]))
    >>> out.logits.shape, out.presents[0].shape
    (torch.Size([1, 3, 50]), torch.Size([2, 1, 2, 3, 4]))
"""

from .config import GPT2Config
from .model import GPT2DoubleHeadsModel, GPT2LMHeadModel, GPT2Model

__all__ = ["GPT2Config", "GPT2Model", "GPT2LMHeadModel", "GPT2DoubleHeadsModel"]
