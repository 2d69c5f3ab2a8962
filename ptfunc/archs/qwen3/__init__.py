"""Qwen3 (Qwen team, 2025), dense models: Qwen2's layout with RMSNorm on each query and
key head (QK-norm) and its own ``head_dim``.

Example:
    >>> import torch, ptfunc
    >>> from ptfunc.archs import qwen3
    >>> config = qwen3.Qwen3Config(vocab_size=50, hidden_size=16, intermediate_size=32,
    ...                          num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
    ...                          head_dim=8)
    >>> model = qwen3.Qwen3ForCausalLM(config)
    >>> params = model.init(ptfunc.random.key(0))
    >>> out = model.apply(params, torch.tensor([[1, 2, 3]]))
    >>> out.logits.shape, out.presents[0].shape
    (torch.Size([1, 3, 50]), torch.Size([2, 1, 2, 3, 8]))
"""

from .config import Qwen3Config
from .model import Qwen3ForCausalLM, Qwen3ForSequenceClassification, Qwen3Model

__all__ = ["Qwen3Config", "Qwen3Model", "Qwen3ForCausalLM", "Qwen3ForSequenceClassification"]
