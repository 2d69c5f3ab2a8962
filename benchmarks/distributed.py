"""Multi-process training on this machine: ptfunc.distributed against its one-process peer.

    python benchmarks/distributed.py [--rounds 3] [--steps 30] [--hidden 64]

Rows (ratios of medians, measured in the same run):

* training step, 2 processes data parallel (``torchrun``, gloo) / 1 process, same global
  batch (``examples/train_ddp.py``; the median step time of each run, runs alternated);
* the same with ``--sharded`` / 1 process;
* gradient all-reduce of a BERT-sized tree (2 processes): ``allreduce_grads`` (25 MiB
  buckets) / one ``all_reduce`` per leaf (the unbucketed peer), interleaved in one worker.

On a machine with fewer cores than processes x threads the 2-process rows measure
contention, not scaling; the ratios say what this machine gives, not what a cluster would.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(1, str(REPO))
from _timing import Row, Stats, format_table, time_interleaved  # noqa: E402


def _env() -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))


def _train(procs: int, sharded: bool, args: argparse.Namespace, out: Path) -> float:
    """Median step time (s) of one run of examples/train_ddp.py."""
    script = [
        "examples/train_ddp.py", "--max-steps", str(args.steps), "--batch", str(args.batch),
        "--hidden", str(args.hidden), "--layers", "2", "--heads", "4", "--seq-len", "32",
        "--out", str(out), "--quiet",
    ] + (["--sharded"] if sharded else [])  # fmt: skip
    if procs == 1:
        cmd = [sys.executable, *script]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={procs}", *script]  # fmt: skip
    subprocess.run(cmd, cwd=REPO, env=_env(), check=True, capture_output=True)
    return json.loads((out / "summary.json").read_text())["median_step_s"]


def _allreduce_worker(out: Path) -> None:
    import torch.distributed as dist

    from ptfunc import distributed as ptd
    from ptfunc import random, tree
    from ptfunc.archs import bert

    dist.init_process_group("gloo")
    config = bert.BertConfig(hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                             intermediate_size=1024)  # fmt: skip
    grads = bert.BertModel(config).init(random.key(0))
    leaves = tree.leaves(grads)

    def per_leaf():
        works = [dist.all_reduce(x.clone(), async_op=True) for x in leaves]
        for w in works:
            w.wait()

    def bucketed():
        ptd.allreduce_grads(grads, average=False)

    dist.barrier()
    ours, peer = time_interleaved([bucketed, per_leaf], repeats=7, warmup=1)
    if ptd.rank() == 0:
        info = {"leaves": len(leaves), "mb": sum(x.numel() * 4 for x in leaves) / 2**20}
        (out / "allreduce.json").write_text(
            json.dumps({"ours": ours.times, "peer": peer.times} | info)
        )
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        _allreduce_worker(args.worker)
        return
    runs: dict[str, list[float]] = {"one": [], "ddp": [], "sharded": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.rounds):
            order = [("one", 1, False), ("ddp", 2, False), ("sharded", 2, True)]
            for name, procs, sharded in order if i % 2 == 0 else order[::-1]:
                runs[name].append(_train(procs, sharded, args, Path(tmp) / f"{name}{i}"))
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=2", __file__, "--worker", tmp]  # fmt: skip
        subprocess.run(cmd, cwd=REPO, env=_env(), check=True, capture_output=True)
        ar = json.loads((Path(tmp) / "allreduce.json").read_text())
    one, batch = Stats(runs["one"]), f"(batch {args.batch})"
    rows = [
        Row(f"train step, 2 procs data parallel / 1 proc {batch}", Stats(runs["ddp"]), one),
        Row(f"train step, 2 procs sharded / 1 proc {batch}", Stats(runs["sharded"]), one),
        Row(f"all-reduce {ar['leaves']} leaves, {ar['mb']:.0f} MiB: buckets / per leaf",
            Stats(ar["ours"]), Stats(ar["peer"])),
    ]  # fmt: skip
    print(f"torch {torch.__version__}, {os.cpu_count()} cores, gloo, OMP_NUM_THREADS=1")
    print(format_table(rows, ours="ptfunc", peer="peer"))
    print(f"(train rows: median step time of each run, median over {args.rounds} runs each; "
          f"{statistics.median(runs['one']) * 1e3:.1f} ms/step in one process)")  # fmt: skip


if __name__ == "__main__":
    main()
