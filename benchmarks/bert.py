"""BERT: ptfunc against ``transformers`` on the same weights and inputs, in one run.

Usage::

    python benchmarks/bert.py                  # BERT-base, batch 8 x 128, float32, CPU
    python benchmarks/bert.py --quick          # tiny config, a few seconds (smoke test)
    python benchmarks/bert.py --repeats 9 --threads 2 --batch 8 --seq 128
    python benchmarks/bert.py --train          # add a fwd+bwd row with dropout on
    python benchmarks/bert.py --compile        # add torch.compile rows (slow to compile)
    python benchmarks/bert.py --hf-attn eager  # compare with transformers' eager attention

What is compared (ptfunc / transformers, lower is better, target <= 1.0):

* ``forward``: ``BertModel`` in eval mode under ``torch.no_grad()``.
* ``fwd+bwd func.grad``: a sequence-classification loss (``BertForSequenceClassification``
  with labels, dropout off) differentiated w.r.t. all params with ``torch.func.grad``,
  against ``loss.backward()`` on the transformers module.
* ``fwd+bwd autograd``: the same loss, ptfunc params as ``requires_grad`` leaves and
  plain ``loss.backward()``.
* ``fwd+bwd train`` (``--train``): as ``func.grad`` but with dropout on both sides
  (ptfunc draws its masks from explicit keys; outputs differ by design, not checked).
* ``compiled ...`` (``--compile``): both sides under ``torch.compile``.

The transformers weights are loaded into ptfunc with ``ptfunc.io.from_torch_state_dict``,
and every row checks that the two sides agree (max abs diff of the outputs, or of
all gradients), so the times compare the same computation.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from _timing import Row, format_table, time_interleaved

sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # run from a checkout, uninstalled
import ptfunc  # noqa: E402
from ptfunc.archs import bert  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _models import (  # noqa: E402
    BERT_BASE,
    BERT_TINY,
    load_params,
    max_diff,
    named_grads_diff,
    padded_inputs,
)

BASE, TINY = BERT_BASE, BERT_TINY


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=None, help="batch size (default 8; --quick: 2)")
    p.add_argument(
        "--seq", type=int, default=None, help="sequence length (default 128; --quick: 16)"
    )
    p.add_argument("--repeats", type=int, default=None, help="timed repeats per case (default 5)")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls per side first")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch.set_num_threads (default: all cores; --quick: 1)",
    )
    p.add_argument("--quick", action="store_true", help="tiny config: a smoke test")
    p.add_argument("--train", action="store_true", help="add fwd+bwd with dropout on")
    p.add_argument("--compile", action="store_true", help="add torch.compile rows")
    p.add_argument(
        "--hf-attn",
        default="sdpa",
        choices=["sdpa", "eager"],
        help="transformers attn_implementation (default sdpa, its own default)",
    )
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    args.batch = args.batch or (2 if args.quick else 8)
    args.seq = args.seq or (16 if args.quick else 128)
    args.repeats = args.repeats or (3 if args.quick else 5)
    # A tiny model's matmuls are too small to split over threads.
    args.threads = args.threads or (1 if args.quick else os.cpu_count() or 1)
    return args


def fmt_check(diff: float, scale: float | None = None) -> str:
    if scale is None:
        return f"max|d|={diff:.1e}"
    return f"max|d|={diff:.1e} (max|g|={scale:.1e})"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    import transformers

    shape = TINY if args.quick else BASE
    config = bert.BertConfig(**shape, num_labels=2)
    hf_config = transformers.BertConfig(**shape, num_labels=2, attn_implementation=args.hf_attn)

    # One transformers module supplies the weights to both sides.
    hf_cls = transformers.BertForSequenceClassification(hf_config).eval()
    hf_base = hf_cls.bert  # a transformers.BertModel
    cls_model = bert.BertForSequenceClassification(config)
    base_model = bert.BertModel(config)
    # Copies, so that neither side's gradients or in-place updates can reach the other.
    params = load_params(cls_model, hf_cls)
    base_params = params["bert"]

    gen = torch.Generator().manual_seed(args.seed)
    ids, mask, labels = padded_inputs(config.vocab_size, args.batch, args.seq, gen)

    print(
        f"torch {torch.__version__}, transformers {transformers.__version__}, "
        f"ptfunc {ptfunc.__version__}, python {platform.python_version()}"
    )
    print(
        f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch.set_num_threads({torch.get_num_threads()})"
    )
    print(
        f"config: {'tiny (--quick)' if args.quick else 'BERT-base'} {shape}, float32; "
        f"batch {args.batch} x seq {args.seq}, {int(mask.sum())}/{mask.numel()} tokens unpadded"
    )
    print(
        f"transformers attn_implementation={hf_base.config._attn_implementation!r}; "
        f"median of {args.repeats} interleaved repeats after {args.warmup} warm-up call(s)"
    )
    print()

    rows: list[Row] = []

    def case(name: str, ours: Callable[[], Any], peer: Callable[[], Any], check: str) -> None:
        a, b = time_interleaved([ours, peer], repeats=args.repeats, warmup=args.warmup)
        rows.append(Row(name, a, b, check))
        print(
            f"  {name}: ptfunc {a.median * 1e3:.1f} ms, transformers {b.median * 1e3:.1f} ms, "
            f"ratio {a.median / b.median:.3f}",
            flush=True,
        )

    # --- forward, eval, no grad -------------------------------------------------------
    def fwd_ours() -> Any:
        with torch.no_grad():
            return base_model.apply(base_params, ids, attention_mask=mask)

    def fwd_peer() -> Any:
        with torch.no_grad():
            return hf_base(ids, attention_mask=mask)

    o, r = fwd_ours(), fwd_peer()
    d = max(
        max_diff(o.last_hidden_state, r.last_hidden_state),
        max_diff(o.pooler_output, r.pooler_output),
    )
    case("forward (eval, no_grad)", fwd_ours, fwd_peer, fmt_check(d))

    # --- forward + backward, dropout off ----------------------------------------------
    def loss_ours(p: Any, train: bool = False, key: Any = None) -> torch.Tensor:
        out = cls_model.apply(p, ids, attention_mask=mask, labels=labels, train=train, key=key)
        return out.loss

    grad_fn = torch.func.grad(loss_ours)

    def bwd_peer() -> None:
        hf_cls.zero_grad(set_to_none=True)
        hf_cls(ids, attention_mask=mask, labels=labels).loss.backward()

    def to_names(tree: Any) -> dict[str, torch.Tensor]:
        return ptfunc.io.to_torch_state_dict(cls_model, tree, include_tied=False)

    bwd_peer()
    g_func = to_names(grad_fn(params))
    d, scale = named_grads_diff(g_func, hf_cls)
    case("fwd+bwd torch.func.grad", lambda: grad_fn(params), bwd_peer, fmt_check(d, scale))

    leaf_params = ptfunc.tree.map(lambda t: t.detach().clone().requires_grad_(True), params)
    leaves = ptfunc.tree.leaves(leaf_params)

    def bwd_ours_autograd() -> None:
        for t in leaves:
            t.grad = None
        loss_ours(leaf_params).backward()

    bwd_ours_autograd()
    bwd_peer()
    d, scale = named_grads_diff(to_names(ptfunc.tree.map(lambda t: t.grad, leaf_params)), hf_cls)
    case("fwd+bwd autograd .backward()", bwd_ours_autograd, bwd_peer, fmt_check(d, scale))

    # --- forward + backward, dropout on -----------------------------------------------
    if args.train:
        step = iter(range(10**9))
        root = ptfunc.random.key(args.seed)

        def train_ours() -> Any:
            return grad_fn(params, True, ptfunc.random.fold_in(root, next(step)))

        hf_cls.train()
        case("fwd+bwd train (dropout on)", train_ours, bwd_peer, "dropout masks differ")
        hf_cls.eval()

    # --- torch.compile ----------------------------------------------------------------
    if args.compile:
        torch._dynamo.config.cache_size_limit = max(64, torch._dynamo.config.cache_size_limit)
        apply_c = torch.compile(base_model.apply, fullgraph=True)
        hf_base_c = torch.compile(hf_base)

        def cfwd_ours() -> Any:
            with torch.no_grad():
                return apply_c(base_params, ids, attention_mask=mask)

        def cfwd_peer() -> Any:
            with torch.no_grad():
                return hf_base_c(ids, attention_mask=mask)

        print("  compiling forward...", flush=True)
        o, r = cfwd_ours(), cfwd_peer()
        d = max_diff(o.last_hidden_state, r.last_hidden_state)
        case("compiled forward (eval)", cfwd_ours, cfwd_peer, fmt_check(d))

        grad_c = torch.compile(grad_fn)
        hf_cls_c = torch.compile(hf_cls)

        def cbwd_peer() -> None:
            hf_cls.zero_grad(set_to_none=True)
            hf_cls_c(ids, attention_mask=mask, labels=labels).loss.backward()

        print("  compiling fwd+bwd...", flush=True)
        g = to_names(grad_c(params))
        cbwd_peer()
        d, scale = named_grads_diff(g, hf_cls)
        case("compiled fwd+bwd", lambda: grad_c(params), cbwd_peer, fmt_check(d, scale))

    print()
    print(format_table(rows, peer="transformers"))
    print()
    print("ratio = ptfunc median / transformers median (< 1: ptfunc faster);")
    print("spread = (max - min) / median of the noisier side;")
    print("outputs = max abs diff between the two sides (gradients: over all params).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
