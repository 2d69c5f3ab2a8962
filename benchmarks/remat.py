"""Peak memory of one training step of a BERT classifier with and without ``remat=True``.

    python benchmarks/remat.py                 # BERT-base sizes, batch 2 x 512 (minutes on CPU)
    python benchmarks/remat.py --quick         # 4 layers, hidden 256, 2 x 128 (seconds)
    python benchmarks/remat.py --how backward  # loss.backward() instead of torch.func.grad

Memory, not time. Each variant runs in its own child process, so high-water marks do
not mix; each child reports:

* ``tensor peak``: the peak of live tensor bytes created by the step (forward, backward,
  recomputation), counted op by op (``ptfunc.research.remat.peak_tensor_bytes``);
* ``RSS peak``: the process's resident high-water mark (``ru_maxrss``) minus its resident
  size just before the step (allocator caching and fragmentation included);
* on CUDA (``--device cuda``): ``torch.cuda.max_memory_allocated`` during the step.

The ratio column is remat / no remat, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import ptfunc  # noqa: E402
from ptfunc.archs import bert  # noqa: E402
from ptfunc.research.remat import PeakTracker  # noqa: E402


def _rss_now() -> int:
    """Current resident set size in bytes (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def _child(args: argparse.Namespace) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    config = bert.BertConfig(
        vocab_size=30522,
        hidden_size=args.hidden,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        intermediate_size=4 * args.hidden,
        max_position_embeddings=max(512, args.seq),
    )
    model = bert.BertForSequenceClassification(config)
    params = ptfunc.tree.map(lambda t: t.to(device), model.init(ptfunc.random.key(0)))
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 30522, (args.batch, args.seq), generator=gen).to(device)
    labels = torch.tensor([i % 2 for i in range(args.batch)], device=device)
    key = ptfunc.random.key(1, device=device)
    remat = args.child == "remat"

    def loss(p):
        return model.apply(p, ids, labels=labels, train=True, key=key, remat=remat).loss

    def step():
        if args.how == "func.grad":
            return torch.func.grad(loss)(params)
        p = ptfunc.tree.map(lambda t: t.detach().requires_grad_(), params)
        loss(p).backward()
        return [t.grad for t in ptfunc.tree.leaves(p)]

    out = {}
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        step()
        torch.cuda.synchronize()
        out["cuda_peak"] = torch.cuda.max_memory_allocated() - base
    rss0 = _rss_now()
    with PeakTracker() as tracker:
        step()
    out["tensor_peak"] = tracker.peak
    out["rss_peak"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss0
    return out


def _mib(n: int) -> str:
    return f"{n / 2**20:9.1f} MiB"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--hidden", type=int, default=768)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--how", choices=("func.grad", "backward"), default="func.grad")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="4 layers, hidden 256, 2 x 128")
    p.add_argument("--child", choices=("plain", "remat"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.layers, args.hidden, args.heads, args.seq = 4, 256, 4, 128
    if args.child:
        print(json.dumps(_child(args)))
        return
    forwarded = [
        f"--layers={args.layers}", f"--hidden={args.hidden}", f"--heads={args.heads}",
        f"--seq={args.seq}", f"--batch={args.batch}", f"--how={args.how}",
        f"--device={args.device}", f"--threads={args.threads}",
    ]  # fmt: skip
    results = {}
    for variant in ("plain", "remat"):
        cmd = [sys.executable, __file__, *forwarded, f"--child={variant}"]
        done = subprocess.run(cmd, check=True, capture_output=True, text=True)
        results[variant] = json.loads(done.stdout.strip().splitlines()[-1])
    print(
        f"BERT classifier step ({args.how}, dropout on): {args.layers} layers, hidden "
        f"{args.hidden}, {args.heads} heads, batch {args.batch} x {args.seq}, {args.device}"
    )
    print(f"{'measure':<14}{'no remat':>14}{'remat':>14}{'ratio':>9}")
    for name in ("tensor_peak", "rss_peak", "cuda_peak"):
        if name in results["plain"]:
            a, b = results["plain"][name], results["remat"][name]
            print(f"{name:<14}{_mib(a):>14}{_mib(b):>14}{b / a if a else float('nan'):>9.3f}")


if __name__ == "__main__":
    main()
