"""examples/run_generation.py with every causal architecture.

Reference: ``ptfunc.generate`` called as a library, one prompt at a time, on the same
directory with the context the seed built (padding text + prompt for XLNet and
Transformer-XL, the prompt alone otherwise): greedy continuations must be the same ids,
whatever the batching of the script. Sampling: same seed, same text; another seed, other
text; a single prompt equals ``ptfunc.generate`` with the script's documented key.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _tiny_configs import tiny_lm

import ptfunc
from ptfunc.cli import DEFAULT_MODEL
from ptfunc.tokenize import GPT2Tokenizer

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "run_generation.py"
PROMPTS = ["ROMEO: the", "JULIET: what light through yonder", "KING: my"]  # 2 share a length


def _example():
    spec = importlib.util.spec_from_file_location("run_generation", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


EX = _example()


@pytest.fixture(scope="module")
def tokenizer():
    return GPT2Tokenizer.from_pretrained(DEFAULT_MODEL)


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory, tokenizer):
    """A tiny random model of each architecture, saved with GPT-2's tokenizer."""
    dirs = {}
    for arch in ("gpt2", "openai-gpt", "transfo-xl", "xlnet", "xlm"):
        directory = tmp_path_factory.mktemp(arch.replace("-", "_"))
        model = tiny_lm(arch, len(tokenizer))
        ptfunc.io.save_pretrained(directory, model, model.init(ptfunc.random.key(0)))
        tokenizer.save_pretrained(directory)  # tokenizer_config.json names GPT2Tokenizer
        dirs[arch] = directory
    return dirs


def _run(*argv: str) -> list[dict]:
    args = EX.parse_args(list(argv))
    return EX.run(args)


def _context(arch: str, tokenizer, prompt: str) -> list[int]:
    ids = tokenizer.encode(prompt, add_special_tokens=False)
    if arch in ("transfo-xl", "xlnet"):
        return tokenizer.encode(EX.PADDING_TEXT, add_special_tokens=False) + ids
    return ids


@pytest.mark.parametrize("arch", ["gpt2", "openai-gpt", "transfo-xl", "xlnet", "xlm"])
def test_greedy_equals_library_generate(arch, model_dirs, tokenizer):
    directory = model_dirs[arch]
    argv = ["--model-dir", str(directory), "--greedy", "--length", "5", "--batch-size", "3"]
    for prompt in PROMPTS:
        argv += ["--prompt", prompt]
    records = _run(*argv)
    assert [(r["prompt_index"], r["sample"]) for r in records] == [(0, 0), (1, 0), (2, 0)]
    model, params = ptfunc.io.from_pretrained(directory, type(tiny_lm(arch, len(tokenizer))))
    for record, prompt in zip(records, PROMPTS):
        context = _context(arch, tokenizer, prompt)
        with torch.no_grad():
            out = ptfunc.generate(model, params, torch.tensor([context]), max_new_tokens=5)
        assert record["ids"] == out[0, len(context) :].tolist(), (arch, prompt)
        assert record["text"] == tokenizer.decode(record["ids"])
        assert record["prompt"] == prompt


def test_sampling_is_reproducible_and_follows_the_seed(model_dirs, tokenizer):
    directory = str(model_dirs["gpt2"])
    argv = ["--model-dir", directory, "--length", "6", "--num-samples", "3", "--top-k", "20"]
    argv += ["--prompt", PROMPTS[0], "--prompt", PROMPTS[1]]
    first = _run(*argv, "--seed", "7")
    assert _run(*argv, "--seed", "7") == first
    assert [r["ids"] for r in _run(*argv, "--seed", "8")] != [r["ids"] for r in first]
    assert len({tuple(r["ids"]) for r in first}) == 6  # samples differ from each other

    # One prompt, one batch: the key of batch 0 is fold_in(key(seed), 0).
    one = _run("--model-dir", directory, "--length", "6", "--seed", "7", "--top-p", "0.8",
               "--temperature", "0.7", "--prompt", PROMPTS[0])  # fmt: skip
    model, params = ptfunc.io.from_pretrained(directory, type(tiny_lm("gpt2", len(tokenizer))))
    ids = tokenizer.encode(PROMPTS[0], add_special_tokens=False)
    key = ptfunc.random.fold_in(ptfunc.random.key(7), 0)
    with torch.no_grad():
        out = ptfunc.generate(
            model, params, torch.tensor([ids]), max_new_tokens=6, key=key, do_sample=True,
            temperature=0.7, top_p=0.8,
        )  # fmt: skip
    assert one[0]["ids"] == out[0, len(ids) :].tolist()


def test_grouping_keeps_equal_lengths_for_models_without_left_padding():
    rows = [EX.Row(i, 0, tuple(range(n)), 0) for i, n in enumerate([3, 5, 3, 3, 5])]
    groups = EX.group_rows(rows, 2, left_pad=False)
    assert [[r.prompt_index for r in g] for g in groups] == [[0, 2], [3], [1, 4]]
    groups = EX.group_rows(rows, 2, left_pad=True)
    assert [[r.prompt_index for r in g] for g in groups] == [[0, 1], [2, 3], [4]]


def test_padding_text_options(model_dirs, tokenizer):
    rows = EX.make_rows(["a b"], tokenizer, num_samples=2, padding_text="x y z")
    pad = tokenizer.encode("x y z", add_special_tokens=False)
    assert [r.ids for r in rows] == [tuple(pad + tokenizer.encode("a b"))] * 2
    assert rows[0].n_padding == len(pad)
    # --no-padding-text on XLNet: the context is the prompt alone.
    directory = model_dirs["xlnet"]
    records = _run("--model-dir", str(directory), "--greedy", "--length", "3",
                   "--no-padding-text", "--prompt", PROMPTS[0])  # fmt: skip
    model, params = ptfunc.io.from_pretrained(directory, type(tiny_lm("xlnet", len(tokenizer))))
    ids = tokenizer.encode(PROMPTS[0], add_special_tokens=False)
    with torch.no_grad():
        out = ptfunc.generate(model, params, torch.tensor([ids]), max_new_tokens=3)
    assert records[0]["ids"] == out[0, len(ids) :].tolist()


def test_command_line_json_and_errors(model_dirs, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n", encoding="utf-8")
    cmd = [sys.executable, str(EXAMPLE), "--model-dir", str(model_dirs["gpt2"]), "--threads", "1"]
    result = subprocess.run(
        cmd + ["--prompt-file", str(prompts), "--length", "4", "--json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["prompt"] for line in lines] == PROMPTS
    assert all(len(line["ids"]) == 4 for line in lines)
    assert "run_generation: batch 1/1" in result.stderr

    too_long = subprocess.run(
        cmd + ["--prompt", "word " * 80], capture_output=True, text=True, timeout=120
    )
    assert too_long.returncode == 1
    assert "the model takes 64" in too_long.stderr and "Traceback" not in too_long.stderr
