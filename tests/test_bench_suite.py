"""Smoke test of benchmarks/suite.py: tiny configs, one repeat, a cheap subset of rows.

No timing assertions: only that the rows come out, with finite ratios, in the table and in
the ``--json`` file (with the machine description).
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")
BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
ONLY = (
    "^("
    + "|".join(
        [
            "bert: fwd",
            r"gpt2: fwd\+bwd",
            "train: bert",
            "memory: bert",
            r"optim: optim.step\(adamw_torch",
            "vmap: per-example",
            "tokenize: gpt2 per-text / Rust",
        ]
    )
    + ")"
)


def _suite():
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location("ptfunc_bench_suite", BENCH / "suite.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_suite_quick_rows_and_json(tmp_path, capsys):
    suite = _suite()
    out = tmp_path / "suite.json"
    argv = ["--quick", "--repeats", "1", "--threads", "1", "--only", ONLY, "--json", str(out)]
    assert suite.main(argv) == 0
    table = capsys.readouterr().out
    data = json.loads(out.read_text())
    labels = [row["label"] for row in data["rows"]]
    expected = [
        "bert: fwd 2x16",
        "bert: fwd+bwd 2x16",
        "gpt2: fwd+bwd 2x16",
        "train: bert 2x16 adamw",
        "memory: bert fwd+bwd 2x16 peak tensor bytes",
        "memory: bert train step 2x16 peak tensor bytes",
        "tokenize: gpt2 per-text / Rust per-text",
        "optim: optim.step(adamw_torch) inplace / AdamW(fused)",
        "vmap: per-example grads (batch 32)",
    ]
    corpus = suite._models.FIXTURES / "corpora" / "tinyshakespeare.txt"
    if not corpus.is_file():  # the suite skips those rows cleanly
        expected.remove("tokenize: gpt2 per-text / Rust per-text")
    assert labels == expected
    for row in data["rows"]:
        assert math.isfinite(row["ratio"]) and row["ratio"] > 0, row
        assert row["label"] in table
    assert "max|d|" in data["rows"][0]["note"]
    machine = data["machine"]
    assert {"cpu", "cores", "torch", "transformers"} <= set(machine)


def test_suite_lists_and_skips_cuda_cleanly(capsys):
    suite = _suite()
    assert suite.main(["--quick", "--list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert "generate: gpt2 greedy 1x8+16" in listed and len(listed) == len(set(listed))
    if not suite.torch.cuda.is_available():
        assert suite.main(["--quick", "--device", "cuda"]) == 0
        assert "skipped" in capsys.readouterr().out
