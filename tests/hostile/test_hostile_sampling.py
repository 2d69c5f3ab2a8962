"""Sampling arguments that would give degenerate output raise a ValueError naming the
argument and its allowed range (issue 17, point 11; ``ptfunc.generation``).

Reference: ptfunc's own contract (the ``ptfunc.generation`` docstrings); greedy and
``temperature=0`` outputs are compared exactly (token ids).
"""

from __future__ import annotations

import pytest
import torch

import ptfunc
from ptfunc.archs import gpt2
from ptfunc.generation import filter_logits

MODEL = gpt2.GPT2LMHeadModel(
    gpt2.GPT2Config(vocab_size=40, n_positions=32, n_ctx=32, n_embd=8, n_layer=1, n_head=2)
)
PARAMS = MODEL.init(ptfunc.random.key(0))
PROMPTS = torch.tensor([[1, 2, 3], [4, 5, 6]])
KEY = ptfunc.random.key(1)


def generate(**options):
    options = {"max_new_tokens": 3, **options}
    return ptfunc.generate(MODEL, PARAMS, options.pop("input_ids", PROMPTS), **options)


@pytest.mark.parametrize(
    "options, pattern",
    [
        ({"top_p": 0.0}, r"top_p must lie in \(0, 1\] \(1 turns it off\), got 0.0"),
        ({"top_p": -0.5}, r"top_p must lie in \(0, 1\]"),
        ({"top_p": 1.5}, r"top_p must lie in \(0, 1\]"),
        ({"top_p": float("nan")}, r"top_p must lie in \(0, 1\] .*got nan"),
        ({"top_k": -1}, r"top_k must be an int >= 0 \(0 turns it off\), got -1"),
        ({"top_k": 2.5}, r"top_k must be an int >= 0"),
        ({"temperature": -1.0}, r"temperature must be a finite number >= 0 \(0 = greedy\)"),
        ({"temperature": float("nan")}, r"temperature must be a finite number >= 0.*nan"),
        ({"temperature": float("inf")}, r"temperature must be a finite number >= 0.*inf"),
        ({"repetition_penalty": 0.0}, r"repetition_penalty must be a finite number > 0"),
        ({"repetition_penalty": float("nan")}, r"repetition_penalty must be a finite number"),
        ({"max_new_tokens": -1}, r"max_new_tokens must be an int >= 0, got -1"),
        ({"max_new_tokens": 2.0}, r"max_new_tokens must be an int >= 0"),
        ({"max_new_tokens": None}, r"pass max_new_tokens .* or max_length"),
        ({"max_length": 2}, r"pass either max_new_tokens or max_length, not both"),
        (
            {"max_new_tokens": None, "max_length": 2},
            r"max_length must be an int >= the prompt length \(3\), got 2",
        ),
        ({"num_return_sequences": 0}, r"num_return_sequences must be an int >= 1, got 0"),
        ({"num_return_sequences": 2}, r"num_return_sequences=2 needs sampling"),
        ({"eos_token_id": -1}, r"eos_token_id must be None or an int >= 0"),
        ({"input_ids": torch.zeros(2, 0, dtype=torch.long)}, r"prompt of at least one token"),
        ({"input_ids": PROMPTS.float()}, r"input_ids must be int64 or int32 token ids"),
        ({"input_ids": PROMPTS[0]}, r"input_ids must have shape \(batch, seq\)"),
        ({"attention_mask": torch.ones(2, 4)}, r"attention_mask must have the shape of input_ids"),
    ],
)
def test_bad_arguments_are_refused_before_any_model_call(options, pattern, monkeypatch):
    def no_call(*args, **kwargs):
        raise AssertionError("the model ran")

    monkeypatch.setattr(MODEL, "apply", no_call)
    with pytest.raises(ValueError, match=pattern):
        generate(key=KEY, **options)


@pytest.mark.parametrize("top_k, top_p", [(-1, 1.0), (0, 0.0), (0, 1.01), (True, 1.0)])
def test_filter_logits_refuses_degenerate_filters(top_k, top_p):
    with pytest.raises(ValueError, match="top_k must be|top_p must lie"):
        filter_logits(torch.zeros(1, 5), top_k=top_k, top_p=top_p)


def test_temperature_zero_is_greedy_and_needs_no_key():
    greedy = generate(max_new_tokens=6)
    assert torch.equal(generate(max_new_tokens=6, temperature=0.0), greedy)
    assert torch.equal(generate(max_new_tokens=6, temperature=0, do_sample=True), greedy)
    assert torch.equal(generate(max_new_tokens=6, temperature=0, top_k=5, top_p=0.5), greedy)


def test_max_length_counts_the_prompt():
    assert torch.equal(generate(max_new_tokens=None, max_length=7), generate(max_new_tokens=4))
    assert torch.equal(generate(max_new_tokens=None, max_length=3), PROMPTS)


def test_num_return_sequences_samples_per_prompt():
    out = generate(max_new_tokens=5, do_sample=True, key=KEY, num_return_sequences=3)
    assert out.shape == (6, 8)
    assert torch.equal(out[:3, :3], PROMPTS[:1].expand(3, 3))
    assert torch.equal(out[3:, :3], PROMPTS[1:].expand(3, 3))
    mask = torch.tensor([[0, 1, 1], [1, 1, 1]])
    masked = generate(
        max_new_tokens=2, do_sample=True, key=KEY, num_return_sequences=2, attention_mask=mask
    )
    assert masked.shape == (4, 5)


def test_valid_sampling_still_runs():
    out = generate(max_new_tokens=4, key=KEY, temperature=0.7, top_k=5, top_p=0.9)
    assert out.shape == (2, 7) and int(out.max()) < 40 and int(out.min()) >= 0
