"""Train a small Llama (or BERT) over several processes: data parallel, FSDP or FSDP x TP.

Launch it with ``torchrun`` (gloo on CPU, nccl when CUDA is available)::

    torchrun --standalone --nproc_per_node=2 examples/train_fsdp.py --parallel dp --out /tmp/dp
    torchrun --standalone --nproc_per_node=2 examples/train_fsdp.py --parallel fsdp --out /tmp/f
    torchrun --standalone --nproc_per_node=4 examples/train_fsdp.py --parallel 2d --tp 2 \
        --out /tmp/2d --mixed-precision bf16
    torchrun --standalone --nproc_per_node=4 examples/train_fsdp.py --parallel fsdp --out /tmp/f \
        --resume                       # continue a 2-rank run's checkpoint on 4 ranks
    python examples/train_fsdp.py --parallel fsdp --out /tmp/f --resume    # ... or on one

Each step takes a *global* batch of ``--batch`` rows, a function of the step alone (for
``--model llama`` a causal-LM task: every row an arithmetic progression of tokens, start and
stride drawn per row; for ``--model bert`` the needle task of ``train_ddp.py``). The ``dp``
ranks (all of them, or ``world / tp`` for ``2d``) each take ``1/dp`` of the rows:

* ``--parallel dp``: every rank holds the params and AdamW state; the gradients are
  averaged with ``ptfunc.distributed.allreduce_grads``;
* ``--parallel fsdp``: the params and AdamW state are DTensors sharded on a 1-D mesh
  (``fsdp.shard``); ``fsdp.value_and_grad`` gathers one layer at a time (prefetching the
  next), re-gathers for the backward and reduce-scatters each layer's gradient;
* ``--parallel 2d --tp T``: a ``(dp, tp)`` mesh; each leaf is split Megatron-style over the
  ``tp`` ranks (``tensor_parallel.plan_for(model)``) and FSDP-sharded over ``dp`` on another
  dim; the loss runs under the plan's ``TPMode``, which adds the tensor-parallel
  collectives.

``--mixed-precision bf16`` computes in bfloat16 from float32 params (FSDP gathers bfloat16;
gradients are reduced and applied in float32). There is no dropout (Llama has none; BERT's
is set to 0), so ``w`` processes take the steps of one process on the whole batch, up to
float summation order (``tests/test_examples_fsdp.py`` checks 1e-5).

Checkpoints go to ``<out>/checkpoints/step-<s>`` every ``--save-steps`` and at the end, in
DCP format (``ptfunc.distributed.dcp.save`` of a ``TrainState`` whose leaves are DTensors
for ``fsdp`` / ``2d``). DCP reshards on load, so ``--resume`` continues from the latest
checkpoint on any number of ranks (with the same ``--parallel``, ``--max-steps`` and model
flags) and ends at the uninterrupted run's params. The final params are written whole (by
rank 0) to ``<out>/model.safetensors`` with ``config.json`` and ``summary.json`` (losses,
median step time, tokens/s).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling train_ddp.py
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # run from a checkout, uninstalled
from train_ddp import CLS, add_run_args, make_data, parse_run_args  # noqa: E402

import ptfunc  # noqa: E402
from ptfunc import distributed as ptd  # noqa: E402
from ptfunc import optim, random  # noqa: E402
from ptfunc.archs import bert, llama  # noqa: E402
from ptfunc.train_state import TrainState  # noqa: E402

PARALLEL = ("dp", "fsdp", "2d")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="llama", choices=["llama", "bert"])
    p.add_argument("--parallel", default="fsdp", choices=PARALLEL)
    p.add_argument("--tp", type=int, default=2, help="tensor-parallel ranks (--parallel 2d)")
    p.add_argument("--mixed-precision", default="no", choices=["no", "bf16"])
    p.add_argument("--max-steps", type=int, default=100)
    p.add_argument("--batch", type=int, default=8, help="global batch (all dp ranks together)")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=2, help="Llama key-value heads (GQA)")
    p.add_argument("--vocab", type=int, default=64)
    p.add_argument("--seq-len", type=int, default=32)
    add_run_args(p, lr=3e-3)
    args = parse_run_args(p, argv)
    if args.parallel != "2d":
        args.tp = 1
    return args


# -- model, data and loss: functions of the arguments alone (the tests import them) --------


def make_model(args: argparse.Namespace) -> Any:
    """The ptfunc head model: ``LlamaForCausalLM`` or ``BertForSequenceClassification``."""
    if args.model == "bert":
        return bert.BertForSequenceClassification(
            bert.BertConfig(
                vocab_size=args.vocab,
                hidden_size=args.hidden,
                num_hidden_layers=args.layers,
                num_attention_heads=args.heads,
                intermediate_size=2 * args.hidden,
                max_position_embeddings=max(32, args.seq_len),
                hidden_dropout_prob=0.0,
                attention_probs_dropout_prob=0.0,
                num_labels=2,
            )
        )
    return llama.LlamaForCausalLM(
        llama.LlamaConfig(
            vocab_size=args.vocab,
            hidden_size=args.hidden,
            intermediate_size=2 * args.hidden,
            num_hidden_layers=args.layers,
            num_attention_heads=args.heads,
            num_key_value_heads=args.kv_heads,
            max_position_embeddings=max(64, args.seq_len),
        )
    )


def global_batch(step: int, args: argparse.Namespace) -> tuple[torch.Tensor, ...]:
    """Step ``step``'s global batch, a function of ``(seed, step)``; step -1 is held out.

    Llama: ``(ids,)``, (batch, seq_len) int64, row ``i`` = ``1 + (a_i + b_i * t) % (vocab - 1)``
    (the labels are the ids; the model learns to continue the progression). BERT:
    ``(ids, mask, labels)`` of the needle task (``train_ddp.make_data``).
    """
    gen = torch.Generator().manual_seed(1_000_003 * (args.seed + 1) + step)
    if args.model == "bert":
        ids, mask, labels = make_data(args.batch, args.seq_len, args.vocab, gen)
        ids[:, 0] = CLS
        return ids, mask, labels
    n = args.vocab - 1
    start = torch.randint(0, n, (args.batch, 1), generator=gen)
    stride = torch.randint(1, 4, (args.batch, 1), generator=gen)
    return (1 + (start + stride * torch.arange(args.seq_len)) % n,)


def loss_fn(model: Any, params: Any, *batch: torch.Tensor) -> torch.Tensor:
    """Mean loss over a (local) batch: next-token cross-entropy or classification."""
    if len(batch) == 1:
        (ids,) = batch
        return model.apply(params, ids, labels=ids).loss
    ids, mask, labels = batch
    return model.apply(params, ids, attention_mask=mask, labels=labels).loss


def make_optimizer(args: argparse.Namespace) -> optim.GradientTransformation:
    """Global-norm clipping then AdamW (``torch.optim.AdamW``'s rule), warmup then linear decay.

    On DTensor trees ``clip_by_global_norm`` reduces the norm over the mesh.
    """
    schedule = optim.schedules.warmup_linear(args.warmup_steps, args.max_steps)
    adamw = optim.adamw_torch(
        args.lr, weight_decay=args.weight_decay, schedule=schedule, mask=optim.no_decay_mask
    )
    return optim.chain(optim.clip_by_global_norm(args.clip), adamw) if args.clip else adamw


# -- the distributed run -------------------------------------------------------------------


def setup(args: argparse.Namespace) -> torch.device:
    """Join the process group when launched by torchrun (a one-process group otherwise, for
    the DTensor modes); pick the device."""
    torch.set_num_threads(args.threads)
    use_cuda = torch.cuda.is_available() and args.backend != "gloo"
    backend = args.backend if args.backend != "auto" else ("nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    if not dist.is_initialized():
        if "RANK" in os.environ:
            dist.init_process_group(backend)
        elif args.parallel != "dp":  # DTensors need a (here one-process) group
            dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1)
    if use_cuda:
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


class Layout:
    """Where this rank stands: the mesh (None for ``dp``), the dp group, rank and size."""

    def __init__(self, args: argparse.Namespace, device: torch.device) -> None:
        world = ptd.world_size()
        self.mesh = None
        self.dp_group = None  # the default group
        self.dp_rank, self.dp_size = ptd.rank(), world
        if args.parallel == "dp":
            return
        from torch.distributed.device_mesh import init_device_mesh

        if args.parallel == "fsdp":
            self.mesh = init_device_mesh(device.type, (world,), mesh_dim_names=("dp",))
        else:
            if world % args.tp:
                raise SystemExit(f"--tp {args.tp} does not divide the {world} processes")
            shape = (world // args.tp, args.tp)
            self.mesh = init_device_mesh(device.type, shape, mesh_dim_names=("dp", "tp"))
        self.dp_group = self.mesh.get_group("dp")
        self.dp_rank, self.dp_size = self.mesh.get_local_rank("dp"), self.mesh.size(0)


def checkpoint_dir(args: argparse.Namespace) -> Path:
    return args.out / "checkpoints"


def latest_checkpoint(args: argparse.Namespace) -> tuple[Path, int] | None:
    """The complete DCP checkpoint of the highest step in ``<out>/checkpoints``, if any."""
    folder = checkpoint_dir(args)
    found = []
    for path in folder.glob("step-*") if folder.is_dir() else []:
        match = re.fullmatch(r"step-(\d+)", path.name)
        if match and (path / ".metadata").is_file():
            found.append((int(match.group(1)), path))
    return (max(found)[1], max(found)[0]) if found else None


def make_step(args: argparse.Namespace, model: Any, opt: Any, where: Layout):
    """``step(state, opt_state, *local_batch) -> (state, opt_state, local mean loss)``."""
    bf16 = args.mixed_precision == "bf16"

    def loss_of(params: Any, *batch: torch.Tensor) -> torch.Tensor:
        return loss_fn(model, params, *batch)

    if args.parallel == "dp":

        def cast_loss(params: Any, *batch: torch.Tensor) -> torch.Tensor:
            low = ptfunc.tree.map(
                lambda x: x.to(torch.bfloat16) if x.is_floating_point() else x, params
            )
            return loss_of(low, *batch).float()

        grad_and_loss = ptfunc.func.grad_and_value(cast_loss if bf16 else loss_of, argnums=0)

        def step(state, opt_state, *batch):
            grads, loss = grad_and_loss(state, *batch)
            grads = ptd.allreduce_grads(grads)
            state, opt_state = optim.step(opt, grads, opt_state, state)
            return state, opt_state, loss.detach()

        return step

    from ptfunc.distributed import fsdp

    plan = tp_plan(args, model)
    value_and_grad = fsdp.value_and_grad(
        loss_of, param_dtype=torch.bfloat16 if bf16 else None, plan=plan
    )

    def step(state, opt_state, *batch):
        loss, grads = value_and_grad(state, *batch)  # under the plan's TPMode for 2d
        state, opt_state = optim.step(opt, grads, opt_state, state)
        return state, opt_state, loss.detach().float()

    return step


def tp_plan(args: argparse.Namespace, model: Any) -> Any:
    if args.parallel != "2d":
        return None
    from ptfunc.distributed import tensor_parallel

    return tensor_parallel.plan_for(model)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = setup(args)
    rank, world = ptd.rank(), ptd.world_size()
    say = (
        (lambda *a: print(*a, file=sys.stderr, flush=True))
        if rank == 0 and not args.quiet
        else (lambda *a: None)
    )
    where = Layout(args, device)
    if args.batch % where.dp_size:
        raise SystemExit(f"--batch {args.batch} must be a multiple of the {where.dp_size} dp ranks")
    start_time = time.perf_counter()

    model = make_model(args)
    key = random.key(args.seed)
    params = ptfunc.tree.map(lambda x: x.to(device), model.init(key))
    n_params = ptfunc.tree.size(params)
    if args.parallel == "dp":
        state = ptd.broadcast_params(params)
    else:
        from ptfunc.distributed import fsdp

        state = fsdp.shard(params, where.mesh, tp_plan(args, model))
    del params
    opt = make_optimizer(args)
    opt_state = opt.init(state)
    step = 0
    found = latest_checkpoint(args) if args.resume else None
    if found is not None:
        path, _ = found
        like = TrainState(state, opt_state, 0, key, {})
        loaded = ptd.dcp.load(path, like)
        if loaded.extra.get("parallel", args.parallel) != args.parallel:
            raise SystemExit(f"{path} was written by --parallel {loaded.extra['parallel']}")
        state, opt_state, step = loaded.params, loaded.opt_state, loaded.step
        say(f"resumed from {path} at step {step} (written by {loaded.extra.get('world_size')})")

    def save(step: int) -> None:
        if args.out is None:
            return
        extra = {"parallel": args.parallel, "world_size": world, "tp": args.tp}
        ptd.dcp.save(
            checkpoint_dir(args) / f"step-{step}", TrainState(state, opt_state, step, key, extra)
        )

    train_step = make_step(args, model, opt, where)
    n_local = args.batch // where.dp_size
    rows = slice(where.dp_rank * n_local, (where.dp_rank + 1) * n_local)
    say(
        f"{args.parallel} ({world} process(es){f', tp {args.tp}' if args.tp > 1 else ''}), "
        f"{dist.get_backend() if dist.is_initialized() else 'no process group'}, device {device}, "
        f"{args.model} {n_params:,} params, global batch {args.batch} x {args.seq_len}"
        + (", bf16 compute" if args.mixed_precision == "bf16" else "")
    )
    log, step_times = [], []
    while step < args.max_steps:
        t0 = time.perf_counter()
        batch = [x[rows].to(device) for x in global_batch(step, args)]
        state, opt_state, loss = train_step(state, opt_state, *batch)
        if where.dp_size > 1:  # the global mean (the tp ranks of a dp group agree)
            dist.all_reduce(loss, group=where.dp_group)
            loss = loss / where.dp_size
        step += 1
        step_times.append(time.perf_counter() - t0)
        log.append({"step": step, "loss": loss.item()})
        if step % 10 == 0 or step == args.max_steps:
            ms = 1000 * step_times[-1]
            say(f"  step {step:4d}  loss {log[-1]['loss']:.4f}  ({ms:.1f} ms/step)")
        if args.save_steps and step % args.save_steps == 0 and step < args.max_steps:
            save(step)
    save(step)

    if args.parallel == "dp":
        params = state
    else:
        from ptfunc.distributed import fsdp

        params = fsdp.full_params(state)
    if rank == 0:
        held_out = loss_fn(model, params, *(x.to(device) for x in global_batch(-1, args)))
        median = sorted(step_times)[len(step_times) // 2] if step_times else None
        if args.out is not None:
            cpu = ptfunc.tree.map(lambda x: x.detach().cpu(), params)
            ptfunc.io.save(args.out / "model.safetensors", cpu)
            model.config.to_json_file(args.out / "config.json")
            summary = {
                "world_size": world,
                "parallel": args.parallel,
                "tp": args.tp,
                "model": args.model,
                "mixed_precision": args.mixed_precision,
                "steps": step,
                "held_out_loss": held_out.item(),
                "median_step_s": median,
                "tokens_per_s": args.batch * args.seq_len / median if median else None,
                "log": log,
            }
            (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
        say(f"held-out loss {held_out.item():.4f}; wall {time.perf_counter() - start_time:.1f} s")
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
