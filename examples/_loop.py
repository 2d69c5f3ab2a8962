"""Shared machinery of the example scripts: common flags, a deterministic batch order,
the optimizer recipe of the seed's examples, a progress printer and a resumable loop.

The example scripts import this file as a sibling module (they put their own directory
on ``sys.path``), so each script stays a plain file a user can copy and edit.

The loop is a pure function of ``(params, opt_state, step, key)`` and the data order:

* the batch of step ``s`` is ``get_batch(s)``, a function of ``s`` alone
  (:class:`Batches` reshuffles each epoch from a generator seeded by ``(seed, epoch)``),
  so the data position of a run is its step and needs no iterator state;
* the dropout key of step ``s`` is split off the running key, which is saved;
* a checkpoint (``ptfunc.train_state``: params, optimizer state, step, key and the data
  position) is written every ``--save-steps`` steps and at the end, as
  ``<output-dir>/checkpoints/step-<s>.safetensors``.

So ``--resume`` (load the latest checkpoint in ``--output-dir``) continues a run bit for bit:
6 steps straight give the same params and losses as 3 steps, a stop, and 3 resumed steps.
Each step's loss is appended to ``<output-dir>/train_log.jsonl`` (``{"step", "loss", "lr"}``);
a resumed run first drops the lines after its checkpoint.

Example (a loss of the params and a batch, no model)::

    >>> import torch, ptfunc
    >>> data = torch.arange(8.0)
    >>> batches = Batches(8, 4, seed=0)
    >>> def loss_fn(params, idx, key):
    ...     return ((params["w"] - data[idx]) ** 2).mean()
    >>> params = {"w": torch.zeros(())}
    >>> out = train(loss_fn, params, ptfunc.optim.sgd(0.1), batches.indices, total_steps=4,
    ...             key=ptfunc.random.key(0), progress=False)
    >>> out.step, len(out.losses)
    (4, 4)
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple, TextIO

import torch
from torch import Tensor

_REPO = Path(__file__).resolve().parents[1]
if str(_REPO) not in sys.path:  # run from a checkout, uninstalled
    sys.path.insert(1, str(_REPO))

import ptfunc  # noqa: E402
from ptfunc import optim  # noqa: E402
from ptfunc.random import Key  # noqa: E402
from ptfunc.train_state import load_train_state, save_train_state  # noqa: E402

__all__ = [
    "add_training_args",
    "add_model_args",
    "load_model",
    "load_tokenizer",
    "set_threads",
    "Batches",
    "num_train_steps",
    "make_optimizer",
    "Progress",
    "checkpoint_path",
    "latest_checkpoint",
    "TrainResult",
    "train",
    "read_log",
    "write_json",
]

CHECKPOINTS = "checkpoints"
LOG_NAME = "train_log.jsonl"


# -- flags -----------------------------------------------------------------------------------


def add_training_args(
    parser: argparse.ArgumentParser,
    *,
    learning_rate: float = 5e-5,
    batch_size: int = 32,
    num_train_epochs: float = 3.0,
    log_every: int = 10,
) -> None:
    """The flags every training example shares (defaults as the seed's examples)."""
    g = parser.add_argument_group("training")
    g.add_argument(
        "--output-dir",
        type=Path,
        required=True,
        help="checkpoints, logs, metrics and the final model go here",
    )
    g.add_argument(
        "--max-steps",
        type=int,
        default=-1,
        help="total optimizer steps; overrides --num-train-epochs when > 0",
    )
    g.add_argument("--num-train-epochs", type=float, default=num_train_epochs)
    g.add_argument("--learning-rate", type=float, default=learning_rate)
    g.add_argument(
        "--warmup-proportion",
        type=float,
        default=0.1,
        help="fraction of the steps with a linearly rising learning rate",
    )
    g.add_argument("--weight-decay", type=float, default=0.0)
    g.add_argument("--adam-epsilon", type=float, default=1e-8)
    g.add_argument("--max-grad-norm", type=float, default=1.0)
    g.add_argument("--batch-size", type=int, default=batch_size)
    g.add_argument("--seed", type=int, default=42)
    g.add_argument(
        "--save-steps", type=int, default=0, help="checkpoint every N steps (0: only at the end)"
    )
    g.add_argument(
        "--resume",
        action="store_true",
        help="continue from the latest checkpoint in --output-dir (bit-exact)",
    )
    g.add_argument(
        "--stop-at-step",
        type=int,
        default=None,
        help="stop (and checkpoint) after this step, as an interrupted run would",
    )
    g.add_argument("--log-every", type=int, default=log_every, help="progress line every N steps")
    g.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    g.add_argument("--quiet", action="store_true", help="no progress lines")


def add_model_args(parser: argparse.ArgumentParser, model_types: tuple[str, ...]) -> None:
    """``--model-type``, ``--model-dir`` / ``--config-json``, ``--tokenizer-dir``."""
    g = parser.add_argument_group("model")
    g.add_argument("--model-type", choices=model_types, default=model_types[0])
    src = g.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--model-dir",
        "--model_name_or_path",
        "--model-name-or-path",
        dest="model_dir",
        help="a pretrained directory (config.json + weights), a pytorch-transformers 1.0 "
        "shortcut name (bert-base-uncased) or a Hub repo id",
    )
    src.add_argument(
        "--config-json",
        type=Path,
        help="a config.json for a randomly initialised model (tests, toys)",
    )
    g.add_argument(
        "--tokenizer-dir",
        "--tokenizer_name",
        "--tokenizer-name",
        dest="tokenizer_dir",
        default=None,
        help="tokenizer directory or name (default: --model-dir)",
    )


def load_model(
    args: argparse.Namespace, constructor: Any, key: Key, **config_overrides: Any
) -> tuple[Any, Any]:
    """``(model, params)`` from ``--model-dir`` (pretrained; missing head params drawn from
    ``key``) or ``--config-json`` (all params drawn from ``key``)."""
    if getattr(args, "model_dir", None) is not None:
        return ptfunc.io.from_pretrained(args.model_dir, constructor, key=key, **config_overrides)
    config = constructor.config_class.from_json_file(args.config_json, **config_overrides)
    model = constructor(config)
    return model, model.init(key)


def load_tokenizer(args: argparse.Namespace, **kwargs: Any) -> Any:
    """The tokenizer of ``--tokenizer-dir`` (default ``--model-dir``), its class read from the
    directory's files (``ptfunc.tokenize.auto``); ``kwargs`` go to its ``from_pretrained``
    (e.g. ``do_lower_case=False``)."""
    from ptfunc.tokenize.auto import load_tokenizer as _load

    directory = args.tokenizer_dir or getattr(args, "model_dir", None)
    if directory is None:
        raise ValueError("--tokenizer-dir is needed with --config-json (no --model-dir)")
    return _load(directory, **kwargs)


# -- data order ------------------------------------------------------------------------------


class Batches:
    """Index batches over ``n`` examples, reshuffled each epoch, addressable by step.

    ``indices(step)`` is a pure function of ``step``: epoch ``e = step // steps_per_epoch``
    is a permutation drawn from a generator seeded with ``(seed, e)``. The last partial
    batch of an epoch is kept (as ``DataLoader(drop_last=False)``).
    """

    def __init__(self, n: int, batch_size: int, *, seed: int, shuffle: bool = True) -> None:
        if n <= 0 or batch_size <= 0:
            raise ValueError(f"need examples and a positive batch size, got n={n}, {batch_size}")
        self.n, self.batch_size, self.seed, self.shuffle = n, batch_size, seed, shuffle
        self.steps_per_epoch = math.ceil(n / batch_size)
        self._cache: tuple[int, Tensor] | None = None

    def _order(self, epoch: int) -> Tensor:
        if self._cache is None or self._cache[0] != epoch:
            if self.shuffle:
                gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
                order = torch.randperm(self.n, generator=gen)
            else:
                order = torch.arange(self.n)
            self._cache = (epoch, order)
        return self._cache[1]

    def indices(self, step: int) -> Tensor:
        """int64 (b,) example indices of step ``step`` (b = batch size, less at epoch end)."""
        epoch, i = divmod(step, self.steps_per_epoch)
        return self._order(epoch)[i * self.batch_size : (i + 1) * self.batch_size]


def num_train_steps(args: argparse.Namespace, steps_per_epoch: int) -> int:
    """``--max-steps`` when positive, else epochs x steps per epoch (at least 1)."""
    if args.max_steps > 0:
        return args.max_steps
    return max(1, int(args.num_train_epochs * steps_per_epoch))


def make_optimizer(args: argparse.Namespace, total_steps: int) -> optim.GradientTransformation:
    """The seed examples' recipe: clip the global grad norm, then AdamW (1.0's, with bias
    correction) on a warmup-linear schedule, no decay on biases and LayerNorm weights."""
    warmup = int(args.warmup_proportion * total_steps)
    adamw = optim.adamw(
        args.learning_rate,
        eps=args.adam_epsilon,
        weight_decay=args.weight_decay,
        schedule=optim.schedules.warmup_linear(warmup, total_steps),
        mask=optim.no_decay_mask,
    )
    if args.max_grad_norm > 0:
        return optim.chain(optim.clip_by_global_norm(args.max_grad_norm), adamw)
    return adamw


# -- progress and files ----------------------------------------------------------------------


class Progress:
    """``step s/total  loss x  lr y  z it/s`` lines on stderr, every ``every`` steps and last."""

    def __init__(self, total: int, *, every: int = 10, stream: TextIO | None = None) -> None:
        self.total, self.every = total, max(1, every)
        self.stream = stream if stream is not None else sys.stderr
        self._t0 = time.perf_counter()
        self._done = 0

    def __call__(self, step: int, loss: float, lr: float | None = None) -> None:
        """Report that step ``step`` (1-based count of steps done) had loss ``loss``."""
        self._done += 1
        if step % self.every and step != self.total:
            return
        rate = self._done / max(time.perf_counter() - self._t0, 1e-9)
        lr_text = f"  lr {lr:.2e}" if lr is not None else ""
        self.stream.write(f"step {step}/{self.total}  loss {loss:.4f}{lr_text}  {rate:.2f} it/s\n")
        self.stream.flush()


def checkpoint_path(output_dir: Path, step: int) -> Path:
    return Path(output_dir) / CHECKPOINTS / f"step-{step:08d}.safetensors"


def latest_checkpoint(output_dir: Path) -> Path | None:
    """The checkpoint of the highest step in ``output_dir/checkpoints``, or None."""
    folder = Path(output_dir) / CHECKPOINTS
    found = [
        (int(m.group(1)), p)
        for p in folder.glob("step-*.safetensors")
        if (m := re.fullmatch(r"step-(\d+)\.safetensors", p.name))
    ]
    return max(found)[1] if found else None


def read_log(output_dir: Path) -> list[dict[str, Any]]:
    """The ``train_log.jsonl`` records of a run (``[]`` when there is none)."""
    path = Path(output_dir) / LOG_NAME
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON (metrics, predictions)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


# -- the loop --------------------------------------------------------------------------------


class TrainResult(NamedTuple):
    """What :func:`train` returns; ``losses`` are ``(step, loss)`` of the steps run here."""

    params: Any
    opt_state: Any
    step: int
    key: Key
    losses: list[tuple[int, float]]


def train(
    loss_fn: Callable[[Any, Any, Key], Tensor],
    params: Any,
    opt: optim.GradientTransformation,
    get_batch: Callable[[int], Any],
    *,
    total_steps: int,
    key: Key,
    output_dir: Path | None = None,
    save_steps: int = 0,
    resume: bool = False,
    stop_at_step: int | None = None,
    log_every: int = 10,
    progress: bool = True,
) -> TrainResult:
    """Run ``total_steps`` steps of ``grad(loss_fn)`` + ``opt``, checkpointing and resuming.

    Args:
        loss_fn: ``loss_fn(params, batch, key) -> 0-d float loss``; ``key`` is this step's
            dropout key.
        params: the initial params tree (the structure a checkpoint is loaded into).
        opt: an ``optim`` transformation; its state starts from ``opt.init(params)``.
        get_batch: ``get_batch(step) -> batch`` for 0-based ``step``, a function of the step
            alone (see :class:`Batches`), so a resumed run reads the same batches.
        total_steps: steps of the whole run (the run ends there).
        key: the run's key; each step splits its dropout key off it.
        output_dir: where checkpoints and ``train_log.jsonl`` go (None: nowhere).
        save_steps: checkpoint every ``save_steps`` steps (0: only the last step).
        resume: start from the latest checkpoint in ``output_dir`` (fresh when none).
        stop_at_step: stop after this step (checkpointed), as if interrupted.
        log_every: progress line every N steps (stderr).
    """
    opt_state = opt.init(params)
    step = 0
    out = Path(output_dir) if output_dir is not None else None
    if resume:
        if out is None:
            raise ValueError("resume needs an output directory to find checkpoints in")
        path = latest_checkpoint(out)
        if path is None:
            print(f"no checkpoint in {out / CHECKPOINTS}; starting from step 0", file=sys.stderr)
        else:
            state = load_train_state(path, params, opt_state)
            params, opt_state, step, key = state.params, state.opt_state, state.step, state.key
            if state.extra.get("data_position", step) != step:
                raise ValueError(f"{path}: data position does not match its step")
            if state.extra.get("total_steps", total_steps) != total_steps:
                print(f"warning: {path} was written by a run of {state.extra['total_steps']} "
                      f"steps, this one has {total_steps}: the schedule differs, so the result "
                      "will not equal an uninterrupted run", file=sys.stderr)  # fmt: skip
            print(f"resumed from {path} at step {step}", file=sys.stderr)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        kept = [r for r in read_log(out) if r["step"] <= step]
        (out / LOG_NAME).write_text("".join(json.dumps(r) + "\n" for r in kept))

    last = total_steps if stop_at_step is None else min(total_steps, stop_at_step)
    grad_and_loss = ptfunc.func.grad_and_value(loss_fn)
    show = Progress(total_steps, every=log_every) if progress else None
    losses: list[tuple[int, float]] = []
    while step < last:
        key, sub = ptfunc.random.split(key)
        grads, loss = grad_and_loss(params, get_batch(step), sub)
        params, opt_state = optim.step(opt, grads, opt_state, params)
        step += 1
        value = float(loss)
        lr = optim.current_lr(opt_state)
        losses.append((step, value))
        if out is not None:
            record = {"step": step, "loss": value, "lr": None if lr is None else float(lr)}
            with open(out / LOG_NAME, "a") as f:
                f.write(json.dumps(record) + "\n")
        if show is not None:
            show(step, value, None if lr is None else float(lr))
        if out is not None and (step == last or (save_steps > 0 and step % save_steps == 0)):
            path = checkpoint_path(out, step)
            path.parent.mkdir(parents=True, exist_ok=True)
            save_train_state(
                path, params, opt_state, step=step, key=key,
                extra={"data_position": step, "total_steps": total_steps},
            )  # fmt: skip
    return TrainResult(params, opt_state, step, key, losses)


def train_from_args(
    args: argparse.Namespace,
    loss_fn: Callable[[Any, Any, Key], Tensor],
    params: Any,
    get_batch: Callable[[int], Any],
    *,
    total_steps: int,
    key: Key,
) -> TrainResult:
    """:func:`train` with the optimizer and options of :func:`add_training_args`'s flags."""
    return train(
        loss_fn, params, make_optimizer(args, total_steps), get_batch,
        total_steps=total_steps, key=key, output_dir=args.output_dir,
        save_steps=args.save_steps, resume=args.resume, stop_at_step=args.stop_at_step,
        log_every=args.log_every, progress=not args.quiet,
    )  # fmt: skip


def set_threads(args: argparse.Namespace) -> None:
    """Apply ``--threads`` (tiny models run fastest on one thread)."""
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
