"""Multi-process training on this machine: ptfunc.distributed against torch's DDP and FSDP2.

    python benchmarks/distributed.py [--procs 1,2,4] [--models bert,llama] [--repeats 7]
    python benchmarks/distributed.py --quick          # tiny configs, 1 and 2 processes
    python benchmarks/distributed.py --sections scaling,overlap

Every process runs with ``OMP_NUM_THREADS=1`` under ``torchrun`` (gloo). Sections:

* ``scaling``: a training step (forward, backward, gradient exchange, AdamW) of a BERT-small
  (``BertForSequenceClassification``, 4 x 256, padded 8 x 128) and a Llama-small
  (``LlamaForCausalLM``, 4 x 256, GQA 4/2 heads, vocabulary 8192, 8 x 128) on 1, 2 and 4
  processes, the global batch fixed (each rank takes ``1/N`` of the rows). In each run the
  four candidates alternate on the same weights and batch: ptfunc data parallel
  (``grad_and_value`` + ``allreduce_grads`` + ``optim.step``), ptfunc FSDP
  (``fsdp.value_and_grad`` on ``fsdp.shard`` DTensors + ``optim.step``), and on the
  equivalent ``transformers`` 5 module (``attn_implementation="sdpa"``, same config and
  batch) ``torch.distributed.fsdp.fully_shard`` (each layer, then the root) and
  ``DistributedDataParallel``, both with ``torch.optim.AdamW(foreach=True)``. Rows: ptfunc
  time / peer time; the outputs column gives the first step's loss difference. A second
  table gives tokens/s of each candidate and its speed-up over 1 process;
* ``overlap``: ``torch.profiler`` on one ptfunc FSDP step and one ``fully_shard`` step (2
  processes, rank 0): the wall time, the time in gloo collectives (their union, on gloo's
  threads), the share of it that overlaps compute (aten ops on the training thread), and
  the collective time nothing overlaps (exposed);
* ``ddp`` (the older rows): 2 processes data parallel / 1 process, and ``--sharded`` / 1
  process, of ``examples/train_ddp.py`` (its median step time, runs alternated);
* ``allreduce``: gradient all-reduce of a BERT-sized tree (2 processes): ``allreduce_grads``
  (25 MiB buckets) / one ``all_reduce`` per leaf, interleaved in one worker.

On a machine with fewer cores than processes the multi-process rows measure contention,
not scaling (on 2 cores, 4 processes share them); the ratios between candidates of one run
are what to read, and they say what this machine gives, not what a cluster would.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(1, str(REPO))
from _timing import Row, Stats, format_table, time_interleaved  # noqa: E402

SECTIONS = ("scaling", "overlap", "ddp", "allreduce")
# name: (transformers config keywords, global batch, sequence length)
SHAPES: dict[str, dict[str, Any]] = {
    "bert": dict(
        vocab_size=8192, hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
        intermediate_size=1024, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    ),
    "llama": dict(
        vocab_size=8192, hidden_size=256, intermediate_size=688, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
    ),
}  # fmt: skip
QUICK = dict(vocab_size=512, hidden_size=64, num_hidden_layers=2, intermediate_size=128)
CANDIDATES = ("ptfunc dp", "ptfunc fsdp", "fully_shard", "DDP")


def _env() -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))


def _torchrun(procs: int, *script: str) -> None:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={procs}", *script]  # fmt: skip
    done = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}")


# -- scaling: ptfunc dp / fsdp against DDP / fully_shard on transformers modules --------------


def build(name: str, quick: bool) -> tuple[torch.nn.Module, Any, Any]:
    """(transformers module with sdpa in eval mode, ptfunc model, its params on the same
    weights); the same on every rank (seeded)."""
    import transformers

    from ptfunc import io
    from ptfunc.archs import bert, llama

    transformers.logging.set_verbosity_error()
    shape = {**SHAPES[name], **(QUICK if quick else {})}
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if name == "bert":
            hf_config = transformers.BertConfig(**shape, num_labels=2, attn_implementation="sdpa")
            ref = transformers.BertForSequenceClassification(hf_config)
            model = bert.BertForSequenceClassification(
                bert.BertConfig.from_dict(hf_config.to_dict())
            )
        else:
            hf_config = transformers.LlamaConfig(**shape, attn_implementation="sdpa")
            ref = transformers.LlamaForCausalLM(hf_config)
            model = llama.LlamaForCausalLM(llama.LlamaConfig.from_dict(hf_config.to_dict()))
    params = io.from_torch_state_dict(model, ref.state_dict(), strict=True)
    return ref.eval(), model, params


def global_batch(name: str, vocab: int, batch: int, seq: int) -> dict[str, torch.Tensor]:
    """Fixed inputs: Llama ids (= labels); BERT right-padded ids, mask and labels."""
    from _models import padded_inputs

    gen = torch.Generator().manual_seed(0)
    if name == "bert":
        ids, mask, labels = padded_inputs(vocab, batch, seq, gen)
        return dict(input_ids=ids, attention_mask=mask, labels=labels)
    ids = torch.randint(1, vocab, (batch, seq), generator=gen)
    return dict(input_ids=ids, labels=ids)


def candidates(name: str, quick: bool, batch: int, seq: int, lr: float = 1e-4) -> dict[str, Any]:
    """``{candidate: step()}`` for this rank: each call is one training step on this rank's
    rows of the global batch, and returns the (local) loss."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from torch.nn.parallel import DistributedDataParallel

    import ptfunc
    from ptfunc import distributed as ptd
    from ptfunc import optim

    rank, world = dist.get_rank(), dist.get_world_size()
    ref, model, params = build(name, quick)
    full = global_batch(name, ref.config.vocab_size, batch, seq)
    n = batch // world
    local = {k: v[rank * n : (rank + 1) * n] for k, v in full.items()}
    kwargs = {k: v for k, v in local.items() if k != "input_ids"}

    def ptfunc_loss(p, ids):
        return model.apply(p, ids, **kwargs).loss

    opt = optim.adamw_torch(lr)
    grad_and_loss = ptfunc.func.grad_and_value(ptfunc_loss)
    box = {"dp": (params, opt.init(params))}

    def ptfunc_dp():
        p, s = box["dp"]
        grads, loss = grad_and_loss(p, local["input_ids"])
        box["dp"] = optim.step(opt, ptd.allreduce_grads(grads), s, p)
        return loss

    out: dict[str, Any] = {"ptfunc dp": ptfunc_dp}
    mesh = init_device_mesh("cpu", (world,), mesh_dim_names=("dp",))
    try:
        from ptfunc.distributed import fsdp
    except ImportError:
        fsdp = None
    if fsdp is not None:
        sharded = fsdp.shard(params, mesh)
        box["fsdp"] = (sharded, opt.init(sharded))
        value_and_grad = fsdp.value_and_grad(ptfunc_loss)

        def ptfunc_fsdp():
            p, s = box["fsdp"]
            loss, grads = value_and_grad(p, local["input_ids"])
            box["fsdp"] = optim.step(opt, grads, s, p)
            return loss

        out["ptfunc fsdp"] = ptfunc_fsdp

    def torch_step(module, torch_opt):
        def step():
            loss = module(**local).loss
            loss.backward()
            torch_opt.step()
            torch_opt.zero_grad(set_to_none=True)
            return loss.detach()

        return step

    sharded_ref = copy.deepcopy(ref)
    layers = sharded_ref.bert.encoder.layer if name == "bert" else sharded_ref.model.layers
    for layer in layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(sharded_ref, mesh=mesh)
    out["fully_shard"] = torch_step(
        sharded_ref, torch.optim.AdamW(sharded_ref.parameters(), lr, foreach=True)
    )
    ddp = DistributedDataParallel(copy.deepcopy(ref))
    out["DDP"] = torch_step(ddp, torch.optim.AdamW(ddp.parameters(), lr, foreach=True))
    return out


def _intervals_length(spans: list[tuple[float, float]]) -> tuple[float, list[tuple[float, float]]]:
    """Total length of the union of ``spans`` and the union as sorted disjoint spans."""
    merged: list[list[float]] = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return sum(b - a for a, b in merged), [(a, b) for a, b in merged]


def _intersection(xs: list[tuple[float, float]], ys: list[tuple[float, float]]) -> float:
    """Length of the intersection of two unions of disjoint sorted spans."""
    i = j = 0
    total = 0.0
    while i < len(xs) and j < len(ys):
        a, b = max(xs[i][0], ys[j][0]), min(xs[i][1], ys[j][1])
        total += max(0.0, b - a)
        if xs[i][1] < ys[j][1]:
            i += 1
        else:
            j += 1
    return total


COMM_PREFIXES = ("gloo:", "nccl:")
NOT_COMPUTE = ("c10d", "wait", "record_param_comms", "gloo", "nccl", "ProfilerStep")


def overlap(step: Any) -> dict[str, float]:
    """Profile one call of ``step`` (CPU activities); times in seconds.

    ``comm``: the union of the collectives' spans (``gloo:*`` / ``nccl:*`` events, which
    run on the backend's threads); ``compute``: the union of the ``aten::`` ops on the
    thread that runs the step (the one with the most of them), waits excluded;
    ``overlapped``: their intersection; ``exposed`` = ``comm - overlapped``.
    """
    import time

    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        step()
        wall = time.perf_counter() - start
    events = list(prof.events())
    by_thread: dict[int, int] = {}
    for e in events:
        if e.name.startswith("aten::"):
            by_thread[e.thread] = by_thread.get(e.thread, 0) + 1
    main = max(by_thread, key=by_thread.get)

    def span(e):
        return (e.time_range.start * 1e-6, e.time_range.end * 1e-6)

    comm_total, comm = _intervals_length(
        [span(e) for e in events if e.name.startswith(COMM_PREFIXES)]
    )
    compute_total, compute = _intervals_length(
        [
            span(e)
            for e in events
            if e.thread == main
            and e.name.startswith("aten::")
            and not any(s in e.name for s in NOT_COMPUTE)
        ]
    )
    both = _intersection(comm, compute)
    return dict(
        wall=wall,
        comm=comm_total,
        compute=compute_total,
        overlapped=both,
        exposed=comm_total - both,
    )


def _scaling_worker(args: argparse.Namespace) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=120))
    torch.set_num_threads(1)
    rank, world = dist.get_rank(), dist.get_world_size()
    fns = candidates(args.model, args.quick, args.batch, args.seq)
    names = list(fns)
    first = {k: float(fns[k]()) for k in names}  # one step each from the same weights
    stats = time_interleaved([fns[k] for k in names], repeats=args.repeats, warmup=args.warmup)
    result: dict[str, Any] = {
        "model": args.model,
        "label": f"{args.model}-{'tiny' if args.quick else 'small'}",
        "procs": world,
        "tokens": args.batch * args.seq,
        "times": {k: s.times for k, s in zip(names, stats)},
        "first_loss": first,
    }
    if "overlap" in args.sections and world == 2:
        result["overlap"] = {k: overlap(fns[k]) for k in ("ptfunc fsdp", "fully_shard") if k in fns}
    if rank == 0:
        (args.scaling_worker / f"{args.model}-{world}.json").write_text(json.dumps(result))
    dist.barrier()
    dist.destroy_process_group()


def _scaling(args: argparse.Namespace, tmp: Path) -> list[dict[str, Any]]:
    results = []
    for name in args.models:
        for procs in args.procs:
            _torchrun(
                procs, __file__, "--scaling-worker", str(tmp), "--model", name,
                "--repeats", str(args.repeats), "--warmup", str(args.warmup),
                "--batch", str(args.batch), "--seq", str(args.seq),
                "--sections", ",".join(args.sections), *(["--quick"] if args.quick else []),
            )  # fmt: skip
            results.append(json.loads((tmp / f"{name}-{procs}.json").read_text()))
    return results


def scaling_rows(results: list[dict[str, Any]]) -> list[Row]:
    rows = []
    pairs = [("ptfunc fsdp", "fully_shard"), ("ptfunc fsdp", "DDP"),
             ("ptfunc dp", "DDP"), ("ptfunc dp", "fully_shard")]  # fmt: skip
    for r in results:
        times, first = r["times"], r["first_loss"]
        for ours, peer in pairs:
            if ours not in times or peer not in times:
                continue
            ours_s, peer_s = Stats(times[ours]), Stats(times[peer])
            check = (
                f"{r['tokens'] / ours_s.median:,.0f} tok/s; "
                f"|dloss| {abs(first[ours] - first[peer]):.1e}"
            )
            case = f"{r['label']} {r['procs']} procs: {ours} / {peer}"
            rows.append(Row(case, ours_s, peer_s, check))
    return rows


def scaling_table(results: list[dict[str, Any]]) -> str:
    """tokens/s of each candidate (median step), and its speed-up over 1 process."""
    base = {(r["model"], k): r["tokens"] / Stats(v).median for r in results if r["procs"] == 1
            for k, v in r["times"].items()}  # fmt: skip
    headers = ["model", "procs", *(f"{c} tok/s (x1p)" for c in CANDIDATES)]
    lines = []
    for r in results:
        cells = [r["label"], str(r["procs"])]
        for c in CANDIDATES:
            if c not in r["times"]:
                cells.append("-")
                continue
            rate = r["tokens"] / Stats(r["times"][c]).median
            one = base.get((r["model"], c))
            cells.append(f"{rate:,.0f}" + (f" ({rate / one:.2f})" if one else ""))
        lines.append(cells)
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(headers)]

    def fmt(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    return "\n".join([fmt(headers), "  ".join("-" * w for w in widths), *map(fmt, lines)])


def overlap_table(results: list[dict[str, Any]]) -> str:
    headers = ["step (2 procs, rank 0)", "wall ms", "gloo ms", "gloo/wall", "overlapped",
               "exposed ms", "compute/wall"]  # fmt: skip
    lines = []
    for r in results:
        for name, o in r.get("overlap", {}).items():
            lines.append([
                f"{r['label']} {name}", f"{o['wall'] * 1e3:.1f}", f"{o['comm'] * 1e3:.1f}",
                f"{o['comm'] / o['wall']:.0%}",
                f"{o['overlapped'] / o['comm']:.0%}" if o["comm"] else "-",
                f"{o['exposed'] * 1e3:.1f}", f"{o['compute'] / o['wall']:.0%}",
            ])  # fmt: skip
    if not lines:
        return "(no overlap rows: they need a 2-process run and ptfunc.distributed.fsdp)"
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(headers)]
    fmt = lambda cells: "  ".join(  # noqa: E731
        c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
    ).rstrip()
    return "\n".join([fmt(headers), "  ".join("-" * w for w in widths), *map(fmt, lines)])


# -- the older rows: examples/train_ddp.py runs and the bucketed all-reduce -------------------


def _train(procs: int, sharded: bool, args: argparse.Namespace, out: Path) -> float:
    """Median step time (s) of one run of examples/train_ddp.py."""
    script = [
        "examples/train_ddp.py", "--max-steps", str(args.steps), "--batch", str(args.ddp_batch),
        "--hidden", str(args.hidden), "--layers", "2", "--heads", "4", "--seq-len", "32",
        "--out", str(out), "--quiet",
    ] + (["--sharded"] if sharded else [])  # fmt: skip
    if procs == 1:
        cmd = [sys.executable, *script]
        subprocess.run(cmd, cwd=REPO, env=_env(), check=True, capture_output=True)
    else:
        _torchrun(procs, *script)
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


def _ddp_rows(args: argparse.Namespace, tmp: Path) -> tuple[list[Row], str]:
    runs: dict[str, list[float]] = {"one": [], "ddp": [], "sharded": []}
    for i in range(args.rounds):
        order = [("one", 1, False), ("ddp", 2, False), ("sharded", 2, True)]
        for name, procs, sharded in order if i % 2 == 0 else order[::-1]:
            runs[name].append(_train(procs, sharded, args, tmp / f"{name}{i}"))
    one, batch = Stats(runs["one"]), f"(batch {args.ddp_batch})"
    rows = [
        Row(f"train_ddp.py step, 2 procs data parallel / 1 proc {batch}", Stats(runs["ddp"]), one),
        Row(f"train_ddp.py step, 2 procs sharded / 1 proc {batch}", Stats(runs["sharded"]), one),
    ]
    one_ms = statistics.median(runs["one"]) * 1e3
    note = (f"(train_ddp.py rows: median step time of each run, median over {args.rounds} runs "
            f"each; {one_ms:.1f} ms/step in one process)")  # fmt: skip
    return rows, note


def _allreduce_row(tmp: Path) -> Row:
    _torchrun(2, __file__, "--worker", str(tmp))
    ar = json.loads((tmp / "allreduce.json").read_text())
    return Row(f"all-reduce {ar['leaves']} leaves, {ar['mb']:.0f} MiB: buckets / per leaf",
               Stats(ar["ours"]), Stats(ar["peer"]))  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny configs, 1 and 2 processes")
    parser.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated")
    parser.add_argument("--models", default="bert,llama")
    parser.add_argument("--procs", default=None, help="process counts (default 1,2,4)")
    parser.add_argument("--repeats", type=int, default=None, help="timed steps (default 7)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=None, help="global batch (default 8)")
    parser.add_argument("--seq", type=int, default=None, help="sequence length (default 128)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    # the older train_ddp.py rows
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--ddp-batch", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--scaling-worker", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--model", default="llama", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    q = args.quick
    args.sections = [s for s in args.sections.split(",") if s]
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {sorted(unknown)}; expected some of {SECTIONS}")
    args.models = [m for m in args.models.split(",") if m]
    args.procs = [int(p) for p in (args.procs or ("1,2" if q else "1,2,4")).split(",")]
    args.repeats = args.repeats or (2 if q else 7)
    args.warmup = min(args.warmup, 1) if q else args.warmup
    args.batch = args.batch or (4 if q else 8)
    args.seq = args.seq or (32 if q else 128)
    args.rounds = args.rounds or (1 if q else 3)
    args.steps = args.steps or (4 if q else 30)
    if "overlap" in args.sections and "scaling" in args.sections and 2 not in args.procs:
        args.procs.append(2)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker is not None:
        _allreduce_worker(args.worker)
        return 0
    if args.scaling_worker is not None:
        _scaling_worker(args)
        return 0
    if "overlap" in args.sections and "scaling" not in args.sections:
        args.procs = [2]  # the overlap profile runs in the 2-process scaling worker
    rows: list[Row] = []
    notes: list[str] = []
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        if "scaling" in args.sections or "overlap" in args.sections:
            results = _scaling(args, Path(tmp))
            if "scaling" in args.sections:
                rows += scaling_rows(results)
        if "ddp" in args.sections:
            ddp_rows, note = _ddp_rows(args, Path(tmp))
            rows += ddp_rows
            notes.append(note)
        if "allreduce" in args.sections:
            rows.append(_allreduce_row(Path(tmp)))
    import transformers

    print(f"torch {torch.__version__}, transformers {transformers.__version__}, "
          f"{os.cpu_count()} cores, gloo, OMP_NUM_THREADS=1"
          + (" (--quick: tiny configs)" if args.quick else ""))  # fmt: skip
    if rows:
        print(format_table(rows, ours="ptfunc", peer="peer"))
    for note in notes:
        print(note)
    if results and "scaling" in args.sections:
        print()
        print(f"tokens/s of a training step (global batch {args.batch} x {args.seq}, median of "
              f"{args.repeats} steps; in brackets: / the same candidate on 1 process)")  # fmt: skip
        print(scaling_table(results))
    if results and "overlap" in args.sections:
        print()
        print("comm/compute overlap of one profiled step (torch.profiler, CPU activities)")
        print(overlap_table(results))
        print("(fully_shard issues its all-gathers with async_op=False by default: on CUDA its "
              "overlap comes from separate streams,\n a CPU has none, so on gloo its collectives "
              "block the training thread; ptfunc's are async and prefetched)")  # fmt: skip
    if args.json is not None:
        data = {
            "rows": [
                {
                    "label": r.case,
                    "ours": r.ours.median,
                    "peer": r.peer.median,
                    "ratio": r.ratio,
                    "note": r.check,
                }  # fmt: skip
                for r in rows
            ],
            "results": results,
        }
        args.json.write_text(json.dumps(data, indent=1))
    bad = [r.case for r in rows if not math.isfinite(r.ratio)]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
