"""Qwen2 / Qwen2.5 (Qwen team, 2024): Llama's blocks with q/k/v biases and optional
sliding windows in the upper layers.

Example:
    >>> import torch, ptfunc
    >>> from ptfunc.archs import qwen2
    >>> config = qwen2.Qwen2Config(vocab_size=50, hidden_size=16, intermediate_size=32,
    ...                          num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
    >>> model = qwen2.Qwen2ForCausalLM(config)
    >>> params = model.init(ptfunc.random.key(0))
    >>> out = model.apply(params, torch.tensor([[1, 2, 3]]))
    >>> out.logits.shape, out.presents[0].shape
    (torch.Size([1, 3, 50]), torch.Size([2, 1, 2, 3, 4]))
"""

from .config import Qwen2Config
from .model import Qwen2ForCausalLM, Qwen2ForSequenceClassification, Qwen2Model

__all__ = ["Qwen2Config", "Qwen2Model", "Qwen2ForCausalLM", "Qwen2ForSequenceClassification"]
