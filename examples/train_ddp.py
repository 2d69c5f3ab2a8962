"""Train a small BERT classifier over several processes: data parallel or sharded.

Launch it with ``torchrun`` (gloo on CPU, nccl when CUDA is available)::

    torchrun --standalone --nproc_per_node=2 examples/train_ddp.py --max-steps 200 --out /tmp/ddp
    torchrun --standalone --nproc_per_node=2 examples/train_ddp.py --sharded --out /tmp/zero
    torchrun --standalone --nproc_per_node=2 examples/train_ddp.py --sharded --out /tmp/zero \
        --max-steps 300 --resume                      # continue from the latest checkpoint
    python examples/train_ddp.py --max-steps 200      # one process, same numbers

Each step takes a *global* batch of ``--batch`` examples, a function of the step alone;
rank ``r`` of ``w`` computes the gradient on rows ``r*B/w .. (r+1)*B/w - 1``:

* data parallel (default): every rank holds the params and AdamW state; gradients are
  averaged with ``ptfunc.distributed.allreduce_grads`` (bucketed all-reduce);
* ``--sharded``: every rank keeps 1/w of each leaf and of the AdamW state; the params are
  all-gathered for the step and the gradients reduce-scattered back to pieces; global-norm
  clipping all-reduces the norm (``ptfunc.distributed.clip_by_global_norm``).

Dropout is drawn per example from ``fold_in(fold_in(key, step), global_index)`` (a
``vmap`` over the examples), so the masks do not depend on how the batch is split and
``w`` processes give the params of one process on the whole batch (up to float
summation order; ``tests/test_distributed.py`` checks 1e-6).

Checkpoints go to ``<out>/checkpoints/step-<s>`` every ``--save-steps`` and at the end:
one ``ptfunc.train_state`` file (data parallel, written by rank 0) or a sharded directory
(``ptfunc.distributed.save_sharded``: one file per rank plus ``index.json``). The final
params are also written whole (gathered, by rank 0) to ``<out>/model.safetensors`` with
``config.json``. ``--resume`` continues bit for bit (with the same ``--max-steps``; a
larger one stretches the learning-rate schedule). ``ptfunc.distributed.consolidate``
turns a sharded checkpoint into a full params tree in one process.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # run from a checkout, uninstalled
import ptfunc  # noqa: E402
from ptfunc import distributed as ptd  # noqa: E402
from ptfunc import optim, random  # noqa: E402
from ptfunc.archs import bert  # noqa: E402
from ptfunc.train_state import load_train_state, save_train_state  # noqa: E402

PAD, CLS, NEEDLE = 0, 1, 2  # ordinary tokens are 3 .. vocab_size - 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--max-steps", type=int, default=200)
    p.add_argument("--batch", type=int, default=16, help="global batch (all ranks together)")
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=2)
    p.add_argument("--vocab", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=12)
    p.add_argument("--train-size", type=int, default=512)
    p.add_argument("--sharded", action="store_true", help="shard params and optimizer state")
    p.add_argument("--bucket-mb", type=float, default=25.0, help="all-reduce bucket size (MiB)")
    add_run_args(p, lr=1e-3)
    return parse_run_args(p, argv)


def add_run_args(p: argparse.ArgumentParser, *, lr: float) -> None:
    """The options every distributed example shares: the optimizer's schedule, the seed,
    checkpointing and the process set-up (``train_fsdp.py`` uses them too)."""
    p.add_argument("--lr", type=float, default=lr)
    p.add_argument("--warmup-steps", type=int, default=5)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--clip", type=float, default=1.0, help="global-norm clipping (0: off)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="output directory (default: none)")
    p.add_argument("--save-steps", type=int, default=0, help="checkpoint every N steps (0: end)")
    p.add_argument("--resume", action="store_true", help="continue from <out>/checkpoints")
    p.add_argument("--backend", default="auto", choices=["auto", "gloo", "nccl"])
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads per process")
    p.add_argument("--quiet", action="store_true")


def parse_run_args(p: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse, and refuse ``--resume`` without ``--out``."""
    args = p.parse_args(argv)
    if args.resume and args.out is None:
        p.error("--resume needs --out")
    return args


# -- model, data and loss: functions of the arguments alone (the tests import them) --------


def make_config(args: argparse.Namespace) -> bert.BertConfig:
    return bert.BertConfig(
        vocab_size=args.vocab,
        hidden_size=args.hidden,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        intermediate_size=2 * args.hidden,
        max_position_embeddings=max(32, args.seq_len),
        num_labels=2,
    )


def make_data(n: int, seq_len: int, vocab: int, gen: torch.Generator):
    """``n`` needle-task examples: ids (n, seq_len) int64, mask (n, seq_len), labels (n,)."""
    ids = torch.randint(NEEDLE + 1, vocab, (n, seq_len), generator=gen)
    ids[:, 0] = CLS
    lengths = torch.randint(seq_len // 2, seq_len + 1, (n,), generator=gen)
    labels = (torch.arange(n) % 2)[torch.randperm(n, generator=gen)]
    where = 1 + (torch.rand(n, generator=gen) * (lengths - 1)).long()
    rows = labels.nonzero().squeeze(1)
    ids[rows, where[rows]] = NEEDLE
    mask = (torch.arange(seq_len)[None, :] < lengths[:, None]).long()
    return ids * mask, mask, labels


def datasets(args: argparse.Namespace):
    """(train, held-out) tuples of (ids, mask, labels); the same on every rank."""
    gen = torch.Generator().manual_seed(args.seed)
    train = make_data(args.train_size, args.seq_len, args.vocab, gen)
    held_out = make_data(256, args.seq_len, args.vocab, gen)
    return train, held_out


def global_batch_indices(step: int, args: argparse.Namespace) -> torch.Tensor:
    """Indices of step ``step``'s global batch: a reshuffle per epoch, seeded by the epoch."""
    per_epoch = args.train_size // args.batch
    epoch, i = divmod(step, per_epoch)
    order = torch.randperm(args.train_size, generator=torch.Generator().manual_seed(1000 + epoch))
    return order[i * args.batch : (i + 1) * args.batch]


def example_loss(model, params, ids, mask, label, key):
    """Loss of one example (ids (T,), mask (T,), label ()), dropout drawn from ``key``."""
    out = model.apply(
        params, ids[None], attention_mask=mask[None], labels=label[None], train=True, key=key
    )
    return out.loss


def batch_loss(model, params, ids, mask, labels, positions, step_key):
    """Mean loss over a batch; example ``j`` draws dropout from ``fold_in(step_key, positions[j])``
    (its position in the global batch), so the split over ranks does not change the masks."""
    keys = torch.vmap(random.fold_in, in_dims=(None, 0))(step_key, positions)
    losses = torch.vmap(
        lambda i, m, y, k: example_loss(model, params, i, m, y, k), randomness="error"
    )(ids, mask, labels, keys)
    return losses.mean()


def make_optimizer(args: argparse.Namespace, clip: optim.GradientTransformation | None):
    schedule = optim.schedules.warmup_linear(args.warmup_steps, args.max_steps)
    adamw = optim.adamw_torch(
        args.lr, weight_decay=args.weight_decay, schedule=schedule, mask=optim.no_decay_mask
    )
    return optim.chain(clip, adamw) if clip is not None else adamw


# -- the distributed run -------------------------------------------------------------------


def setup(args: argparse.Namespace) -> torch.device:
    """Join the process group when launched by torchrun; pick the device."""
    torch.set_num_threads(args.threads)
    use_cuda = torch.cuda.is_available() and args.backend != "gloo"
    if "RANK" in os.environ and not dist.is_initialized():
        backend = args.backend if args.backend != "auto" else ("nccl" if use_cuda else "gloo")
        if use_cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group(backend)
    if use_cuda:
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def checkpoint_dir(args: argparse.Namespace) -> Path:
    return args.out / "checkpoints"


def latest_checkpoint(args: argparse.Namespace) -> tuple[Path, int] | None:
    folder = checkpoint_dir(args)
    found = []
    for path in folder.glob("step-*") if folder.is_dir() else []:
        match = re.fullmatch(r"step-(\d+)(\.safetensors)?", path.name)
        if match and (path.suffix or (path / ptd.checkpoint.INDEX_NAME).is_file()):
            found.append((int(match.group(1)), path))
    return (max(found)[1], max(found)[0]) if found else None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = setup(args)
    rank, world = ptd.rank(), ptd.world_size()
    say = (
        (lambda *a: print(*a, file=sys.stderr, flush=True))
        if rank == 0 and not args.quiet
        else (lambda *a: None)
    )
    if args.batch % world:
        raise SystemExit(f"--batch {args.batch} must be a multiple of the {world} processes")
    start_time = time.perf_counter()

    config = make_config(args)
    model = bert.BertForSequenceClassification(config)
    init_key, dropout_key = random.split(random.key(args.seed))
    to_device = lambda tree: ptfunc.tree.map(lambda x: x.to(device), tree)  # noqa: E731
    params = ptd.broadcast_params(to_device(model.init(init_key)))
    (train_ids, train_mask, train_labels), held_out = datasets(args)
    bucket_bytes = int(args.bucket_mb * 2**20)

    if args.sharded:
        layout = ptd.ShardLayout.of(params, world)
        state = ptd.shard_params(params, layout, rank)  # the only copy of the params we keep
        del params
        clip = ptd.clip_by_global_norm(args.clip) if args.clip else None
    else:
        state = params
        clip = optim.clip_by_global_norm(args.clip) if args.clip else None
    opt = make_optimizer(args, clip)
    opt_state = opt.init(state)
    step = 0
    found = latest_checkpoint(args) if args.resume else None
    if found is not None:
        path, step = found
        if args.sharded:
            loaded = ptd.load_sharded(path, state, opt_state, device=device)
        else:
            loaded = load_train_state(path, state, opt_state, device=device)
        state, opt_state, step = loaded.params, loaded.opt_state, loaded.step
        say(f"resumed from {path} at step {step}")

    def full_params(state):
        return (
            ptd.gather_params(state, layout, bucket_bytes=bucket_bytes) if args.sharded else state
        )

    def save(step: int) -> None:
        if args.out is None:
            return
        folder = checkpoint_dir(args)
        if args.sharded:
            ptd.save_sharded(
                folder / f"step-{step}", state, opt_state, layout, step=step, key=dropout_key
            )
            return
        if rank == 0:
            folder.mkdir(parents=True, exist_ok=True)
            save_train_state(
                folder / f"step-{step}.safetensors", state, opt_state, step=step, key=dropout_key
            )
        if world > 1:
            dist.barrier()

    grad_and_loss = ptfunc.func.grad_and_value(
        lambda p, *batch: batch_loss(model, p, *batch), argnums=0
    )
    n_local = args.batch // world
    positions = (rank * n_local + torch.arange(n_local)).to(device)
    log = []
    say(
        f"{'sharded' if args.sharded else 'data parallel'}: {world} process(es), "
        f"{dist.get_backend() if dist.is_initialized() else 'no process group'}, device {device}, "
        f"{ptfunc.tree.size(full_params(state)):,} params, global batch {args.batch}"
    )
    step_times = []
    while step < args.max_steps:
        t0 = time.perf_counter()
        idx = global_batch_indices(step, args)
        batch = (train_ids[idx], train_mask[idx], train_labels[idx])
        ids, mask, labels = (x.to(device) for x in ptd.shard_batch(batch, rank, world))
        step_key = random.fold_in(dropout_key.to(device), step)
        if args.sharded:
            grads, loss = grad_and_loss(full_params(state), ids, mask, labels, positions, step_key)
            grads = ptd.reduce_scatter_grads(grads, layout, bucket_bytes=bucket_bytes)
        else:
            grads, loss = grad_and_loss(state, ids, mask, labels, positions, step_key)
            grads = ptd.allreduce_grads(grads, bucket_bytes=bucket_bytes)
        state, opt_state = optim.step(opt, grads, opt_state, state)
        loss = ptd.allreduce_grads({"loss": loss.detach()})["loss"].item()  # the global mean
        step += 1
        step_times.append(time.perf_counter() - t0)
        log.append({"step": step, "loss": loss})
        if step % 10 == 0 or step == args.max_steps:
            say(f"  step {step:4d}  loss {loss:.4f}  ({1000 * step_times[-1]:.1f} ms/step)")
        if args.save_steps and step % args.save_steps == 0 and step < args.max_steps:
            save(step)
    save(step)

    params = full_params(state)
    ids, mask, labels = (x.to(device) for x in held_out)
    accuracy = (
        (model.apply(params, ids, attention_mask=mask).logits.argmax(-1) == labels)
        .float()
        .mean()
        .item()
    )
    if rank == 0 and args.out is not None:
        ptfunc.io.save(args.out / "model.safetensors", ptfunc.tree.map(lambda x: x.cpu(), params))
        config.to_json_file(args.out / "config.json")
        summary = {
            "world_size": world,
            "sharded": args.sharded,
            "steps": step,
            "held_out_accuracy": accuracy,
            "median_step_s": sorted(step_times)[len(step_times) // 2] if step_times else None,
            "log": log,
        }
        (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    say(
        f"held-out accuracy {accuracy:.3f} (chance 0.5); "
        f"wall {time.perf_counter() - start_time:.1f} s"
    )
    if dist.is_initialized():
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
