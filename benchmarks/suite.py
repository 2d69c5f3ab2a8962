"""The performance suite: ptfunc against today's ``transformers`` (and torch.optim, loops,
the 1.0 and Rust tokenizers) in one process, on the same weights and inputs, one table.

Usage::

    python benchmarks/suite.py                      # base-size models, CPU float32 (long)
    python benchmarks/suite.py --quick              # tiny configs, one point: a smoke test
    python benchmarks/suite.py --only 'bert: fwd'   # rows whose "section: case" matches a regex
    python benchmarks/suite.py --points 8x128 --repeats 5 --threads 2 --json out.json
    python benchmarks/suite.py --device cuda --dtype bfloat16   # when a GPU is present
    ptfunc bench suite -- --only gpt2               # the same through the command line

Every ratio is ptfunc / reference of a cost (time or bytes) measured in the same run,
the two sides interleaved (``_timing.time_interleaved``): below 1.0 ptfunc is cheaper.
``spread`` is (max - min) / median of the noisier side. Rows with a FLOP count also give
each side's fraction of the machine's GEMM rate, measured in the same run at the sizes of
that model's matmuls (``roof``): model FLOPs / time / GEMM rate. docs/performance.md says
what every row means.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _models  # noqa: E402
import optim as optim_bench  # noqa: E402  (benchmarks/optim.py)
import research as research_bench  # noqa: E402  (benchmarks/research.py)
from _timing import time_interleaved  # noqa: E402

import ptfunc  # noqa: E402
from ptfunc import optim  # noqa: E402
from ptfunc.research.remat import PeakTracker  # noqa: E402

ARCHS = ("bert", "gpt2", "xlnet", "xlm")
LARGE_FLOPS = 1e9  # cases below this are overhead-bound: no roofline fraction reported
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
COMPILE_POINT = (1, 16)  # batch 1, 16 tokens: per-op overhead, not FLOPs, sets the time
GENERATE = (32, 128)  # prompt length, new tokens
GENERATE_QUICK = (8, 16)


@dataclass
class SuiteRow:
    """One line of the table (and of ``--json``)."""

    section: str
    case: str
    unit: str  # of ours / peer: "ms" or "MiB"
    ours: float
    peer: float
    peer_name: str
    spread: float = 0.0
    roof_ours: float | None = None  # fraction of the measured GEMM rate
    roof_peer: float | None = None
    note: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.section}: {self.case}"

    @property
    def ratio(self) -> float:
        return self.ours / self.peer if self.peer else math.nan


def parse_points(text: str) -> list[tuple[int, int]]:
    try:
        return [(int(b), int(s)) for b, s in (p.lower().split("x") for p in text.split(","))]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected BxS[,BxS...], got {text!r}") from None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny configs, one point: a smoke test")
    p.add_argument("--only", default=None, help="regex over 'section: case' labels")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats (default 3)")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls per side first")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    p.add_argument("--points", type=parse_points, default=None, help="BxS list, e.g. 1x128,8x128")
    p.add_argument("--json", type=Path, default=None, help="write rows + machine here")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--dtype", default="float32", choices=list(DTYPES))
    p.add_argument("--list", action="store_true", help="print the row labels and exit")
    p.add_argument(
        "--compile-mode",
        default="auto",
        help="mode of the compile: rows (auto: reduce-overhead on cuda, default on cpu)",
    )
    args = p.parse_args(argv)
    args.repeats = args.repeats or 3
    args.points = args.points or ([(2, 16)] if args.quick else [(1, 128), (8, 128), (4, 512)])
    return args


def machine(args: argparse.Namespace) -> dict[str, Any]:
    import transformers

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = dict(
        cpu=cpu,
        cores=os.cpu_count(),
        threads=torch.get_num_threads(),
        torch=torch.__version__,
        transformers=transformers.__version__,
        ptfunc=ptfunc.__version__,
        python=platform.python_version(),
        device=args.device,
        dtype=args.dtype,
        loadavg_start=list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    )
    if args.device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    return info


class Suite:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rows: list[SuiteRow] = []
        self.gemm: dict[str, float] = {}
        self.only = re.compile(args.only) if args.only else None
        self.dtype = DTYPES[args.dtype]
        self.device = args.device
        self._pairs: dict[str, _models.Pair] = {}

    # --- selection and bookkeeping -------------------------------------------------------
    def wanted(self, label: str) -> bool:
        return self.only is None or bool(self.only.search(label))

    def any_wanted(self, labels: Iterable[str]) -> bool:
        return any(self.wanted(label) for label in labels)

    def pair(self, arch: str) -> _models.Pair:
        if arch not in self._pairs:
            built = _models.BUILDERS[arch](self.args.quick)
            self._pairs[arch] = built.to(self.device, self.dtype)
        return self._pairs[arch]

    def sync(self, fn: Callable[[], Any]) -> Callable[[], Any]:
        return research_bench.synced(fn, self.device)

    def timed(
        self,
        section: str,
        case: str,
        ours: Callable[[], Any],
        peer: Callable[[], Any],
        peer_name: str,
        *,
        flops: float | None = None,
        gemm: list[tuple[int, int, int]] | None = None,
        note: str = "",
        warmup: int | None = None,
        repeats: int | None = None,
    ) -> SuiteRow | None:
        label = f"{section}: {case}"
        if not self.wanted(label):
            return None
        fns = [self.sync(ours), self.sync(peer)]
        large = bool(flops and gemm and flops >= LARGE_FLOPS)
        if large:  # the GEMM runs interleaved with both sides: it sees the same machine load
            gemm_fn, gemm_flops = self.gemm_fn(gemm)
            fns.append(self.sync(gemm_fn))
        stats = time_interleaved(
            fns,
            repeats=repeats or self.args.repeats,
            warmup=self.args.warmup if warmup is None else warmup,
        )
        a, b = stats[:2]
        row = SuiteRow(
            section, case, "ms", a.median * 1e3, b.median * 1e3, peer_name,
            spread=max(a.spread, b.spread), note=note,
        )  # fmt: skip
        if large:
            rate = gemm_flops / stats[2].median
            self.gemm[label] = rate
            row.roof_ours = flops / a.median / rate
            row.roof_peer = flops / b.median / rate
            row.extra["gflop"] = flops / 1e9
            row.extra["gemm_gflops"] = rate / 1e9
        return self.add(row)

    def add(self, row: SuiteRow) -> SuiteRow:
        self.rows.append(row)
        roof = (
            f", roofline {row.roof_ours:.0%} vs {row.roof_peer:.0%}"
            if row.roof_ours is not None
            else ""
        )
        print(
            f"  {row.label}: {row.ours:,.1f} vs {row.peer:,.1f} {row.unit}, "
            f"ratio {row.ratio:.3f}{roof}  {row.note}",
            flush=True,
        )
        return row

    # --- the machine's matmul rate ---------------------------------------------------------
    def gemm_fn(self, shapes: list[tuple[int, int, int]]) -> tuple[Callable[[], None], int]:
        """``F.linear`` over ``shapes`` (the models' weight layout) as one call, and its FLOPs."""
        gen = torch.Generator().manual_seed(0)
        mats = [
            (
                torch.randn(m, k, generator=gen).to(self.device, self.dtype),
                torch.randn(n, k, generator=gen).to(self.device, self.dtype),
            )
            for m, k, n in shapes
        ]

        def run() -> None:
            for x, w in mats:
                torch.nn.functional.linear(x, w)

        return run, sum(2 * m * k * n for m, k, n in shapes)

    # --- sections ------------------------------------------------------------------------
    def model_rows(self, arch: str) -> None:
        pts = self.args.points
        labels = [f"{arch}: {k} {b}x{s}" for b, s in pts for k in ("fwd", "fwd+bwd")]
        if not self.any_wanted(labels):
            return
        pair = self.pair(arch)
        print(f"{arch}: {pair.name}", flush=True)
        gen = torch.Generator().manual_seed(1)
        for b, s in pts:
            x = self.inputs(pair, b, s, gen)
            if self.any_wanted([f"{arch}: fwd {b}x{s}", f"{arch}: fwd+bwd {b}x{s}"]):
                self._model_point(arch, pair, b, s, *x)

    def inputs(self, pair: _models.Pair, b: int, s: int, gen: torch.Generator) -> list[Any]:
        """(ids, mask or None, labels) on the suite's device."""
        x = pair.inputs(b, s, gen)
        return [None if x[k] is None else x[k].to(self.device) for k in ("ids", "mask", "labels")]

    def _model_point(self, arch, pair, b, s, ids, mask, labels) -> None:  # noqa: ANN001
        shapes = pair.gemm_shapes(b * s)

        def fwd_ours() -> Any:
            with torch.no_grad():
                return pair.forward_ours(ids, mask)

        def fwd_ref() -> Any:
            with torch.no_grad():
                return pair.forward_ref(ids, mask)

        if self.wanted(f"{arch}: fwd {b}x{s}"):
            d = _models.max_diff(fwd_ours(), fwd_ref())
            self.timed(
                arch, f"fwd {b}x{s}", fwd_ours, fwd_ref, "transformers",
                flops=pair.forward_flops(b, s), gemm=shapes, note=f"max|d|={d:.1e}",
            )  # fmt: skip
        if not self.wanted(f"{arch}: fwd+bwd {b}x{s}"):
            return
        grad_fn = ptfunc.func.grad(pair.loss_ours)

        def bwd_ours() -> Any:
            return grad_fn(pair.params, ids, mask, labels)

        def bwd_ref() -> None:
            pair.ref.zero_grad(set_to_none=True)
            pair.loss_ref(ids, mask, labels).backward()

        g = bwd_ours()
        bwd_ref()
        d, scale = pair.grads_diff(g)
        del g
        self.timed(
            arch, f"fwd+bwd {b}x{s}", bwd_ours, bwd_ref, "transformers",
            flops=3 * pair.loss_flops(b, s), gemm=shapes,
            note=f"grads max|d|={d:.1e} (max|g|={scale:.1e})",
        )  # fmt: skip
        pair.ref.zero_grad(set_to_none=True)

    def _middle_point(self) -> tuple[int, int]:
        pts = self.args.points
        return pts[1] if len(pts) > 1 else pts[0]

    def train_rows(self) -> None:
        b, s = self._middle_point()
        for arch in ARCHS:
            case = f"{arch} {b}x{s} adamw"
            if self.wanted(f"train: {case}"):
                self._train_case(arch, case, b, s)

    def _train_case(self, arch: str, case: str, b: int, s: int) -> None:
        pair = self.pair(arch)
        ids, mask, labels = self.inputs(pair, b, s, torch.Generator().manual_seed(2))
        peer = reference_train_step(pair, ids, mask, labels)
        ours, box = ptfunc_train_step(pair, ids, mask, labels)

        d = abs(
            float(ours().detach()) - float(peer().detach())
        )  # first step: same weights, same batch
        shapes = pair.gemm_shapes(b * s)
        self.timed(
            "train", case, ours, peer, "transformers+clip+AdamW(fused)",
            flops=3 * pair.loss_flops(b, s), gemm=shapes, note=f"step-1 loss |d|={d:.1e}",
        )  # fmt: skip

    def generate_rows(self) -> None:
        prompt_len, new = GENERATE_QUICK if self.args.quick else GENERATE
        case = f"gpt2 greedy 1x{prompt_len}+{new}"
        if self.wanted(f"generate: {case}"):
            self._generate_case("generate", case, prompt_len, new, False)

    def _generate_case(
        self, section: str, case: str, prompt_len: int, new: int, compile: bool | str
    ) -> None:
        """ptfunc.generate (``compile``: its static-cache compiled path) against transformers'
        eager ``generate``, greedy, exactly ``new`` tokens after a random prompt."""
        pair = self.pair("gpt2")
        prompt = torch.randint(1, pair.vocab, (1, prompt_len), generator=torch.Generator())
        prompt = prompt.to(self.device)
        ours, ref = _models.greedy_generate_fns(pair, prompt, new, compile=compile)
        with torch.no_grad():
            same = torch.equal(ours(), ref())
            row = self.timed(
                section, case, ours, ref, "transformers generate",
                note="", warmup=3 if compile else None,
            )  # fmt: skip
        if row:
            row.extra["tokens_per_s"] = {"ours": new / row.ours * 1e3, "peer": new / row.peer * 1e3}
            row.note = (
                f"same tokens: {same}; {new / row.ours * 1e3:,.0f} vs "
                f"{new / row.peer * 1e3:,.0f} tok/s"
            )
            if compile:
                row.note += f"; {mode_name({} if compile is True else {'mode': compile})}"

    # --- compiled paths, where per-op overhead matters --------------------------------------
    def compile_mode(self) -> str | None:
        """torch.compile's mode: CUDA graphs on a GPU (launch overhead), default on a CPU."""
        mode = self.args.compile_mode
        if mode == "auto":
            return "reduce-overhead" if self.device == "cuda" else None
        return None if mode == "default" else mode

    def compile_rows(self) -> None:
        """``torch.compile``'d ptfunc against the reference's eager calls: a short forward
        (batch 1, 16 tokens), a whole train step, and greedy generation."""
        mode = self.compile_mode()
        options = {} if mode is None else {"mode": mode}
        b, s = COMPILE_POINT
        for arch in ("bert", "gpt2"):
            case = f"{arch} fwd {b}x{s}"
            if self.wanted(f"compile: {case}"):
                self._compiled_forward(arch, case, b, s, options)
        tb, ts = self._middle_point()
        for arch in ("bert", "gpt2"):  # a step is long: no CUDA graphs (their outputs would
            case = f"train {arch} {tb}x{ts} adamw"  # need a copy to feed the next step)
            if self.wanted(f"compile: {case}"):
                self._compiled_train(arch, case, tb, ts, {})
        prompt_len, new = GENERATE_QUICK if self.args.quick else GENERATE
        case = f"generate gpt2 greedy 1x{prompt_len}+{new}"
        if self.wanted(f"compile: {case}"):
            self._generate_case("compile", case, prompt_len, new, mode or True)

    def _compiled_forward(self, arch: str, case: str, b: int, s: int, options: dict) -> None:
        pair = self.pair(arch)
        ids, mask, _ = self.inputs(pair, b, s, torch.Generator().manual_seed(3))
        torch._dynamo.reset()
        if options.get("mode") in ("reduce-overhead", "max-autotune"):
            for t in ptfunc.tree.leaves(pair.base_params):  # CUDA graphs: no copy per replay
                torch._dynamo.mark_static_address(t)
        fwd = torch.compile(
            lambda p, ids, mask: pair.base_model.apply(p, ids, **pair._kw(mask))[0], **options
        )

        def ours() -> Any:
            with torch.no_grad():
                return fwd(pair.base_params, ids, mask)

        def ref() -> Any:
            with torch.no_grad():
                return pair.forward_ref(ids, mask)

        d = _models.max_diff(ours(), ref())
        self.timed(
            "compile", case, ours, ref, "transformers eager", warmup=3,
            note=f"max|d|={d:.1e}; {mode_name(options)}",  # no roofline: launch-bound by design
        )  # fmt: skip

    def _compiled_train(self, arch: str, case: str, b: int, s: int, options: dict) -> None:
        pair = self.pair(arch)
        ids, mask, labels = self.inputs(pair, b, s, torch.Generator().manual_seed(2))
        peer = reference_train_step(pair, ids, mask, labels)
        opt = train_optimizer()
        grad_fn = ptfunc.func.grad_and_value(pair.loss_ours)

        def step(params: Any, state: Any) -> tuple[Any, Any, torch.Tensor]:
            grads, loss = grad_fn(params, ids, mask, labels)
            updates, state = opt.update(grads, state, params)
            return optim.apply_updates(params, updates), state, loss

        torch._dynamo.reset()
        compiled = torch.compile(step, **options)
        box = {"params": ptfunc.tree.map(torch.clone, pair.params)}
        box["state"] = opt.init(box["params"])

        def ours() -> torch.Tensor:
            box["params"], box["state"], loss = compiled(box["params"], box["state"])
            return loss

        d = abs(float(ours().detach()) - float(peer().detach()))
        self.timed(
            "compile", case, ours, peer, "transformers+clip+AdamW(fused) eager", warmup=2,
            flops=3 * pair.loss_flops(b, s), gemm=pair.gemm_shapes(b * s),
            note=f"step-1 loss |d|={d:.1e}; {mode_name(options)}",
        )  # fmt: skip

    def memory_rows(self) -> None:
        b, s = self._middle_point()
        for arch in ARCHS:
            case = f"{arch} fwd+bwd {b}x{s} peak tensor bytes"
            if self.wanted(f"memory: {case}"):
                self._memory_case(arch, case, b, s)

    def _memory_case(self, arch: str, case: str, b: int, s: int) -> None:
        pair = self.pair(arch)
        ids, mask, labels = self.inputs(pair, b, s, torch.Generator().manual_seed(3))

        def ours() -> Any:
            return ptfunc.func.grad(pair.loss_ours)(pair.params, ids, mask, labels)

        def ref() -> None:
            pair.ref.zero_grad(set_to_none=True)
            pair.loss_ref(ids, mask, labels).backward()

        peaks = []
        for fn in (ours, ref):
            with PeakTracker() as tracker:
                out = fn()
            del out
            peaks.append(tracker.peak / 2**20)
        pair.ref.zero_grad(set_to_none=True)
        self.add(SuiteRow("memory", case, "MiB", *peaks, "transformers", note="PeakTracker"))

    def train_memory_rows(self) -> None:
        b, s = self._middle_point()
        for arch in ARCHS:
            case = f"{arch} train step {b}x{s} peak tensor bytes"
            if self.wanted(f"memory: {case}"):
                self._train_memory_case(arch, case, b, s)

    def _train_memory_case(self, arch: str, case: str, b: int, s: int) -> None:
        """Peak bytes of one whole step (forward, backward, clip, AdamW) after a warm-up
        step: the params and optimizer state held before it, plus the peak of what the
        step allocates.  The peer's ``.grad`` of the warm-up step is freed first (its
        ``zero_grad(set_to_none=True)``), so neither side is charged for last step's grads."""
        pair = self.pair(arch)
        ids, mask, labels = self.inputs(pair, b, s, torch.Generator().manual_seed(4))
        peer = reference_train_step(pair, ids, mask, labels)
        ours, box = ptfunc_train_step(pair, ids, mask, labels)

        ours(), peer()  # warm-up: the optimizer state exists on both sides
        module, ref_opt = peer.module, peer.optimizer  # type: ignore[attr-defined]
        ref_opt.zero_grad(set_to_none=True)
        held_ours = _tree_bytes((box["params"], box["state"]))
        held_peer = _tree_bytes((list(module.parameters()), ref_opt.state_dict()["state"]))
        peaks = []
        for fn, held in ((ours, held_ours), (peer, held_peer)):
            with PeakTracker() as tracker:
                out = fn()
            del out
            peaks.append((held + tracker.peak) / 2**20)
        self.add(
            SuiteRow(
                "memory", case, "MiB", *peaks, "transformers+clip+AdamW(fused)",
                note="params + state held + PeakTracker peak of the step",
            )
        )  # fmt: skip

    def tokenizer_rows(self) -> None:
        labels = [f"tokenize: {t} {k}" for t in ("bert", "gpt2", "xlnet") for k in _TOK_KINDS]
        if not self.any_wanted(labels):
            return
        fx = _models.FIXTURES
        corpus = fx / "corpora" / "tinyshakespeare.txt"
        if not corpus.is_file():
            print(f"  tokenize: skipped, no corpus at {corpus} (shared fixtures absent)")
            return
        lines = [t for t in corpus.read_text(encoding="utf-8").splitlines() if t.strip()]
        if self.args.quick:
            lines = lines[:300]
        megabytes = sum(len(t.encode("utf-8")) + 1 for t in lines) / 1e6
        for name, build in _TOKENIZERS.items():
            if not self.any_wanted([f"tokenize: {name} {k}" for k in _TOK_KINDS]):
                continue
            try:
                ours, slow, fast = build(fx)
            except (OSError, ImportError) as error:
                print(f"  tokenize: {name} skipped ({error})")
                continue
            same = [ours.encode(t, add_special_tokens=False) for t in lines] == [
                fast.encode(t, add_special_tokens=False) for t in lines
            ]
            per_text = {
                "ours": lambda o=ours: [o.encode(t, add_special_tokens=False) for t in lines],
                "1.0": lambda s=slow: [s.encode(t) for t in lines],
                "rust": lambda f=fast: [f.encode(t, add_special_tokens=False) for t in lines],
            }
            rust = "transformers (Rust)"
            cases = [
                (_TOK_KINDS[0], per_text["ours"], per_text["1.0"], "pytorch-transformers 1.0"),
                (_TOK_KINDS[1], per_text["ours"], per_text["rust"], rust),
                (
                    _TOK_KINDS[2],
                    lambda o=ours: o.batch_encode(lines, add_special_tokens=False)["input_ids"],
                    lambda f=fast: f(lines, add_special_tokens=False)["input_ids"],
                    rust,
                ),
            ]
            for kind, a, b, peer_name in cases:
                row = self.timed("tokenize", f"{name} {kind}", a, b, peer_name, note="")
                if row:
                    mb_ours, mb_peer = megabytes / row.ours * 1e3, megabytes / row.peer * 1e3
                    row.extra["mb_per_s"] = {"ours": mb_ours, "peer": mb_peer}
                    row.note = f"{mb_ours:.2f} vs {mb_peer:.2f} MB/s; same ids as Rust: {same}"

    def optim_rows(self) -> None:
        cases = {
            "optim.step(adamw_torch) inplace / AdamW(fused)": optim.adamw_torch(
                lr=1e-4, weight_decay=0.01
            ),
            "optim.step(adamw, 1.0, fused=True) inplace / AdamW(fused)": optim.adamw(
                lr=1e-4, weight_decay=0.01, fused=True
            ),
        }
        if not self.any_wanted(f"optim: {c}" for c in cases):
            return
        params = optim_bench.make_tree("bert", self.args.quick, torch.float32)
        grads = optim_bench.random_grads(params)
        peer = optim_bench.torch_step(params, grads)
        for case, opt in cases.items():
            if self.wanted(f"optim: {case}"):
                ours = optim_bench.ptfunc_step(opt, params, grads, inplace=True)
                self.timed(
                    "optim", case, ours, peer, "torch.optim", warmup=2,
                    repeats=max(5, self.args.repeats),
                )  # fmt: skip

    def vmap_rows(self) -> None:
        names = ("ensemble forward", "ensemble forward+grad", "ensemble train", "per-example")
        if not self.any_wanted(f"vmap: {n}" for n in names):
            return
        built = research_bench.cases(self.args.quick, device=self.device)
        print(f"vmap: {next(built)}", flush=True)
        for name, ours, loop, check in built:
            self.timed("vmap", name, ours, loop, "python loop", note=check)


_TOK_KINDS = ("per-text / 1.0 Python", "per-text / Rust per-text", "batched / Rust batched")


def _bert_tokenizers(fx: Path) -> tuple[Any, Any, Any]:
    from ptfunc.tokenize import BertTokenizer

    transformers = _models.quiet_transformers()
    vocab = fx / "bert-base-uncased" / "vocab.txt"
    rust = transformers.PreTrainedTokenizerFast(
        tokenizer_file=str(fx / "bert-base-uncased" / "tokenizer.json")
    )
    slow = _models.pytorch_transformers().BertTokenizer(str(vocab), do_lower_case=True)
    return BertTokenizer(vocab, do_lower_case=True), slow, rust


def _gpt2_tokenizers(fx: Path) -> tuple[Any, Any, Any]:
    from ptfunc.tokenize import GPT2Tokenizer

    transformers = _models.quiet_transformers()
    vocab, merges = fx / "gpt2" / "encoder.json", fx / "gpt2" / "vocab.bpe"
    rust = transformers.GPT2Tokenizer(
        str(fx / "gpt2" / "hf-whisper" / "vocab.json"),
        str(fx / "gpt2" / "hf-whisper" / "merges.txt"),
    )
    slow = _models.pytorch_transformers().GPT2Tokenizer(str(vocab), str(merges))
    return GPT2Tokenizer(vocab, merges), slow, rust


def _xlnet_tokenizers(fx: Path) -> tuple[Any, Any, Any]:
    from ptfunc.tokenize import XLNetTokenizer

    transformers = _models.quiet_transformers()
    spiece = fx / "xlnet-base-cased" / "spiece.model"
    rust = transformers.XLNetTokenizerFast(
        tokenizer_file=str(fx / "xlnet-base-cased" / "tokenizer.json")
    )
    slow = _models.pytorch_transformers().XLNetTokenizer(str(spiece))
    return XLNetTokenizer(spiece), slow, rust


_TOKENIZERS = {"bert": _bert_tokenizers, "gpt2": _gpt2_tokenizers, "xlnet": _xlnet_tokenizers}


def _pct(x: float | None) -> str:
    return "" if x is None else f"{x:.0%}"


def format_rows(rows: list[SuiteRow]) -> str:
    headers = ["case", "ptfunc", "reference", "unit", "ratio", "spread"]
    headers += ["roof ours", "roof ref", "peer", "check"]
    cells = [
        [
            r.label, f"{r.ours:,.1f}", f"{r.peer:,.1f}", r.unit, f"{r.ratio:.3f}",
            f"{r.spread:.0%}", _pct(r.roof_ours), _pct(r.roof_peer), r.peer_name, r.note,
        ]
        for r in rows
    ]  # fmt: skip
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    right = {1, 2, 4, 5, 6, 7}

    def fmt(line: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths))
        ).rstrip()

    return "\n".join([fmt(headers), "  ".join("-" * w for w in widths), *map(fmt, cells)])


def train_optimizer() -> optim.GradientTransformation:
    """The step the train rows time: global-norm clipping at 1.0, then ``adamw_torch``."""
    return optim.chain(optim.clip_by_global_norm(1.0), optim.adamw_torch(1e-5, weight_decay=0.01))


def ptfunc_train_step(
    pair: _models.Pair, ids, mask, labels
) -> tuple[Callable[[], torch.Tensor], dict]:  # noqa: ANN001, E501
    """ptfunc's step on a copy of the pair's params: grad of the loss, then
    :func:`train_optimizer` in place; returns ``(step, box)``, ``box`` holding the current
    ``params`` and optimizer ``state``."""
    opt = train_optimizer()
    box = {"params": ptfunc.tree.map(torch.clone, pair.params)}
    box["state"] = opt.init(box["params"])
    grad_fn = ptfunc.func.grad_and_value(pair.loss_ours)

    def ours() -> torch.Tensor:
        grads, loss = grad_fn(box["params"], ids, mask, labels)
        box["params"], box["state"] = optim.step(
            opt, grads, box["state"], box["params"], inplace=True
        )
        return loss

    return ours, box


def reference_train_step(pair: _models.Pair, ids, mask, labels) -> Callable[[], torch.Tensor]:  # noqa: ANN001
    """transformers' step on a copy of the pair's module (the step changes its weights):
    zero_grad, forward, backward, ``clip_grad_norm_(1.0)``,
    ``torch.optim.AdamW(fused=True).step()``; returns the loss."""
    ref = copy.deepcopy(pair.ref)
    ref_opt = torch.optim.AdamW(ref.parameters(), lr=1e-5, weight_decay=0.01, fused=True)

    def peer() -> torch.Tensor:
        ref_opt.zero_grad(set_to_none=True)
        loss = ref(ids, labels=labels, **pair._kw(mask)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ref.parameters(), 1.0)
        ref_opt.step()
        return loss

    peer.module, peer.optimizer = ref, ref_opt  # type: ignore[attr-defined]
    return peer


def _tree_bytes(tree_: Any) -> int:
    """Bytes of the distinct tensor storages among a tree's leaves."""
    storages = {}
    for t in ptfunc.tree.leaves(tree_):
        if isinstance(t, torch.Tensor):
            st = t.untyped_storage()
            storages[st.data_ptr()] = st.nbytes()
    return sum(storages.values())


def mode_name(options: dict) -> str:
    return f"torch.compile mode={options.get('mode', 'default')}"


def all_labels(args: argparse.Namespace) -> list[str]:
    b, s = args.points[1] if len(args.points) > 1 else args.points[0]
    labels = [
        f"{a}: {k} {pb}x{ps}" for a in ARCHS for pb, ps in args.points for k in ("fwd", "fwd+bwd")
    ]
    labels += [f"train: {a} {b}x{s} adamw" for a in ARCHS]
    p, n = GENERATE_QUICK if args.quick else GENERATE
    labels.append(f"generate: gpt2 greedy 1x{p}+{n}")
    cb, cs = COMPILE_POINT
    labels += [f"compile: {a} fwd {cb}x{cs}" for a in ("bert", "gpt2")]
    labels += [f"compile: train {a} {b}x{s} adamw" for a in ("bert", "gpt2")]
    labels.append(f"compile: generate gpt2 greedy 1x{p}+{n}")
    labels += [f"memory: {a} fwd+bwd {b}x{s} peak tensor bytes" for a in ARCHS]
    labels += [f"memory: {a} train step {b}x{s} peak tensor bytes" for a in ARCHS]
    labels += [f"tokenize: {t} {k}" for t in _TOKENIZERS for k in _TOK_KINDS]
    labels += ["optim: optim.step(adamw_torch) inplace / AdamW(fused)"]
    labels += ["optim: optim.step(adamw, 1.0, fused=True) inplace / AdamW(fused)"]
    vmap = ("ensemble forward", "ensemble forward+grad", "ensemble train step", "per-example grads")
    labels += [f"vmap: {n}" for n in vmap]
    return labels


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        print("\n".join(all_labels(args)))
        return 0
    if args.device == "cuda" and not torch.cuda.is_available():
        print("suite: skipped, --device cuda asked for but torch.cuda.is_available() is False")
        return 0
    if args.device == "cpu" and args.dtype == "float16":
        print("suite: skipped, float16 is a GPU dtype here (CPU float16 matmuls are emulated)")
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    info = machine(args)
    print(
        f"{info['cpu']}, {info['cores']} cores, {info['threads']} threads; torch {info['torch']}, "
        f"transformers {info['transformers']}, ptfunc {info['ptfunc']}; {args.device} {args.dtype}"
        + (f" ({info['gpu']})" if "gpu" in info else "")
    )
    print(
        f"{'tiny configs (--quick)' if args.quick else 'base-size configs'}; points "
        f"{', '.join(f'{b}x{s}' for b, s in args.points)}; median of {args.repeats} interleaved "
        f"repeats after {args.warmup} warm-up call(s); load average {info['loadavg_start']}",
        flush=True,
    )
    suite = Suite(args)
    for arch in ARCHS:
        suite.model_rows(arch)
    suite.train_rows()
    suite.generate_rows()
    suite.compile_rows()
    suite.memory_rows()
    suite.train_memory_rows()
    suite.tokenizer_rows()
    suite.optim_rows()
    suite.vmap_rows()
    if hasattr(os, "getloadavg"):
        info["loadavg_end"] = list(os.getloadavg())
    print()
    print(format_rows(suite.rows))
    print()
    print("ratio = ptfunc / reference (time, or bytes for memory rows; < 1: ptfunc cheaper);")
    print("roof = model FLOPs / time / GEMM rate measured in this run at the model's matmul sizes.")
    if suite.rows and any(r.roof_ours is not None for r in suite.rows) and args.device == "cuda":
        print(
            "On CUDA the roof columns are the model-FLOPs utilisation (MFU) of the measured GEMM."
        )
    if args.json:
        payload = dict(
            machine=info,
            args=dict(
                quick=args.quick, only=args.only, repeats=args.repeats, warmup=args.warmup,
                points=[f"{b}x{s}" for b, s in args.points],
            ),
            gemm_gflops={k: v / 1e9 for k, v in suite.gemm.items()},  # per row
            rows=[dict(asdict(r), label=r.label, ratio=r.ratio) for r in suite.rows],
        )  # fmt: skip
        args.json.write_text(json.dumps(payload, indent=1))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
