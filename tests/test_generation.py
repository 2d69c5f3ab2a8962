"""ptfunc.generate against transformers' ``generate`` on the same weights (greedy, with and
without left padding, repetition penalty, EOS), cache consistency and keyed sampling."""

from __future__ import annotations

import pytest
import torch

import ptfunc
from ptfunc import io
from ptfunc.archs import gpt2, openai_gpt

transformers = pytest.importorskip("transformers")

SMALL = dict(vocab_size=60, n_positions=64, n_embd=16, n_layer=2, n_head=4)
EOS = 59
PROMPTS = torch.randint(0, EOS, (2, 5), generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def pair():
    config = transformers.GPT2Config(**SMALL, bos_token_id=0, eos_token_id=EOS, pad_token_id=EOS)
    torch.manual_seed(0)
    reference = transformers.GPT2LMHeadModel(config).eval()
    model = gpt2.GPT2LMHeadModel(gpt2.GPT2Config(**SMALL))
    return reference, model, io.from_torch_state_dict(model, reference.state_dict())


def test_greedy_equals_transformers(pair):
    reference, model, params = pair
    want = reference.generate(
        PROMPTS, attention_mask=torch.ones_like(PROMPTS), max_new_tokens=12, do_sample=False
    )
    assert torch.equal(ptfunc.generate(model, params, PROMPTS, max_new_tokens=12), want)


def test_left_padded_batch_equals_transformers(pair):
    reference, model, params = pair
    ids = PROMPTS.clone()
    ids[0, :2] = EOS
    mask = torch.ones_like(ids)
    mask[0, :2] = 0
    want = reference.generate(ids, attention_mask=mask, max_new_tokens=12, do_sample=False)
    got = ptfunc.generate(model, params, ids, attention_mask=mask, max_new_tokens=12)
    assert torch.equal(got, want)


def test_repetition_penalty_and_eos_equal_transformers(pair):
    reference, model, params = pair
    want = reference.generate(
        PROMPTS,
        attention_mask=torch.ones_like(PROMPTS),
        max_new_tokens=12,
        do_sample=False,
        repetition_penalty=1.5,
    )
    got = ptfunc.generate(model, params, PROMPTS, max_new_tokens=12, repetition_penalty=1.5)
    assert torch.equal(got, want)
    # EOS: rows that emit it are padded with it afterwards
    first = int(ptfunc.generate(model, params, PROMPTS[:1], max_new_tokens=1)[0, -1])
    stopped = ptfunc.generate(model, params, PROMPTS[:1], max_new_tokens=6, eos_token_id=first)
    assert stopped.shape[1] == PROMPTS.shape[1] + 1 and int(stopped[0, -1]) == first


def test_cached_and_uncached_decoding_agree(pair):
    _, model, params = pair
    cached = ptfunc.generate(model, params, PROMPTS, max_new_tokens=10)
    uncached = ptfunc.generate(model, params, PROMPTS, max_new_tokens=10, use_cache=False)
    assert torch.equal(cached, uncached)


def test_sampling_is_reproducible_by_key(pair):
    _, model, params = pair
    a = ptfunc.generate(
        model,
        params,
        PROMPTS,
        max_new_tokens=10,
        key=ptfunc.random.key(1),
        temperature=0.9,
        top_k=20,
        top_p=0.95,
    )
    b = ptfunc.generate(
        model,
        params,
        PROMPTS,
        max_new_tokens=10,
        key=ptfunc.random.key(1),
        temperature=0.9,
        top_k=20,
        top_p=0.95,
    )
    c = ptfunc.generate(
        model,
        params,
        PROMPTS,
        max_new_tokens=10,
        key=ptfunc.random.key(2),
        temperature=0.9,
        top_k=20,
        top_p=0.95,
    )
    assert torch.equal(a, b) and not torch.equal(a, c)
    top1 = ptfunc.generate(
        model, params, PROMPTS, max_new_tokens=10, key=ptfunc.random.key(3), top_k=1
    )
    assert torch.equal(top1, ptfunc.generate(model, params, PROMPTS, max_new_tokens=10))
    with pytest.raises(ValueError, match="needs a random key"):
        ptfunc.generate(model, params, PROMPTS, max_new_tokens=2, top_k=5)


def test_filter_logits_top_k_and_nucleus():
    logits = torch.log(torch.tensor([[0.5, 0.2, 0.15, 0.1, 0.05]]))
    kept = torch.isfinite(ptfunc.generation.filter_logits(logits, top_p=0.8))
    assert kept.tolist() == [[True, True, True, False, False]]  # 0.5 + 0.2 < 0.8 <= + 0.15
    kept = torch.isfinite(ptfunc.generation.filter_logits(logits, top_k=2))
    assert kept.tolist() == [[True, True, False, False, False]]


def test_openai_gpt_without_cache_equals_transformers():
    config = transformers.OpenAIGPTConfig(**SMALL)
    torch.manual_seed(0)
    reference = transformers.OpenAIGPTLMHeadModel(config).eval()
    model = openai_gpt.OpenAIGPTLMHeadModel(openai_gpt.OpenAIGPTConfig(**SMALL))
    params = io.from_torch_state_dict(model, reference.state_dict())
    want = reference.generate(
        PROMPTS,
        attention_mask=torch.ones_like(PROMPTS),
        max_new_tokens=8,
        do_sample=False,
        pad_token_id=0,
    )
    assert torch.equal(ptfunc.generate(model, params, PROMPTS, max_new_tokens=8), want)
