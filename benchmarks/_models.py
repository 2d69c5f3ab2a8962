"""Model pairs for the benchmarks: one ``transformers`` module and ptfunc on its weights.

Every builder returns a :class:`Pair`: the reference module (a head model that takes
``labels``), the ptfunc model of the same class, ptfunc params loaded from the
reference's ``state_dict()`` (strict: a missing or unexpected name is an error, since
the comparison would not be fair), the base-model halves of both (forward rows time the
encoder/decoder without its head), and the sizes the analytic FLOP count needs.

Sizes (``quick=False``) are the published base models: BERT-base (uncased vocab),
GPT-2-small (124M), XLNet-base-cased, and an XLM of BERT-base-like width in the layout of
``xlm-mlm-en-2048`` (emb 1024, 12 layers, 8 heads, vocab 30145: the real 2048-wide model
is 4x the FLOPs of the others, too slow for a 2-core CPU run). ``quick=True`` gives tiny
configs of the same architectures (a smoke test).
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # run from a checkout, uninstalled
import ptfunc  # noqa: E402
from ptfunc.archs import bert, gpt2, xlm, xlnet  # noqa: E402

# Real vocabularies and corpora (tests/conftest.py's folder; PTFUNC_FIXTURES overrides).
FIXTURES = Path(
    os.environ.get("PTFUNC_FIXTURES") or Path(__file__).resolve().parents[2] / "shared" / "fixtures"
)

BERT_BASE = dict(
    vocab_size=30522,
    hidden_size=768,
    num_hidden_layers=12,
    num_attention_heads=12,
    intermediate_size=3072,
)
BERT_TINY = dict(
    vocab_size=1000,
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=128,
)
GPT2_SMALL: dict[str, Any] = {}  # the config defaults are GPT-2-small
GPT2_TINY = dict(n_layer=2, n_embd=64, n_head=4)
XLNET_BASE = dict(d_model=768, n_layer=12, n_head=12, d_inner=3072, vocab_size=32000)
XLNET_TINY = dict(d_model=64, n_layer=2, n_head=4, d_inner=128, vocab_size=1000)
XLM_BASE = dict(emb_dim=1024, n_layers=12, n_heads=8, vocab_size=30145)
XLM_TINY = dict(emb_dim=64, n_layers=2, n_heads=4, vocab_size=1000)


@dataclass
class Pair:
    """A ptfunc model and its ``transformers`` peer on the same weights.

    ``apply_*`` / ``ref_*`` are callables taking ``(ids, mask)`` (mask may be None);
    ``loss_*`` take ``(params_or_none, ids, mask, labels)`` and return the scalar loss.
    """

    name: str
    model: Any  # ptfunc head model (takes labels)
    params: Any
    ref: torch.nn.Module  # transformers head model, eval mode
    base_model: Any
    base_key: str  # params[base_key] are the base model's params
    ref_base: torch.nn.Module
    vocab: int
    d: int
    layers: int
    ffn: int
    causal: bool
    padded: bool  # inputs carry right padding and an attention mask
    lm_head: bool  # the loss goes through a vocab-sized projection
    rel_attn: bool = False  # XLNet: relative-position terms in every layer
    base_kwargs: dict | None = None  # extra keywords both sides' calls take

    @property
    def base_params(self) -> Any:
        return self.params[self.base_key]

    def to(self, device: str, dtype: torch.dtype) -> Pair:
        """Both sides moved to ``device`` with floating weights cast to ``dtype`` (in place)."""
        self.ref.to(device=device, dtype=dtype)

        def move(t: torch.Tensor) -> torch.Tensor:
            return t.to(device, dtype) if t.is_floating_point() else t.to(device)

        self.params = ptfunc.tree.map(move, self.params)
        return self

    def grads_diff(self, grads: Any) -> tuple[float, float]:
        """(max abs diff, max abs value) of ptfunc ``grads`` against the reference's ``.grad``."""
        ours = ptfunc.io.to_torch_state_dict(self.model, grads, include_tied=False)
        return named_grads_diff(ours, self.ref)

    def inputs(self, batch: int, seq: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
        """ids, attention mask (or None) and labels for ``batch x seq``."""
        if self.padded:
            ids, mask, labels = padded_inputs(self.vocab, batch, seq, gen)
            return dict(ids=ids, mask=mask, labels=labels)
        ids = torch.randint(1, self.vocab, (batch, seq), generator=gen)
        labels = ids if self.lm_head else torch.randint(0, 2, (batch,), generator=gen)
        return dict(ids=ids, mask=None, labels=labels)

    def _kw(self, mask: torch.Tensor | None) -> dict:
        kw = dict(self.base_kwargs or {})
        if mask is not None:
            kw["attention_mask"] = mask
        return kw

    def forward_ours(self, ids: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return self.base_model.apply(self.base_params, ids, **self._kw(mask))[0]

    def forward_ref(self, ids: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return self.ref_base(ids, **self._kw(mask))[0]

    def loss_ours(self, params: Any, ids, mask, labels) -> torch.Tensor:
        return self.model.apply(params, ids, labels=labels, **self._kw(mask)).loss

    def loss_ref(self, ids, mask, labels) -> torch.Tensor:
        return self.ref(ids, labels=labels, **self._kw(mask)).loss

    def matmul_params_per_layer(self) -> int:
        """Weights multiplied per token per layer (q, k, v, o and the two FFN matrices)."""
        return 4 * self.d * self.d + 2 * self.d * self.ffn

    def forward_flops(self, batch: int, seq: int) -> float:
        """Analytic FLOPs of the base model's forward (matmuls only; see docs/performance.md)."""
        tokens = batch * seq
        per_token = 2 * self.matmul_params_per_layer() + 4 * seq * self.d  # QK^T and AV
        if self.rel_attn:  # XLNet: 2s relative positions projected (per batch row) and scored
            per_token += 4 * self.d * self.d + 4 * seq * self.d
        return float(tokens * self.layers * per_token)

    def loss_flops(self, batch: int, seq: int) -> float:
        """Forward of the head model: the base plus the vocab projection for LM heads."""
        head = 2 * self.vocab * self.d * batch * seq if self.lm_head else 0
        return self.forward_flops(batch, seq) + head

    def gemm_shapes(self, tokens: int) -> list[tuple[int, int, int]]:
        """(m, k, n) of one layer's weight matmuls at ``tokens`` rows."""
        d, f = self.d, self.ffn
        return [(tokens, d, 3 * d), (tokens, d, d), (tokens, d, f), (tokens, f, d)]


def named_grads_diff(ours: dict[str, torch.Tensor], peer: torch.nn.Module) -> tuple[float, float]:
    """(max abs diff over all gradients, max abs gradient) of ptfunc gradients by checkpoint
    name against ``peer``'s ``.grad``; a name on one side only is an error."""
    named = dict(peer.named_parameters())
    if set(named) != set(ours):
        raise SystemExit(
            f"gradient names differ: only ptfunc {sorted(set(ours) - set(named))[:5]}, "
            f"only transformers {sorted(set(named) - set(ours))[:5]}"
        )
    worst = scale = 0.0
    for name, g in ours.items():
        theirs = named[name].grad  # None where the loss does not reach (XLNet's mask_emb)
        theirs = torch.zeros_like(g) if theirs is None else theirs
        worst = max(worst, max_diff(g, theirs))
        scale = max(scale, theirs.abs().max().item())
    return worst, scale


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.detach().double() - b.detach().double()).abs().max().item()


def padded_inputs(
    vocab: int, batch: int, seq: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random ids, a right-padded attention mask (row 0 full, others shorter) and labels."""
    lengths = torch.randint(seq // 2, seq + 1, (batch,), generator=gen)
    lengths[0] = seq
    mask = (torch.arange(seq)[None, :] < lengths[:, None]).long()
    ids = torch.randint(1, vocab, (batch, seq), generator=gen) * mask  # 0 = [PAD]
    labels = torch.randint(0, 2, (batch,), generator=gen)
    return ids, mask, labels


def load_params(model: Any, reference: torch.nn.Module) -> Any:
    """ptfunc params from a copy of ``reference.state_dict()``; any name mismatch is an error."""
    state = {k: v.detach().clone() for k, v in reference.state_dict().items()}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a missing or unexpected name would make it unfair
        return ptfunc.io.from_torch_state_dict(model, state, strict=True)


def quiet_transformers() -> Any:
    import transformers

    transformers.logging.set_verbosity_error()
    return transformers


def bert_pair(quick: bool, attn: str = "sdpa", seed: int = 0) -> Pair:
    """BertForSequenceClassification (2 labels) and its BertModel, padded inputs."""
    transformers = quiet_transformers()
    shape = BERT_TINY if quick else BERT_BASE
    torch.manual_seed(seed)
    hf_config = transformers.BertConfig(**shape, num_labels=2, attn_implementation=attn)
    ref = transformers.BertForSequenceClassification(hf_config).eval()
    model = bert.BertForSequenceClassification(bert.BertConfig(**shape, num_labels=2))
    params = load_params(model, ref)
    return Pair(
        "BERT-tiny" if quick else "BERT-base", model, params, ref,
        bert.BertModel(model.config), "bert", ref.bert,
        vocab=shape["vocab_size"], d=shape["hidden_size"], layers=shape["num_hidden_layers"],
        ffn=shape["intermediate_size"], causal=False, padded=True, lm_head=False,
    )  # fmt: skip


def gpt2_pair(quick: bool, seed: int = 0) -> Pair:
    """GPT2LMHeadModel (tied head) and its GPT2Model, unpadded inputs, LM labels."""
    transformers = quiet_transformers()
    sizes = GPT2_TINY if quick else GPT2_SMALL
    torch.manual_seed(seed)
    ref = transformers.GPT2LMHeadModel(
        transformers.GPT2Config(**sizes, attn_implementation="sdpa")
    ).eval()
    model = gpt2.GPT2LMHeadModel(gpt2.GPT2Config(**sizes))
    params = load_params(model, ref)
    c = model.config
    return Pair(
        "GPT-2-tiny" if quick else "GPT-2-small", model, params, ref,
        gpt2.GPT2Model(c), "transformer", ref.transformer,
        vocab=c.vocab_size, d=c.n_embd, layers=c.n_layer, ffn=4 * c.n_embd,
        causal=True, padded=False, lm_head=True,
    )  # fmt: skip


def xlnet_pair(quick: bool, seed: int = 0) -> Pair:
    """XLNetLMHeadModel (``gelu_new``, no memories) and its XLNetModel, LM labels."""
    transformers = quiet_transformers()
    sizes = XLNET_TINY if quick else XLNET_BASE
    cfg = dict(**sizes, ff_activation="gelu_new", mem_len=None)
    torch.manual_seed(seed)
    ref = transformers.XLNetLMHeadModel(transformers.XLNetConfig(**cfg)).eval()
    model = xlnet.XLNetLMHeadModel(xlnet.XLNetConfig(**cfg))
    params = load_params(model, ref)
    return Pair(
        "XLNet-tiny" if quick else "XLNet-base", model, params, ref,
        xlnet.XLNetModel(model.config), "transformer", ref.transformer,
        vocab=sizes["vocab_size"], d=sizes["d_model"], layers=sizes["n_layer"],
        ffn=sizes["d_inner"], causal=False, padded=False, lm_head=True, rel_attn=True,
        base_kwargs=dict(use_mems=False),
    )  # fmt: skip


def xlm_pair(quick: bool, seed: int = 0) -> Pair:
    """XLMWithLMHeadModel (MLM layout, one language) and its XLMModel, LM labels."""
    transformers = quiet_transformers()
    sizes = XLM_TINY if quick else XLM_BASE
    torch.manual_seed(seed)
    ref = transformers.XLMWithLMHeadModel(transformers.XLMConfig(**sizes)).eval()
    model = xlm.XLMWithLMHeadModel(xlm.XLMConfig(**sizes))
    params = load_params(model, ref)
    d = sizes["emb_dim"]
    return Pair(
        "XLM-tiny" if quick else "XLM-1024", model, params, ref,
        xlm.XLMModel(model.config), "transformer", ref.transformer,
        vocab=sizes["vocab_size"], d=d, layers=sizes["n_layers"], ffn=4 * d,
        causal=False, padded=False, lm_head=True,
    )  # fmt: skip


BUILDERS: dict[str, Callable[..., Pair]] = {
    "bert": bert_pair,
    "gpt2": gpt2_pair,
    "xlnet": xlnet_pair,
    "xlm": xlm_pair,
}


def greedy_generate_fns(
    pair: Pair, prompt: torch.Tensor, new: int, compile: bool | str = False
) -> tuple[Callable[[], torch.Tensor], Callable[[], torch.Tensor]]:
    """(ptfunc, transformers) greedy generation of exactly ``new`` tokens with the KV cache;
    ``compile`` is ``ptfunc.generate``'s (its static-cache compiled decoding)."""

    def ours() -> torch.Tensor:
        return ptfunc.generate(pair.model, pair.params, prompt, max_new_tokens=new, compile=compile)

    def ref() -> torch.Tensor:
        return pair.ref.generate(
            prompt,
            attention_mask=torch.ones_like(prompt),
            max_new_tokens=new,
            min_new_tokens=new,
            do_sample=False,
            pad_token_id=0,
        )

    return ours, ref


def pytorch_transformers() -> Any:
    """pytorch-transformers 1.0 (the slow, pure-Python reference tokenizers), quietly."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pytorch_transformers as pt
    logging.getLogger("pytorch_transformers").setLevel(logging.ERROR)
    return pt
