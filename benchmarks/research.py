"""ptfunc.research: one ``vmap`` over an ensemble or a batch of examples vs a Python loop.

    python benchmarks/research.py [--repeats 5] [--threads N] [--quick] [--device cpu|cuda]

Rows (ratios of medians ``vmap / loop``, measured interleaved in the same run):

* ``ensemble forward``: ``research.ensemble_apply`` over 8 stacked small BERT classifiers
  vs a loop of 8 ``model.apply`` calls on the same batch (no grad).
* ``ensemble forward+grad``: ``vmap(grad(loss))`` over the 8 members vs a loop of 8
  ``torch.func.grad`` calls.
* ``ensemble train step (adamw)``: ``research.ensemble_step`` vs a loop of
  ``grad`` + ``optim.step`` per member.
* ``per-example grads (batch 32)``: ``research.per_example_grads`` vs a loop of 32
  ``grad`` calls on batches of one.

Each row checks that both sides agree (max abs difference). Under ``vmap`` the attention
takes the explicit (non-fused) path; the loop uses ``scaled_dot_product_attention``.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch
from torch.func import grad

sys.path.insert(0, os.path.dirname(__file__))
from _timing import Row, format_table, time_interleaved  # noqa: E402

import ptfunc  # noqa: E402
from ptfunc import optim, research, tree  # noqa: E402
from ptfunc.archs import bert  # noqa: E402


def _config(quick: bool) -> bert.BertConfig:
    if quick:
        return bert.BertConfig(
            vocab_size=200,
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=32,
            num_labels=2,
        )
    return bert.BertConfig(
        vocab_size=1000,
        hidden_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=512,
        max_position_embeddings=128,
        num_labels=2,
    )


def _max_diff(a, b) -> float:
    fa, fb = tree.to_flat_dict(a), tree.to_flat_dict(b)
    return max(float((fa[n] - fb[n]).abs().max()) for n in fa)


def synced(fn, device: str):
    """``fn`` followed by a device synchronisation (CUDA), so its time is the work's."""
    if device != "cuda":
        return fn

    def run():
        out = fn()
        torch.cuda.synchronize()
        return out

    return run


def cases(quick: bool, members: int = 8, batch: int = 32, device: str = "cpu"):
    """Yield ``(name, vmap_fn, loop_fn, check)`` for each row, built lazily in turn.

    The first item yielded is a one-line description of the setup (a str).
    """
    dev = device
    config = _config(quick)
    seq = 16 if quick else 64
    ens_batch = 4 if quick else 8
    model = bert.BertForSequenceClassification(config)
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(1, config.vocab_size, (ens_batch, seq), generator=gen).to(dev)
    labels = torch.randint(0, 2, (ens_batch,), generator=gen).to(dev)
    stacked = tree.map(
        lambda x: x.to(dev),
        research.init_ensemble(model, members, key=ptfunc.random.key(0)),
    )
    members_list = research.unstack(stacked)
    yield (
        f"BERT hidden {config.hidden_size}, {config.num_hidden_layers} layers, "
        f"{tree.size(members_list[0]) / 1e6:.2f}M params; ensemble of {members} on "
        f"batch {ens_batch} x {seq}; per-example grads on batch {batch} x {seq}"
    )

    def loss(p, x, y):
        return model.apply(p, x, labels=y).loss

    def logits(p, x):
        return model.apply(p, x).logits

    # ensemble forward
    with torch.no_grad():
        got = research.ensemble_apply(logits, stacked, ids)
        want = torch.stack([logits(p, ids) for p in members_list])
        check = f"max diff {float((got - want).abs().max()):.1e}"
    yield (
        f"ensemble forward ({members} members)",
        lambda: research.ensemble_apply(logits, stacked, ids),
        lambda: [logits(p, ids) for p in members_list],
        check,
    )

    # ensemble forward + grad
    def vmapped_grads():
        return torch.func.vmap(grad(loss), in_dims=(0, None, None))(stacked, ids, labels)

    def looped_grads():
        return [grad(loss)(p, ids, labels) for p in members_list]

    check = f"max diff {_max_diff(vmapped_grads(), tree.stack(looped_grads())):.1e}"
    yield (f"ensemble forward+grad ({members})", vmapped_grads, looped_grads, check)

    # ensemble train step
    opt = optim.adamw_torch(1e-3, weight_decay=0.01)
    state = research.init_stacked(opt, stacked)
    member_states = research.unstack(state)

    def vmapped_step():
        return research.ensemble_step(loss, opt, stacked, state, ids, labels)[0]

    def looped_step():
        return [
            optim.step(opt, grad(loss)(p, ids, labels), s, p)[0]
            for p, s in zip(members_list, member_states)
        ]

    check = f"max diff {_max_diff(vmapped_step(), tree.stack(looped_step())):.1e}"
    yield (f"ensemble train step, adamw ({members})", vmapped_step, looped_step, check)

    # per-example gradients
    params = members_list[0]
    pe_ids = torch.randint(1, config.vocab_size, (batch, seq), generator=gen).to(dev)
    pe_labels = torch.randint(0, 2, (batch,), generator=gen).to(dev)

    def batch_loss(p, xy):
        return model.apply(p, xy[0], labels=xy[1]).loss

    def vmapped_pe():
        return research.per_example_grads(batch_loss, params, (pe_ids, pe_labels))

    def looped_pe():
        return [
            grad(batch_loss)(params, (pe_ids[i : i + 1], pe_labels[i : i + 1]))
            for i in range(batch)
        ]

    check = f"max diff {_max_diff(vmapped_pe(), tree.stack(looped_pe())):.1e}"
    yield (f"per-example grads (batch {batch})", vmapped_pe, looped_pe, check)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--batch", type=int, default=32, help="per-example gradients batch")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="tiny config: a smoke test")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = args.device
    built = cases(args.quick, args.members, args.batch, dev)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {dev}; {next(built)}"
    )
    rows = []
    for name, ours, peer, check in built:
        sa, sb = time_interleaved(
            [synced(ours, dev), synced(peer, dev)], repeats=args.repeats, warmup=1
        )
        rows.append(Row(name, sa, sb, check))
        print(f"  {name}: ratio {rows[-1].ratio:.3f} ({check})", flush=True)
    print()
    print(format_table(rows, ours="vmap", peer="loop"))


if __name__ == "__main__":
    main()
