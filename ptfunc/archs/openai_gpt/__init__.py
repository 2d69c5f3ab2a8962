"""OpenAI GPT (Radford et al., 2018): config, base model, LM head and double heads.

Example:
    >>> import torch, ptfunc
    >>> from ptfunc.archs import openai_gpt
    >>> config = openai_gpt.OpenAIGPTConfig(vocab_size=50, n_positions=16, n_ctx=16, n_embd=8,
    ...                                     n_layer=2, n_head=2)
    >>> model = openai_gpt.OpenAIGPTLMHeadModel(config)
    >>> params = model.init(ptfunc.random.key(0))
    >>> model.apply(params, torch.tensor([[1, 2, 3]])).logits.shape
    torch.Size([1, 3, 50])
"""

from .config import OpenAIGPTConfig
from .model import OpenAIGPTDoubleHeadsModel, OpenAIGPTLMHeadModel, OpenAIGPTModel

__all__ = ["OpenAIGPTConfig", "OpenAIGPTModel", "OpenAIGPTLMHeadModel", "OpenAIGPTDoubleHeadsModel"]
