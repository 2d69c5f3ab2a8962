"""Shared machinery of the example scripts: common flags, a deterministic batch order,
the optimizer recipe of the seed's examples, a progress printer and a resumable loop.

Flags are pytorch-transformers 1.0's, with its meanings and defaults, read with underscores
or hyphens (:class:`ExampleParser`), so the seed README's command lines run as they are:
``--do_train`` / ``--do_eval``, ``--per_gpu_train_batch_size``, ``--gradient_accumulation_steps``,
``--warmup_steps``, ``--overwrite_output_dir``, ``--fp16`` (autocast float16 and a loss scale,
:class:`LossScale`), ``--local_rank`` (data parallel under ``torch.distributed.launch`` /
``torchrun``), ``--no_cuda``. :func:`setup` checks them and sets ``args.device`` and the
process rank; results go to 1.0's ``eval_results.txt`` (:func:`write_eval_results`).

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
import atexit
import functools
import json
import math
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple, TextIO

import torch
import torch.distributed as dist
from torch import Tensor

_REPO = Path(__file__).resolve().parents[1]
if str(_REPO) not in sys.path:  # run from a checkout, uninstalled
    sys.path.insert(1, str(_REPO))

import ptfunc  # noqa: E402
from ptfunc import optim  # noqa: E402
from ptfunc.random import Key  # noqa: E402
from ptfunc.train_state import load_train_state, save_train_state  # noqa: E402

__all__ = [
    "ExampleParser",
    "seed_spellings",
    "add_training_args",
    "add_model_args",
    "setup",
    "to_device",
    "batches",
    "model_source",
    "load_model",
    "load_tokenizer",
    "write_eval_results",
    "fine_tune",
    "default_device",
    "LossScale",
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


def seed_spellings(argv: list[str]) -> list[str]:
    """``--data_dir=x`` -> ``--data-dir=x``: pytorch-transformers 1.0's examples spell their
    flags with underscores; ptfunc's with hyphens. Only the flag name changes, never a
    value (``--output_dir my_dir`` keeps ``my_dir``)."""
    out = []
    for arg in argv:
        if arg.startswith("--") and len(arg) > 2:
            name, eq, value = arg.partition("=")
            arg = name.replace("_", "-") + eq + value
        out.append(arg)
    return out


class ExampleParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` that also reads 1.0's underscore spellings of every flag
    (``--per_gpu_train_batch_size`` is ``--per-gpu-train-batch-size``), so the seed
    README's command lines run verbatim. Prefixes work as in argparse (1.0's README
    writes ``--model_name`` for ``--model_name_or_path``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault(
            "epilog",
            "Every flag may also be written with underscores, as pytorch-transformers 1.0's "
            "examples do (--data_dir is --data-dir).",
        )
        super().__init__(*args, **kwargs)

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        argv = sys.argv[1:] if args is None else list(args)
        return super().parse_known_args(seed_spellings(argv), namespace)


def add_training_args(
    parser: argparse.ArgumentParser,
    *,
    learning_rate: float = 5e-5,
    batch_size: int = 32,
    eval_batch_size: int = 8,
    num_train_epochs: float = 3.0,
    warmup_proportion: float = 0.0,
    log_every: int = 10,
) -> None:
    """The flags every training example shares, with 1.0's names and meanings (defaults
    as the seed's script of the same name: pass them from the script)."""
    g = parser.add_argument_group("training")
    g.add_argument(
        "--output-dir",
        type=Path,
        required=True,
        help="checkpoints, logs, metrics and the final model go here",
    )
    g.add_argument("--do-train", action="store_true", help="fine-tune (then save the model)")
    g.add_argument(
        "--do-eval",
        action="store_true",
        help="evaluate: the model just trained, or without --do-train the model saved in "
        "--output-dir (as 1.0), else --model_name_or_path",
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
        default=warmup_proportion,
        help="fraction of the steps with a linearly rising learning rate",
    )
    g.add_argument(
        "--warmup-steps",
        type=int,
        default=None,
        help="steps of linear warmup (overrides --warmup-proportion), as 1.0's run_glue",
    )
    g.add_argument("--weight-decay", type=float, default=0.0)
    g.add_argument("--adam-epsilon", type=float, default=1e-8)
    g.add_argument("--max-grad-norm", type=float, default=1.0)
    g.add_argument(
        "--batch-size",
        "--per-gpu-train-batch-size",
        "--train-batch-size",
        dest="batch_size",
        type=int,
        default=batch_size,
        help="training examples per process and step (x --gradient-accumulation-steps)",
    )
    g.add_argument(
        "--eval-batch-size",
        "--per-gpu-eval-batch-size",
        dest="eval_batch_size",
        type=int,
        default=eval_batch_size,
    )
    g.add_argument(
        "--gradient-accumulation-steps",
        type=int,
        default=1,
        help="micro-batches whose mean gradient makes one optimizer step",
    )
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
        "--overwrite-output-dir",
        action="store_true",
        help="train into a non-empty --output-dir (its old checkpoints are removed)",
    )
    g.add_argument(
        "--overwrite-cache",
        action="store_true",
        help="accepted for 1.0's command lines; ptfunc caches no features (always fresh)",
    )
    g.add_argument(
        "--stop-at-step",
        type=int,
        default=None,
        help="stop (and checkpoint) after this step, as an interrupted run would",
    )
    g.add_argument(
        "--log-every",
        "--logging-steps",
        dest="log_every",
        type=int,
        default=log_every,
        help="progress line every N steps",
    )
    g.add_argument(
        "--fp16",
        action="store_true",
        help="mixed precision: forward and backward under torch.autocast(float16) with "
        "dynamic loss scaling (what 1.0 asked apex for); params and optimizer stay float32",
    )
    g.add_argument(
        "--fp16-opt-level",
        default="O1",
        help="apex's level: O1 (autocast, the default) is what --fp16 does; O0 is float32",
    )
    g.add_argument(
        "--loss-scale",
        type=float,
        default=0.0,
        help="--fp16 loss scale: 0 is dynamic (1.0's default), > 0 a static scale",
    )
    g.add_argument(
        "--local-rank",
        type=int,
        default=-1,
        help="set by `python -m torch.distributed.launch` (torchrun sets LOCAL_RANK): "
        "data parallel over the launched processes, gradients averaged",
    )
    g.add_argument("--no-cuda", action="store_true", help="run on the CPU even if CUDA is there")
    g.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    g.add_argument("--quiet", action="store_true", help="no progress lines")


def add_model_args(
    parser: argparse.ArgumentParser,
    model_types: tuple[str, ...],
    *,
    default_model: str | None = None,
) -> None:
    """``--model-type``, ``--model-name-or-path`` (``--model-dir``) / ``--config-json``,
    ``--tokenizer-name`` (``--tokenizer-dir``), ``--do-lower-case``, ``--cache-dir``.

    ``default_model``: the model when neither ``--model-name-or-path`` nor
    ``--config-json`` is given (1.0's run_openai_gpt defaults to ``openai-gpt``); without
    it one of the two is required."""
    g = parser.add_argument_group("model")
    g.add_argument("--model-type", choices=model_types, default=model_types[0])
    src = g.add_mutually_exclusive_group(required=default_model is None)
    src.add_argument(
        "--model-dir",
        "--model-name-or-path",
        "--bert-model",
        dest="model_dir",
        default=default_model,
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
        "--tokenizer-name",
        dest="tokenizer_dir",
        default=None,
        help="tokenizer directory or name (default: --model-dir)",
    )
    g.add_argument(
        "--do-lower-case",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="lower-case the text (uncased models), as 1.0's flag: off unless given; 1.0's "
        "shortcut names keep their own casing as 1.0 did (bert-base-uncased lower-cases)",
    )
    g.add_argument("--cache-dir", default=None, help="Hub cache for names (default HF_HOME's)")


def model_source(args: argparse.Namespace) -> str | None:
    """Where the pretrained model comes from (None: a random one from ``--config-json``).

    For an evaluation without training, the model saved in ``--output-dir`` when there is
    one (1.0's run_glue evaluates ``--output_dir``), so ``--do_eval`` after a
    ``--do_train`` run reads the trained model; else ``--model-dir``."""
    out = getattr(args, "output_dir", None)
    if (
        getattr(args, "do_eval", False)
        and not getattr(args, "do_train", True)
        and out is not None
        and (Path(out) / "config.json").is_file()
    ):
        return str(out)
    if getattr(args, "config_json", None) is not None:
        return None
    return getattr(args, "model_dir", None)


def load_model(
    args: argparse.Namespace, constructor: Any, key: Key, **config_overrides: Any
) -> tuple[Any, Any]:
    """``(model, params)`` from :func:`model_source` (pretrained; missing head params drawn
    from ``key``) or ``--config-json`` (all params drawn from ``key``), on ``args.device``."""
    source = model_source(args)
    if source is not None:
        hub = {"cache_dir": args.cache_dir} if getattr(args, "cache_dir", None) else {}
        model, params = ptfunc.io.from_pretrained(
            source, constructor, key=key, **hub, **config_overrides
        )
    else:
        config = constructor.config_class.from_json_file(args.config_json, **config_overrides)
        model = constructor(config)
        params = model.init(key)
    return model, to_device(args, params)


def load_tokenizer(args: argparse.Namespace, **kwargs: Any) -> Any:
    """The tokenizer of ``--tokenizer-dir`` (default: where the model comes from), its class
    read from the directory's files (``ptfunc.tokenize.auto``); ``kwargs`` go to its
    ``from_pretrained``. ``--do-lower-case`` is passed to the tokenizers that take it
    (BERT's, XLNet's), as 1.0's examples pass it."""
    from ptfunc.tokenize.auto import load_tokenizer as _load

    directory = args.tokenizer_dir or model_source(args)
    if directory is None:
        raise ValueError("--tokenizer-dir is needed with --config-json (no --model-dir)")
    if getattr(args, "do_lower_case", None) is not None and "do_lower_case" not in kwargs:
        try:
            return _load(directory, do_lower_case=args.do_lower_case, **kwargs)
        except TypeError as err:
            if "do_lower_case" not in str(err):
                raise
    return _load(directory, **kwargs)


# -- run set-up: device, processes, precision -------------------------------------------------


def setup(args: argparse.Namespace) -> None:
    """Check the run flags and set ``args.device``, ``args.rank``, ``args.world_size`` and
    ``args.is_main``, as 1.0's scripts set ``args.device`` / ``args.n_gpu``.

    * nothing to do (neither ``--do-train`` nor ``--do-eval``) is an error;
    * ``--do-train`` into a non-empty ``--output-dir`` needs ``--overwrite-output-dir``
      or ``--resume`` (1.0's rule);
    * ``--local-rank`` (``torch.distributed.launch``) or ``LOCAL_RANK`` with
      ``WORLD_SIZE`` > 1 (``torchrun``) starts the process group: gloo on the CPU, nccl
      on CUDA; every process trains on its share of each batch;
    * ``--fp16`` with ``--fp16-opt-level`` O1 (autocast), O0 (off); O2 / O3 are refused.
    """
    set_threads(args)
    if not (args.do_train or args.do_eval):
        raise SystemExit("error: nothing to do: pass --do_train and/or --do_eval")
    level = args.fp16_opt_level.upper()
    if level not in ("O0", "O1"):
        raise SystemExit(
            f"error: --fp16_opt_level {args.fp16_opt_level}: ptfunc's --fp16 is apex's O1 "
            "(autocast to float16, float32 weights); O2 / O3 (float16 weights) are not offered"
        )
    args.amp = bool(args.fp16) and level == "O1"
    local_rank = args.local_rank
    if local_rank == -1 and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = default_device(args).type == "cuda"
    if local_rank != -1 and not dist.is_initialized():
        if cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl" if cuda else "gloo")
        # Close the group before the interpreter tears down: a gloo group left to the C++
        # destructors aborts the process ("terminate called without an active exception").
        atexit.register(_close_process_group)
    args.local_rank = local_rank
    args.device = torch.device("cuda", max(local_rank, 0)) if cuda else torch.device("cpu")
    args.rank = dist.get_rank() if dist.is_initialized() else 0
    args.world_size = dist.get_world_size() if dist.is_initialized() else 1
    args.is_main = args.rank == 0
    out = Path(args.output_dir)
    busy = out.is_dir() and any(out.iterdir())
    if args.world_size > 1:  # every process looks before any of them writes
        dist.barrier()
    if args.do_train and busy and not (args.overwrite_output_dir or args.resume):
        raise SystemExit(
            f"error: output directory {out} already exists and is not empty; use "
            "--overwrite_output_dir to train into it anyway or --resume to continue its run"
        )


def default_device(args: argparse.Namespace) -> torch.device:
    """1.0's rule: CUDA when there is one, unless ``--no-cuda``."""
    use_cuda = torch.cuda.is_available() and not getattr(args, "no_cuda", False)
    return torch.device("cuda" if use_cuda else "cpu")


def _close_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def to_device(args: argparse.Namespace, tree: Any) -> Any:
    """``tree`` with every tensor on ``args.device`` (unchanged before :func:`setup`)."""
    device = getattr(args, "device", None)
    if device is None:
        return tree
    return ptfunc.tree.map(lambda x: x.to(device) if isinstance(x, Tensor) else x, tree)


def batches(args: argparse.Namespace, n: int, *, shuffle: bool = True) -> Batches:
    """The training batches of ``n`` examples: ``--batch-size`` per process and micro-batch,
    so ``world_size x batch_size`` examples per micro-batch in all (as 1.0's
    ``DistributedSampler``)."""
    size = args.batch_size * getattr(args, "world_size", 1)
    return Batches(n, size, seed=args.seed, shuffle=shuffle)


def write_eval_results(args: argparse.Namespace, metrics: dict[str, Any]) -> None:
    """``eval_results.txt`` (``name = value`` lines, sorted, as 1.0's scripts write it) and
    ``eval_results.json`` in ``--output-dir``, and the same lines on stdout."""
    lines = "".join(f"{k} = {metrics[k]}\n" for k in sorted(metrics))
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "eval_results.txt").write_text(lines)
    write_json(out / "eval_results.json", metrics)
    print(lines, end="")


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
    """``--max-steps`` when positive, else epochs x optimizer steps per epoch (at least 1);
    an optimizer step takes ``--gradient-accumulation-steps`` of the epoch's batches."""
    if args.max_steps > 0:
        return args.max_steps
    accumulate = max(1, getattr(args, "gradient_accumulation_steps", 1))
    return max(1, int(args.num_train_epochs * (steps_per_epoch // accumulate)))


def make_optimizer(args: argparse.Namespace, total_steps: int) -> optim.GradientTransformation:
    """The seed examples' recipe: clip the global grad norm, then AdamW (1.0's, with bias
    correction) on a warmup-linear schedule, no decay on biases and LayerNorm weights.
    Warmup: ``--warmup-steps`` when given, else ``--warmup-proportion`` of the steps."""
    if getattr(args, "warmup_steps", None) is not None:
        warmup = args.warmup_steps
    else:
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


class LossScale(NamedTuple):
    """Loss scaling of ``--fp16``. Dynamic (apex's defaults): start at 2**16, halve when a
    gradient is not finite, double after 2000 finite steps in a row; static: a fixed
    ``scale`` (``--loss_scale`` > 0). A step with a non-finite gradient is skipped."""

    scale: float = 2.0**16
    good_steps: int = 0
    dynamic: bool = True

    def update(self, finite: bool) -> LossScale:
        if not self.dynamic:
            return self
        if not finite:
            return LossScale(self.scale / 2, 0)
        if self.good_steps + 1 >= 2000:
            return LossScale(self.scale * 2, 0)
        return LossScale(self.scale, self.good_steps + 1)


def _share(batch: Any, rank: int, world: int) -> Any:
    """This process's block of the leading axis of every tensor in ``batch`` (blocks differ
    by at most one row when the batch does not divide; the gradients are averaged)."""
    if world == 1:
        return batch
    return ptfunc.tree.map(lambda x: torch.tensor_split(x, world)[rank], batch)


def _all_finite(grads: Any) -> bool:
    leaves = [g for g in ptfunc.tree.leaves(grads) if g.is_floating_point()]
    if not leaves:
        return True
    norms = torch._foreach_norm(leaves)
    return bool(torch.isfinite(torch.stack(norms)).all())


def _mean_over_processes(value: float, world: int) -> float:
    if world == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t) / world


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
    accumulation_steps: int = 1,
    fp16: bool = False,
    loss_scale: float = 0.0,
) -> TrainResult:
    """Run ``total_steps`` steps of ``grad(loss_fn)`` + ``opt``, checkpointing and resuming.

    Args:
        loss_fn: ``loss_fn(params, batch, key) -> 0-d float loss``; ``key`` is this
            micro-batch's dropout key.
        params: the initial params tree (the structure a checkpoint is loaded into).
        opt: an ``optim`` transformation; its state starts from ``opt.init(params)``.
        get_batch: ``get_batch(i) -> batch`` for the 0-based micro-batch ``i``, a function
            of ``i`` alone (see :class:`Batches`), so a resumed run reads the same batches.
            Step ``s`` reads micro-batches ``s * accumulation_steps`` onwards.
        total_steps: optimizer steps of the whole run (the run ends there).
        key: the run's key; each micro-batch splits its dropout key off it.
        output_dir: where checkpoints and ``train_log.jsonl`` go (None: nowhere). A fresh
            (not resumed) run removes the checkpoints of an earlier run there.
        save_steps: checkpoint every ``save_steps`` steps (0: only the last step).
        resume: start from the latest checkpoint in ``output_dir`` (fresh when none).
        stop_at_step: stop after this step (checkpointed), as if interrupted.
        log_every: progress line every N steps (stderr).
        accumulation_steps: micro-batches per optimizer step; the step's gradient and
            loss are their mean (1.0's ``loss / gradient_accumulation_steps``).
        fp16: the loss under ``torch.autocast(float16)`` with :class:`LossScale`; a step
            with a non-finite gradient leaves params and optimizer state unchanged.
        loss_scale: with ``fp16``, 0 for dynamic scaling, else this static scale.

    Under ``torch.distributed`` (see :func:`setup`) every process takes its block of each
    micro-batch, the gradients are averaged over processes before the (identical) update,
    and only rank 0 writes files.
    """
    world = dist.get_world_size() if dist.is_initialized() else 1
    rank = dist.get_rank() if dist.is_initialized() else 0
    if world > 1:
        params = ptfunc.distributed.broadcast_params(params)
    opt_state = opt.init(params)
    step = 0
    scaler = None
    if fp16:
        scaler = LossScale(loss_scale, dynamic=False) if loss_scale > 0 else LossScale()
    out = Path(output_dir) if output_dir is not None and rank == 0 else None
    if resume:
        if output_dir is None:
            raise ValueError("resume needs an output directory to find checkpoints in")
        path = latest_checkpoint(Path(output_dir))
        if path is None:
            print(f"no checkpoint in {Path(output_dir) / CHECKPOINTS}; starting from step 0",
                  file=sys.stderr)  # fmt: skip
        else:
            state = load_train_state(path, params, opt_state)
            params, opt_state, step, key = state.params, state.opt_state, state.step, state.key
            if state.extra.get("data_position", step) != step:
                raise ValueError(f"{path}: data position does not match its step")
            if state.extra.get("total_steps", total_steps) != total_steps:
                print(f"warning: {path} was written by a run of {state.extra['total_steps']} "
                      f"steps, this one has {total_steps}: the schedule differs, so the result "
                      "will not equal an uninterrupted run", file=sys.stderr)  # fmt: skip
            if scaler is not None and "loss_scale" in state.extra:
                scaler = scaler._replace(
                    scale=state.extra["loss_scale"], good_steps=state.extra["good_steps"]
                )
            print(f"resumed from {path} at step {step}", file=sys.stderr)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        if not resume:
            for old in (out / CHECKPOINTS).glob("step-*.safetensors"):
                old.unlink()
        kept = [r for r in read_log(out) if r["step"] <= step]
        (out / LOG_NAME).write_text("".join(json.dumps(r) + "\n" for r in kept))

    device_type = next(iter(ptfunc.tree.leaves(params)), torch.empty(())).device.type

    def scaled_loss(p: Any, batch: Any, k: Key, scale: float) -> Tensor:
        if scaler is None:
            return loss_fn(p, batch, k)
        with torch.autocast(device_type, dtype=torch.float16):
            loss = loss_fn(p, batch, k)
        return loss.float() * scale

    last = total_steps if stop_at_step is None else min(total_steps, stop_at_step)
    grad_and_loss = ptfunc.func.grad_and_value(scaled_loss)
    show = Progress(total_steps, every=log_every) if progress and rank == 0 else None
    losses: list[tuple[int, float]] = []
    accumulate = max(1, accumulation_steps)
    while step < last:
        scale = scaler.scale if scaler is not None else 1.0
        grads, value = None, 0.0
        for j in range(accumulate):
            key, sub = ptfunc.random.split(key)
            batch = _share(get_batch(step * accumulate + j), rank, world)
            g, loss = grad_and_loss(params, batch, sub, scale)
            grads = g if grads is None else ptfunc.tree.map(torch.add, grads, g)
            value += float(loss) / scale / accumulate
        if accumulate > 1 or scale != 1.0:
            grads = ptfunc.tree.map(functools.partial(torch.div, other=accumulate * scale), grads)
        if world > 1:
            grads = ptfunc.distributed.allreduce_grads(grads)
        value = _mean_over_processes(value, world)
        finite = scaler is None or _all_finite(grads)
        if finite:
            params, opt_state = optim.step(opt, grads, opt_state, params)
        if scaler is not None:
            scaler = scaler.update(finite)
        step += 1
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
            extra: dict[str, Any] = {"data_position": step, "total_steps": total_steps}
            if scaler is not None:
                extra.update(loss_scale=scaler.scale, good_steps=scaler.good_steps)
            save_train_state(path, params, opt_state, step=step, key=key, extra=extra)
    return TrainResult(params, opt_state, step, key, losses)


def train_from_args(
    args: argparse.Namespace,
    loss_fn: Callable[[Any, Any, Key], Tensor],
    params: Any,
    get_batch: Callable[[int], Any],
    *,
    total_steps: int,
    key: Key,
    opt: optim.GradientTransformation | None = None,
) -> TrainResult:
    """:func:`train` with the optimizer (default :func:`make_optimizer`) and options of
    :func:`add_training_args`'s flags."""
    return train(
        loss_fn, params, opt if opt is not None else make_optimizer(args, total_steps),
        get_batch, total_steps=total_steps, key=key, output_dir=args.output_dir,
        save_steps=args.save_steps, resume=args.resume, stop_at_step=args.stop_at_step,
        log_every=args.log_every, progress=not args.quiet,
        accumulation_steps=args.gradient_accumulation_steps, fp16=getattr(args, "amp", False),
        loss_scale=getattr(args, "loss_scale", 0.0),
    )  # fmt: skip


def fine_tune(
    args: argparse.Namespace,
    loss_fn: Callable[[Any, Any, Key], Tensor],
    params: Any,
    batches: Batches,
    *,
    key: Key,
    model: Any,
    tokenizer: Any,
) -> TrainResult | None:
    """The examples' ``--do_train``: :func:`train_from_args` over ``batches`` for
    :func:`num_train_steps`, then (rank 0) the model and tokenizer saved to
    ``--output-dir``, as 1.0's scripts save them. None when the run stopped early
    (``--stop-at-step``: nothing saved, no evaluation)."""
    total = num_train_steps(args, batches.steps_per_epoch)
    result = train_from_args(args, loss_fn, params, batches.indices, total_steps=total, key=key)
    if result.step < total:
        return None
    if getattr(args, "is_main", True):
        ptfunc.io.save_pretrained(args.output_dir, model, result.params)
        tokenizer.save_pretrained(args.output_dir)
    return result


def set_threads(args: argparse.Namespace) -> None:
    """Apply ``--threads`` (tiny models run fastest on one thread)."""
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
