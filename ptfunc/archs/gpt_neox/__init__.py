"""GPT-NeoX (Black et al., 2022) and Pythia (Biderman et al., 2023): partial rotary positions,
fused per-head q/k/v, parallel residuals.

Example:
    >>> import torch, ptfunc
    >>> from ptfunc.archs import gpt_neox
    >>> config = gpt_neox.GPTNeoXConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2,
    ...                                 num_attention_heads=4, intermediate_size=32)
    >>> model = gpt_neox.GPTNeoXForCausalLM(config)
    >>> params = model.init(ptfunc.random.key(0))
    >>> out = model.apply(params, torch.tensor([[1, 2, 3]]))
    >>> out.logits.shape, out.presents[0].shape
    (torch.Size([1, 3, 50]), torch.Size([2, 1, 4, 3, 8]))
"""

from .config import GPTNeoXConfig
from .model import GPTNeoXForCausalLM, GPTNeoXForSequenceClassification, GPTNeoXModel

__all__ = [
    "GPTNeoXConfig",
    "GPTNeoXModel",
    "GPTNeoXForCausalLM",
    "GPTNeoXForSequenceClassification",
]
