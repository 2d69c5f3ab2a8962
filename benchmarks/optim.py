"""One optimizer step over a BERT-base and a GPT-2-small params tree: ptfunc against
``torch.optim.AdamW(fused=True)``, the strongest peer (transformers' Trainer default).

    python benchmarks/optim.py [--repeats 7] [--threads N] [--quick] [--check]
        [--trees bert,gpt2] [--dtypes float32,bfloat16]

Each case times two callables interleaved in the same run (medians of ``--repeats``);
the table prints both and their ratio. Per tree and dtype (bf16 params keep bf16 moments,
as torch's fused AdamW does):

* ``step(adamw_torch) inplace / AdamW(fused)``: the training-loop form; target <= 1.05
* ``step(adamw 1.0, fused=True) inplace / AdamW(fused)``: target <= 1.05
* ``step(bert_adam / openai_adam, fused=True) inplace / AdamW(fused)``: target <= 1.15
* the same three rules with their exact (default, foreach) 1.0 / 0.6.2 op order: no target
* ``optax form / step inplace``: ``update`` + ``apply_updates`` returning new trees, against
  ptfunc's own in-place step; target <= 1.3
* ``step(chain(clip, adamw_torch)) / (step(adamw_torch) + one norm pass)``: what global-norm
  clipping adds, against one ``torch._foreach_norm`` pass over the grads; target <= 1.05
* ``step(chain(clip, adamw_torch)) / (clip_grad_norm_ + AdamW(fused))``: the recipe, no target

In-place rows refill a preallocated grads buffer each step (grads are donated); torch's
rows refill ``.grad`` the same way. ``--check`` exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

import torch

sys.path.insert(0, os.path.dirname(__file__))
from _models import BERT_BASE, BERT_TINY  # noqa: E402
from _timing import Row, format_table, time_interleaved  # noqa: E402

import ptfunc  # noqa: E402
from ptfunc import optim, tree  # noqa: E402
from ptfunc.archs import bert, gpt2  # noqa: E402

GPT2_SMALL = dict(vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12)
GPT2_TINY = dict(vocab_size=1000, n_positions=64, n_embd=32, n_layer=2, n_head=2)
LR, WD = 1e-4, 0.01


def make_tree(name: str, quick: bool, dtype: torch.dtype):
    """BERT-base (110M floats, 199 leaves) or GPT-2 small (124M, 148 leaves) params."""
    if name == "bert":
        model = bert.BertModel(bert.BertConfig(**(BERT_TINY if quick else BERT_BASE)))
    else:
        model = gpt2.GPT2Model(gpt2.GPT2Config(**(GPT2_TINY if quick else GPT2_SMALL)))
    return tree.map(lambda p: p.to(dtype), model.init(ptfunc.random.key(0)))


def random_grads(params):
    g = torch.Generator().manual_seed(1)
    return tree.map(lambda p: (torch.randn(p.shape, generator=g) * 1e-3).to(p.dtype), params)


def torch_step(params, grads, *, clip: float = 0.0) -> Callable[[], None]:
    """``AdamW(fused=True).step()`` over copies of ``params``, ``.grad`` refilled first;
    ``clip`` > 0: ``clip_grad_norm_`` before the step (the examples' recipe)."""
    ps = [p.clone().requires_grad_() for p in tree.leaves(params)]
    for p, gr in zip(ps, tree.leaves(grads)):
        p.grad = gr.clone()
    opt = torch.optim.AdamW(ps, lr=LR, weight_decay=WD, fused=True)
    grad_list, grad_leaves = [p.grad for p in ps], tree.leaves(grads)

    def run() -> None:
        torch._foreach_copy_(grad_list, grad_leaves)
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(ps, clip)
        opt.step()

    return run


def ptfunc_step(opt, params, grads, *, inplace: bool, form: str = "step", then=None):
    """A ``ptfunc.optim`` step over copies of ``params``: ``form`` is ``"step"``
    (``optim.step``) or ``"optax"`` (``update`` + ``apply_updates``); ``then`` runs after."""
    box = {"params": tree.map(torch.clone, params)}
    box["state"] = opt.init(box["params"])
    buffer = tree.map(torch.clone, grads)
    buffer_leaves, grad_leaves = tree.leaves(buffer), tree.leaves(grads)

    def run() -> None:
        if inplace:  # donated grads: refill a buffer, as backward refills .grad
            torch._foreach_copy_(buffer_leaves, grad_leaves)
        gr = buffer if inplace else grads
        if form == "step":
            box["params"], box["state"] = optim.step(
                opt, gr, box["state"], box["params"], inplace=inplace
            )
        else:
            updates, box["state"] = opt.update(gr, box["state"], box["params"], inplace=inplace)
            box["params"] = optim.apply_updates(box["params"], updates, inplace=inplace)
        if then is not None:
            then()

    return run


def cases(params, grads) -> list[tuple[str, Callable, Callable, float | None]]:
    """(name, make ptfunc callable, make peer callable, target ratio or None): the callables
    are built just before their case runs (each holds copies of the params and state)."""
    leaves = tree.leaves(grads)

    def ours(opt, inplace=True, **kw):
        return lambda: ptfunc_step(opt, params, grads, inplace=inplace, **kw)

    def fused_peer():
        return torch_step(params, grads)

    adamw_torch = optim.adamw_torch(lr=LR, weight_decay=WD)
    bert_kw = dict(lr=LR, warmup=0.1, t_total=1000, weight_decay=WD)
    openai_kw = dict(lr=LR, warmup=0.1, t_total=1000, weight_decay=WD, max_grad_norm=1.0)
    clipped = optim.chain(optim.clip_by_global_norm(1.0), adamw_torch)
    return [
        ("step(adamw_torch) inplace / AdamW(fused)", ours(adamw_torch), fused_peer, 1.05),
        ("step(adamw 1.0, fused=True) inplace / AdamW(fused)",
         ours(optim.adamw(lr=LR, weight_decay=WD, fused=True)), fused_peer, 1.05),
        ("step(bert_adam, fused=True) inplace / AdamW(fused)",
         ours(optim.bert_adam(**bert_kw, fused=True)), fused_peer, 1.15),
        ("step(openai_adam, fused=True) inplace / AdamW(fused)",
         ours(optim.openai_adam(**openai_kw, fused=True)), fused_peer, 1.15),
        ("step(adamw 1.0, exact) inplace / AdamW(fused)",
         ours(optim.adamw(lr=LR, weight_decay=WD)), fused_peer, None),
        ("step(bert_adam, exact) inplace / AdamW(fused)",
         ours(optim.bert_adam(**bert_kw)), fused_peer, None),
        ("step(openai_adam, exact) inplace / AdamW(fused)",
         ours(optim.openai_adam(**openai_kw)), fused_peer, None),
        ("optax form (update+apply, new trees) / step inplace",
         ours(adamw_torch, inplace=False, form="optax"), ours(adamw_torch), 1.3),
        ("step functional (new trees) / step inplace",
         ours(adamw_torch, inplace=False), ours(adamw_torch), None),
        ("step(chain(clip, adamw_torch)) / (step + 1 norm pass)",
         ours(clipped), ours(adamw_torch, then=lambda: torch._foreach_norm(leaves)), 1.05),
        ("step(chain(clip, adamw_torch)) / (clip_grad_norm_ + AdamW(fused))",
         ours(clipped), lambda: torch_step(params, grads, clip=1.0), None),
    ]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="tiny trees: a smoke test")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    parser.add_argument("--trees", default="bert,gpt2", help="comma-separated: bert, gpt2")
    parser.add_argument("--dtypes", default="float32,bfloat16")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    missed = []
    for tree_name in args.trees.split(","):
        for dtype_name in args.dtypes.split(","):
            dtype = getattr(torch, dtype_name)
            params = make_tree(tree_name, args.quick, dtype)
            grads = random_grads(params)
            title = (f"{tree_name} {dtype_name}: {len(tree.leaves(params))} leaves, "
                     f"{tree.size(params) / 1e6:.1f}M params")  # fmt: skip
            print(f"\n{title}", flush=True)
            rows = []
            for name, make_a, make_b, target in cases(params, grads):
                a, b = make_a(), make_b()
                sa, sb = time_interleaved([a, b], repeats=args.repeats, warmup=2)
                del a, b
                check = "" if target is None else f"<= {target}"
                rows.append(Row(name, sa, sb, check))
                ok = target is None or rows[-1].ratio <= target
                if not ok:
                    missed.append(f"{title}: {name} = {rows[-1].ratio:.3f} > {target}")
                print(f"  {name}: ratio {rows[-1].ratio:.3f} {check}"
                      f"{'' if ok else '  MISSED'}", flush=True)  # fmt: skip
            print(format_table(rows, peer="peer"))
            del params, grads
    if missed:
        print("\ntargets missed:\n  " + "\n  ".join(missed))
    return 1 if (args.check and missed) else 0


if __name__ == "__main__":
    sys.exit(main())
