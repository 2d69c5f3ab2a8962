"""Llama (Touvron et al., 2023; Llama 2 and 3.x): RMSNorm, rotary positions (every
scaling, Llama 3's ``rope_type: llama3`` included), grouped-query attention, SwiGLU MLP.

Example:
    >>> import torch, ptfunc
    >>> from ptfunc.archs import llama
    >>> config = llama.LlamaConfig(vocab_size=50, hidden_size=16, intermediate_size=32,
    ...                          num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
    >>> model = llama.LlamaForCausalLM(config)
    >>> params = model.init(ptfunc.random.key(0))
    >>> out = model.apply(params, torch.tensor([[1, 2, 3]]))
    >>> out.logits.shape, out.presents[0].shape
    (torch.Size([1, 3, 50]), torch.Size([2, 1, 2, 3, 4]))
"""

from .config import LlamaConfig
from .model import LlamaForCausalLM, LlamaForSequenceClassification, LlamaModel

__all__ = ["LlamaConfig", "LlamaModel", "LlamaForCausalLM", "LlamaForSequenceClassification"]
