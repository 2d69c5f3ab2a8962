"""``ptfunc generate`` on a decoder LLM directory with a ``tokenizer.json`` (Llama, Qwen3,
GPT-NeoX). Reference: ``transformers`` 5 greedy ``generate`` on the same directory, decoded
with its own fast tokenizer. The tokenizer is a tiny byte-level BPE trained in the test."""

from __future__ import annotations

import warnings

import pytest
import torch

import ptfunc
from ptfunc import cli
from ptfunc.archs import gpt_neox, llama, qwen3

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

TEXT = ["the quick brown fox jumps over the lazy dog", "a stitch in time saves nine"] * 20
SHAPE = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)


def _tokenizer(directory):
    tok = tokenizers.Tokenizer(tokenizers.models.BPE())
    tok.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>"],
        initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet(),
    )  # fmt: skip
    tok.train_from_iterator(TEXT, trainer)
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>")
    fast.save_pretrained(directory)
    return fast


@pytest.mark.parametrize(
    "build",
    [
        lambda v: llama.LlamaForCausalLM(
            llama.LlamaConfig(vocab_size=v, num_key_value_heads=2, **SHAPE)
        ),
        lambda v: qwen3.Qwen3ForCausalLM(
            qwen3.Qwen3Config(vocab_size=v, num_key_value_heads=2, head_dim=8, **SHAPE)
        ),
        lambda v: gpt_neox.GPTNeoXForCausalLM(gpt_neox.GPTNeoXConfig(vocab_size=v, **SHAPE)),
    ],
    ids=["llama", "qwen3", "gpt_neox"],
)
def test_generate_command_equals_transformers(build, tmp_path, capsys):
    fast = _tokenizer(tmp_path)
    model = build(len(fast))
    model.save_pretrained(tmp_path, model.init(ptfunc.random.key(0)))
    prompt = "the quick brown"
    argv = ["generate", prompt, "--model", str(tmp_path), "--greedy", "--max-new-tokens", "6"]
    assert cli.main(argv) == 0
    ours = capsys.readouterr().out.rstrip("\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = transformers.AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    ids = fast(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        out = ref.generate(
            ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, min_new_tokens=6,
            do_sample=False, pad_token_id=0,
        )  # fmt: skip
    assert ours == fast.decode(out[0])
