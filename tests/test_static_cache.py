"""GPT-2's static KV cache and ``generate(..., compile=True)``.

Oracles: the growing cache (the seed's ``past``), itself checked against transformers in
test_gpt2_parity.py, and the eager ``generate``. A static cache of any length must give the
logits of the growing one, with left padding too; compiled greedy decoding must give the
eager tokens and must not recompile for a second prompt of the same shape.
"""

from __future__ import annotations

import pytest
import torch

import ptfunc
from ptfunc.archs import gpt2, xlnet

MODEL = gpt2.GPT2LMHeadModel(
    gpt2.GPT2Config(vocab_size=50, n_embd=32, n_layer=2, n_head=4, n_positions=32)
)
PARAMS = MODEL.init(ptfunc.random.key(0))
IDS = torch.randint(1, 50, (3, 6), generator=torch.Generator().manual_seed(0))
MASK = torch.tensor([[1] * 6, [0, 0] + [1] * 4, [0] + [1] * 5])  # left-padded rows


def _growing(ids, mask, steps):
    """Logits of each step's token with the seed's growing cache."""
    out = MODEL.apply(PARAMS, ids, attention_mask=mask, position_ids=_positions(mask))
    past, logits = out.presents, []
    for token in steps.T:
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        out = MODEL.apply(
            PARAMS, token[:, None], past=past, attention_mask=mask,
            position_ids=_positions(mask)[:, -1:],
        )  # fmt: skip
        past = out.presents
        logits.append(out.logits[:, -1])
    return torch.stack(logits, 1)


def _positions(mask):
    return (mask.cumsum(-1) - 1).clamp(min=0)


def test_static_cache_gives_the_growing_cache_logits_with_left_padding():
    steps = torch.randint(1, 50, (3, 4), generator=torch.Generator().manual_seed(1))
    want = _growing(IDS, MASK, steps)
    total = 16  # longer than needed: unwritten slots must stay invisible
    prefix = MODEL.apply(PARAMS, IDS, attention_mask=MASK, position_ids=_positions(MASK))
    cache = []
    for present in prefix.presents:
        buffer = torch.randn(*present.shape[:3], total, present.shape[-1])  # garbage slots
        buffer[..., :6, :] = present
        cache.append(buffer)
    cache, mask, got = tuple(cache), torch.zeros(3, total, dtype=torch.long), []
    mask[:, :6] = MASK
    for i, token in enumerate(steps.T):
        mask[:, 6 + i] = 1
        out = MODEL.apply(
            PARAMS, token[:, None], past=cache, cache_position=torch.tensor([6 + i]),
            position_ids=mask.sum(-1, keepdim=True) - 1, attention_mask=mask,
        )  # fmt: skip
        cache = out.presents
        assert all(c.shape == (2, 3, 4, total, 8) for c in cache)
        got.append(out.logits[:, -1])
    torch.testing.assert_close(torch.stack(got, 1), want, rtol=1e-5, atol=1e-5)


def test_static_cache_prefill_equals_the_uncached_forward():
    cache = tuple(torch.zeros(2, 3, 4, 10, 8) for _ in range(2))
    mask = torch.zeros(3, 10, dtype=torch.long)
    mask[:, :6] = MASK
    out = MODEL.apply(
        PARAMS, IDS, past=cache, cache_position=torch.arange(6), attention_mask=mask,
        position_ids=_positions(MASK),
    )  # fmt: skip
    want = MODEL.apply(PARAMS, IDS, attention_mask=MASK, position_ids=_positions(MASK))
    keep = MASK.bool()  # padded query rows attend to nothing real in either
    torch.testing.assert_close(out.logits[keep], want.logits[keep], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.presents[0][..., :6, :], want.presents[0])


def test_compiled_greedy_generation_equals_eager_and_does_not_recompile():
    torch._dynamo.reset()
    want = ptfunc.generate(MODEL, PARAMS, IDS, attention_mask=MASK, max_new_tokens=8)
    got = ptfunc.generate(MODEL, PARAMS, IDS, attention_mask=MASK, max_new_tokens=8, compile=True)
    assert torch.equal(got, want)
    other = torch.randint(1, 50, (3, 6), generator=torch.Generator().manual_seed(5))
    with torch.compiler.set_stance("fail_on_recompile"):
        again = ptfunc.generate(MODEL, PARAMS, other, max_new_tokens=8, compile=True)
    assert torch.equal(again, ptfunc.generate(MODEL, PARAMS, other, max_new_tokens=8))


def test_compiled_sampling_follows_the_key_like_eager():
    key = ptfunc.random.key(3)
    options = dict(max_new_tokens=5, do_sample=True, top_k=10, key=key)
    want = ptfunc.generate(MODEL, PARAMS, IDS, attention_mask=MASK, **options)
    got = ptfunc.generate(MODEL, PARAMS, IDS, attention_mask=MASK, compile=True, **options)
    assert torch.equal(got, want)


def test_static_cache_errors_name_what_was_expected():
    cache = tuple(torch.zeros(2, 3, 4, 10, 8) for _ in range(2))
    with pytest.raises(ValueError, match=r"\(batch, cache length\) = \(batch, 10\), got \(3, 6\)"):
        MODEL.apply(PARAMS, IDS, past=cache, cache_position=torch.arange(6), attention_mask=MASK)
    with pytest.raises(ValueError, match="cache_position needs past"):
        MODEL.apply(PARAMS, IDS, cache_position=torch.arange(6))
    long_cache = tuple(torch.zeros(2, 3, 4, 40, 8) for _ in range(2))
    with pytest.raises(ValueError, match="static cache length 40 exceeds n_positions \\(32\\)"):
        MODEL.apply(PARAMS, IDS, past=long_cache, cache_position=torch.arange(6))
    with pytest.raises(ValueError, match="exceeds the model's 32 positions"):
        ptfunc.generate(MODEL, PARAMS, IDS, max_new_tokens=30, compile=True)
    with pytest.raises(ValueError, match="needs use_cache=True"):
        ptfunc.generate(MODEL, PARAMS, IDS, max_new_tokens=3, compile=True, use_cache=False)
    other = xlnet.XLNetLMHeadModel(
        xlnet.XLNetConfig(vocab_size=50, d_model=16, n_layer=1, n_head=2, d_inner=32)
    )
    with pytest.raises(ValueError, match="XLNetLMHeadModel has none"):
        ptfunc.generate(other, None, IDS, max_new_tokens=3, compile=True)


def test_a_batch_of_one_decodes_with_a_single_compiled_graph():
    # a (1, 1) slice of the ids keeps their row stride, which changes every step: the step
    # must get a token tensor of its own with standard strides, or it recompiles per token
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    got = ptfunc.generate(MODEL, PARAMS, IDS[:1], max_new_tokens=6, compile=True)
    assert counters["stats"]["unique_graphs"] == 1
    assert torch.equal(got, ptfunc.generate(MODEL, PARAMS, IDS[:1], max_new_tokens=6))
