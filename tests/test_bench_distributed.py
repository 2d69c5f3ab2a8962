"""Smoke test of benchmarks/distributed.py: tiny Llama, 1 and 2 gloo processes, one repeat.

No timing assertions: only that the scaling rows (ptfunc data parallel and FSDP against
``DistributedDataParallel`` and ``fully_shard`` on the ``transformers`` module) come out
with finite ratios and equal first-step losses (same weights and batch: 1e-5), and that
the profiler's overlap summary covers both FSDP steps.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import torch.distributed as dist

pytest.importorskip("transformers")
pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()),
    reason="torch.distributed with gloo is not available",
)
BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _bench():
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(
        "ptfunc_bench_distributed", BENCH / "distributed.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_distributed_quick_scaling_and_overlap(tmp_path, capsys):
    bench = _bench()
    out = tmp_path / "distributed.json"
    argv = ["--quick", "--sections", "scaling,overlap", "--models", "llama", "--procs", "1,2",
            "--repeats", "1", "--warmup", "0", "--json", str(out)]  # fmt: skip
    assert bench.main(argv) == 0
    table = capsys.readouterr().out
    data = json.loads(out.read_text())
    labels = [row["label"] for row in data["rows"]]
    for procs in (1, 2):
        for pair in ("ptfunc fsdp / fully_shard", "ptfunc dp / DDP"):
            assert f"llama-tiny {procs} procs: {pair}" in labels
    for row in data["rows"]:
        assert math.isfinite(row["ratio"]) and row["ratio"] > 0, row
        assert row["label"] in table
    for result in data["results"]:
        losses = list(result["first_loss"].values())
        assert set(result["first_loss"]) == set(bench.CANDIDATES)
        assert max(losses) - min(losses) <= 1e-5, result["first_loss"]
    two = next(r for r in data["results"] if r["procs"] == 2)
    assert set(two["overlap"]) == {"ptfunc fsdp", "fully_shard"}
    for o in two["overlap"].values():
        assert 0 < o["comm"] <= 1.1 * o["wall"] and 0 <= o["overlapped"] <= o["comm"]
    assert "comm/compute overlap" in table and "tokens/s" in table
