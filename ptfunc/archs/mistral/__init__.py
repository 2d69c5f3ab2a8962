"""Mistral (Jiang et al., 2023): Llama's blocks with sliding-window attention.

Example:
    >>> import torch, ptfunc
    >>> from ptfunc.archs import mistral
    >>> config = mistral.MistralConfig(vocab_size=50, hidden_size=16, intermediate_size=32,
    ...                          num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
    ...                          sliding_window=4)
    >>> model = mistral.MistralForCausalLM(config)
    >>> params = model.init(ptfunc.random.key(0))
    >>> out = model.apply(params, torch.tensor([[1, 2, 3]]))
    >>> out.logits.shape, out.presents[0].shape
    (torch.Size([1, 3, 50]), torch.Size([2, 1, 2, 3, 4]))
"""

from .config import MistralConfig
from .model import MistralForCausalLM, MistralForSequenceClassification, MistralModel

__all__ = [
    "MistralConfig",
    "MistralModel",
    "MistralForCausalLM",
    "MistralForSequenceClassification",
]
