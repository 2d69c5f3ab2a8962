"""Tiny configs of every architecture for tests that need a small random model of each.

``tiny_config(arch, vocab, **overrides)`` returns the config; the test picks the model class
(base or head). Shared by the CLI, generation and feature-extraction tests.
"""

from __future__ import annotations

from typing import Any

from ptfunc.archs import gpt2, openai_gpt, transfo_xl, xlm, xlnet

_CONFIGS: dict[str, tuple[Any, dict[str, Any]]] = {
    "gpt2": (gpt2.GPT2Config, dict(n_embd=16, n_layer=2, n_head=2, n_positions=64)),
    "openai-gpt": (
        openai_gpt.OpenAIGPTConfig,
        dict(n_embd=16, n_layer=2, n_head=2, n_positions=64),
    ),
    "transfo-xl": (
        transfo_xl.TransfoXLConfig,
        dict(
            cutoffs=[500, 1000],
            d_model=16,
            d_embed=16,
            n_head=2,
            d_head=8,
            d_inner=32,
            n_layer=2,
            mem_len=8,
            tgt_len=4,
            div_val=2,
        ),  # fmt: skip
    ),
    "xlnet": (xlnet.XLNetConfig, dict(d_model=16, n_layer=2, n_head=2, d_inner=32)),
    "xlm": (
        xlm.XLMConfig,
        dict(emb_dim=16, n_layers=2, n_heads=2, max_position_embeddings=64, n_langs=1),
    ),
}

MODEL_CLASSES = {
    # arch: (base model, language-model head)
    "gpt2": (gpt2.GPT2Model, gpt2.GPT2LMHeadModel),
    "openai-gpt": (openai_gpt.OpenAIGPTModel, openai_gpt.OpenAIGPTLMHeadModel),
    "transfo-xl": (transfo_xl.TransfoXLModel, transfo_xl.TransfoXLLMHeadModel),
    "xlnet": (xlnet.XLNetModel, xlnet.XLNetLMHeadModel),
    "xlm": (xlm.XLMModel, xlm.XLMWithLMHeadModel),
}


def tiny_config(arch: str, vocab: int, **overrides: Any) -> Any:
    """A 2-layer, width-16 config of ``arch`` with ``vocab`` tokens (``overrides`` win)."""
    cls, fields = _CONFIGS[arch]
    return cls(vocab_size=vocab, **{**fields, **overrides})


def tiny_lm(arch: str, vocab: int, **overrides: Any) -> Any:
    """The language-model head of ``arch`` for generation: XLNet unidirectional, XLM causal."""
    causal = {"xlnet": {"attn_type": "uni"}, "xlm": {"causal": True}}.get(arch, {})
    return MODEL_CLASSES[arch][1](tiny_config(arch, vocab, **{**causal, **overrides}))
