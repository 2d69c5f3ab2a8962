"""Head pruning and masking for OpenAI GPT: the same ``h[i].attn`` (``c_attn``,
``c_proj``) layout as GPT-2, so the functions are GPT-2's (:mod:`ptfunc.archs.gpt2.prune`)."""

from __future__ import annotations

from ..gpt2.prune import ParamTransforms, mask_heads, prune_heads, prune_init

__all__ = ["prune_heads", "mask_heads", "prune_init", "ParamTransforms"]
