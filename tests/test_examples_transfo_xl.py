"""examples/run_transfo_xl.py: runs end to end on a tiny generated corpus, and its
perplexity evaluation equals a direct computation.

References for ``evaluate``: without memories, the mean NLL of each segment's
log-probabilities (``prediction_scores``) gathered at the targets; with memories
longer than the rows (and ``same_length=False``), one pass over each whole row, which
segment-by-segment reading with memories must reproduce. float32 within 1e-5 relative.
"""

from __future__ import annotations

import importlib.util
import math
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import ptfunc

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "run_transfo_xl.py"
TINY = [
    "--d-model", "16", "--n-head", "2", "--d-inner", "32", "--n-layer", "2",
    "--tgt-len", "8", "--mem-len", "8", "--batch-size", "4", "--eval-batch-size", "2",
    "--min-freq", "1", "--warmup", "1", "--log-every", "2",
]  # fmt: skip


def _example():
    spec = importlib.util.spec_from_file_location("run_transfo_xl", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    rng = random.Random(0)
    words = [f"w{i}" for i in range(40)]
    lines = [" ".join(rng.choice(words) for _ in range(rng.randint(3, 12))) for _ in range(120)]
    path = tmp_path_factory.mktemp("corpus") / "tiny.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_runs_and_prints_both_perplexities(corpus):
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), "--corpus", str(corpus), "--max-steps", "4"]
        + TINY
        + ["--threads", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    values = {}
    for label in ("with memories", "without memories"):
        match = re.search(rf"perplexity {label}[^:]*: ([0-9.]+|nan|inf)", result.stdout)
        assert match, result.stdout
        values[label] = float(match.group(1))
    assert all(math.isfinite(v) and v > 1 for v in values.values()), values
    assert "step     0" in result.stdout


def test_evaluate_equals_direct_computation(corpus):
    ex = _example()
    tokenizer, train_ids, eval_ids = ex.build_data(corpus, min_freq=1, eval_fraction=0.2)
    args = ex.parse_args(TINY + ["--mem-len", "200"])
    model = ex.make_model(len(tokenizer), args)
    params = model.init(ptfunc.random.key(0))
    ids = eval_ids[: 2 * 37]  # two rows of 37 tokens: 36 targets each, segments of 8
    rows = ids.reshape(2, 37)

    without = ex.evaluate(model, params, ids, tgt_len=8, batch_size=2, use_memory=False)
    nll = []
    for start in range(0, 36, 8):
        data, target = rows[:, start : start + 8], rows[:, start + 1 : start + 9]
        data = data[:, : target.shape[1]]
        scores = model.apply(params, data).prediction_scores
        nll.append(-scores.gather(-1, target[..., None]).flatten())
    direct = math.exp(float(torch.cat(nll).mean()))
    assert without == pytest.approx(direct, rel=1e-5)

    with_memory = ex.evaluate(model, params, ids, tgt_len=8, batch_size=2, use_memory=True)
    whole = model.apply(params, rows[:, :-1], targets=rows[:, 1:])  # one pass, all context
    assert with_memory == pytest.approx(math.exp(float(whole.loss)), rel=1e-5)


def test_evaluates_a_pretrained_model_by_name_or_path(corpus, tmp_path):
    """1.0's run_transfo_xl.py: load a pretrained model and its vocabulary, evaluate only."""
    ex = _example()
    args = ex.parse_args(["--corpus", str(corpus), *TINY])
    tokenizer, _, _ = ex.build_data(corpus, min_freq=1, eval_fraction=0.1)
    model = ex.make_model(len(tokenizer), args)
    params = model.init(ptfunc.random.key(3))
    model.save_pretrained(tmp_path, params)
    tokenizer.save_pretrained(tmp_path)
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), "--corpus", str(corpus), "--model_name_or_path"]
        + [str(tmp_path), *TINY, "--threads", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "step" not in result.stdout  # no training
    match = re.search(r"perplexity with memories: ([0-9.]+)", result.stdout)
    assert match, result.stdout
    ids = tokenizer.encode_file(corpus, ordered=True, add_eos=True)
    expected = ex.evaluate(model, params, ids, tgt_len=8, batch_size=2, use_memory=True)
    assert float(match.group(1)) == pytest.approx(expected, rel=1e-3)
