"""One optimizer update over a BERT-base-sized params tree: ptfunc against torch.optim.

    python benchmarks/optim.py [--repeats 7] [--threads N] [--quick]

Rows (ratios of medians, measured interleaved in the same run):

* ``optim.step(adamw_torch, ..., inplace=True)`` (the training-loop form) / ``AdamW(foreach=True)``
* ``update(inplace=True)`` + ``apply_updates(inplace=True)`` (the optax form) / the same
* ``optim.step`` functional (new buffers every step, differentiable) / ``AdamW(foreach=True)``
* ``adamw`` (1.0 AdamW, inplace) / ``torch.optim.AdamW(foreach=True)``
* ``bert_adam`` (inplace) / ``torch.optim.AdamW(foreach=True)`` (BertAdam clips per tensor)
* per-leaf reference ``adamw_torch`` / ``torch.optim.AdamW(foreach=False)``

Rows marked inplace refill a grads buffer each step (grads are donated); torch's rows
refill ``.grad`` the same way.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
from _models import BERT_BASE, BERT_TINY  # noqa: E402
from _timing import Row, format_table, time_interleaved  # noqa: E402

import ptfunc  # noqa: E402
from ptfunc import optim, tree  # noqa: E402
from ptfunc.archs import bert  # noqa: E402


def bert_params(quick: bool):
    """A BERT-base params tree (110M floats, 199 leaves), or a tiny one for ``quick``."""
    return bert.BertModel(bert.BertConfig(**(BERT_TINY if quick else BERT_BASE))).init(
        ptfunc.random.key(0)
    )


def random_grads(params):
    g = torch.Generator().manual_seed(1)
    return tree.map(lambda p: torch.randn(p.shape, generator=g) * 1e-3, params)


def torch_step(params, grads, foreach: bool, copy_grads: bool = False):
    """A ``torch.optim.AdamW`` step over copies of ``params`` with ``grads`` as ``.grad``.

    ``copy_grads`` refills ``.grad`` from ``grads`` before each step (as backward would).
    """
    ps = [p.clone().requires_grad_() for p in tree.leaves(params)]
    for p, gr in zip(ps, tree.leaves(grads)):
        p.grad = gr.clone()
    opt = torch.optim.AdamW(ps, lr=1e-4, weight_decay=0.01, foreach=foreach)
    if not copy_grads:
        return opt.step
    grad_list = [p.grad for p in ps]
    grad_leaves = tree.leaves(grads)

    def run():
        torch._foreach_copy_(grad_list, grad_leaves)
        opt.step()

    return run


def ptfunc_step(opt, params, grads, inplace: bool, fused: bool = True):
    """A ``ptfunc.optim`` step over copies of ``params`` (``optim.step`` or update + apply)."""
    box = {"params": tree.map(torch.clone, params)}
    box["state"] = opt.init(box["params"])
    buffer = tree.map(torch.clone, grads)
    buffer_leaves = tree.leaves(buffer)
    grad_leaves = tree.leaves(grads)

    def step():
        # grads are donated under inplace=True: refill a preallocated buffer each step,
        # as backward refills .grad in a training loop (torch is charged the same copy).
        if inplace:
            torch._foreach_copy_(buffer_leaves, grad_leaves)
        gr = buffer if inplace else grads
        if fused:
            box["params"], box["state"] = optim.step(
                opt, gr, box["state"], box["params"], inplace=inplace
            )
        else:
            updates, box["state"] = opt.update(gr, box["state"], box["params"], inplace=inplace)
            box["params"] = optim.apply_updates(box["params"], updates, inplace=inplace)

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="tiny tree: a smoke test")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    params = bert_params(args.quick)
    leaves = tree.leaves(params)
    grads = random_grads(params)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; params tree: "
        f"{len(leaves)} leaves, {tree.size(params) / 1e6:.1f}M floats"
    )

    def torch_step_(foreach: bool, copy_grads: bool = False):
        return torch_step(params, grads, foreach, copy_grads)

    def ours(opt, inplace: bool, fused: bool = True):
        return ptfunc_step(opt, params, grads, inplace, fused)

    adamw_torch = optim.adamw_torch(lr=1e-4, weight_decay=0.01)
    torch_foreach = torch_step_(True, copy_grads=True)
    cases = [
        (
            "optim.step(adamw_torch) inplace / AdamW(foreach)",
            ours(adamw_torch, True),
            torch_foreach,
        ),
        (
            "adamw_torch update+apply inplace / AdamW(foreach)",
            ours(adamw_torch, True, fused=False),
            torch_foreach,
        ),
        (
            "optim.step(adamw_torch) functional / AdamW(foreach)",
            ours(adamw_torch, False),
            torch_step_(True),
        ),
        (
            "optim.step(adamw, 1.0) inplace / AdamW(foreach)",
            ours(optim.adamw(lr=1e-4, weight_decay=0.01), True),
            torch_foreach,
        ),
        (
            "optim.step(bert_adam) inplace / AdamW(foreach)",
            ours(optim.bert_adam(lr=1e-4, warmup=0.1, t_total=1000), True),
            torch_foreach,
        ),
        (
            "per-leaf reference functional / AdamW(for-loop)",
            ours(optim.adamw_torch(lr=1e-4, weight_decay=0.01, reference=True), False),
            torch_step_(False),
        ),
    ]
    rows = []
    for name, a, b in cases:
        sa, sb = time_interleaved([a, b], repeats=args.repeats, warmup=2)
        rows.append(Row(name, sa, sb))
        print(f"  {name}: ratio {rows[-1].ratio:.3f}", flush=True)
    print()
    print(format_table(rows, peer="torch.optim"))


if __name__ == "__main__":
    main()
