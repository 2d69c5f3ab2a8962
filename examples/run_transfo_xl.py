"""Transformer-XL perplexity with memories: pytorch-transformers 1.0's ``run_transfo_xl.py``
(evaluate a pretrained model), or train a small model on a word-level corpus first.

**1.0's command line** runs unchanged (every flag also with hyphens)::

    python examples/run_transfo_xl.py --model_name transfo-xl-wt103 --tgt_len 128 \\
        --ext_len 0 --mem_len 1600 --clamp_len 1000 --same_length --work_dir ../log

It loads ``--model_name`` (a directory, ``transfo-xl-wt103`` or a Hub repo id; the default,
as in 1.0, is ``transfo-xl-wt103``), sets ``reset_length(tgt_len, ext_len, mem_len)``,
``--clamp_len`` when > 0 and ``--same_length``, and evaluates ``--split`` (``test``,
``valid`` or ``all``) of its corpus as 1.0 does: ``--batch_size`` rows (default 10) read
in segments of ``--tgt_len`` targets (``ptfunc.tokenize.LMOrderedIterator``, ``--ext_len``
extra columns of context before each), the memories of each segment fed to the next,
the first from ``mems=None`` (1.0's ``mem_len`` zero memories); each segment's mean
per-token loss weighted by its length. It prints 1.0's lines, ending with
``| test loss  x.xx | test ppl  y.yyy``.

The corpus: ``--corpus FILE`` (a word-level text, encoded with the model's tokenizer,
``<eos>`` at each line end; evaluated as the one split ``--split`` names), else in
``--data_dir`` (default: the model directory) 1.0's pre-tokenised ``corpus.bin`` (what
``TransfoXLCorpus.from_pretrained`` reads; loaded without running pickled code), else the
text files ``valid.txt`` / ``test.txt`` (1.0's ``TransfoXLCorpus.build_corpus`` names) or
``wiki.valid.tokens`` / ``wiki.test.tokens`` (WikiText's). 1.0 downloaded WikiText-103's
``corpus.bin`` from its own server; the Hub does not have it, so for ``transfo-xl-wt103``
pass the WikiText-103 files.

Files: in ``--work_dir`` (created if needed) the script writes ``log.txt`` (the lines it
prints, as the paper's ``eval.py`` did there) and ``eval_results.json`` (``{split: {"loss",
"ppl"}}`` at full precision, plus the settings), neither with ``--no_log``. 1.0 required
``--work_dir`` and wrote nothing to it. Without ``--work_dir`` nothing is written.

Where this differs from 1.0, 1.0 gave no usable answer: it set ``--clamp_len`` and
``--same_length`` on the head model, where they had no effect (for ``transfo-xl-wt103``
they equal the config, 1000 and True); with ``--ext_len > 0`` its LM head compared the
hidden states of the extended segment with the shorter targets and raised, while here
the extra columns are context only (labels -1) and the memories keep the paper's
positions (see ``ptfunc.archs.transfo_xl.model``). ``--no_cuda`` keeps the CPU (default:
CUDA when there is one). ``--server_ip`` / ``--server_port`` (remote debugging with
ptvsd) are accepted and ignored, with a note.

**Training** (no ``--model_name`` and no ``--work_dir``)::

    python examples/run_transfo_xl.py [--corpus PATH] [--max-steps 400] [--tgt-len 32]
                                      [--mem-len 64] [--batch-size 16] [--threads N]

1. Vocabulary: ``ptfunc.tokenize.TransfoXLTokenizer`` counts the corpus (word level,
   ``<eos>`` at each line end, words seen fewer than ``--min-freq`` times become
   ``<unk>``); the last ``--eval-fraction`` of the token stream is held out.
2. Training: the stream is cut into ``--batch-size`` rows and read in segments of
   ``--tgt-len`` tokens (``LMOrderedIterator``); each step is one pure function call,
   ``ptfunc.func.grad_and_value`` over ``model.apply(params, data, labels=target,
   mems=mems, train=True, key=...)`` (1.0's unshifted labels), whose new memories
   (detached, ``(mem_len, batch, d_model)`` per layer) feed the next segment of the
   same rows; each pass over the rows starts from empty memories (``mems=()``, the
   paper's code). Updates: ``ptfunc.optim`` global-norm clipping (0.25, as the paper)
   chained with AdamW on a warmup-cosine schedule; dropout keys are ``fold_in(key, step)``.
3. Evaluation: the held-out stream in ``--eval-batch-size`` rows, segment by segment,
   once carrying the memories and once starting every segment from empty memories;
   memories should lower the perplexity, since the first tokens of a segment then
   still see context. Printed, not written.

Defaults: WikiText-2's test split from ``../shared/fixtures/corpora`` when present.
Everything is seeded; ``--threads`` pins the CPU thread count.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling _loop
import _loop  # noqa: E402

import ptfunc  # noqa: E402
from ptfunc import optim  # noqa: E402
from ptfunc.archs import transfo_xl  # noqa: E402
from ptfunc.func import grad_and_value  # noqa: E402
from ptfunc.tokenize import LMOrderedIterator, TransfoXLTokenizer  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO.parent / "shared" / "fixtures" / "corpora" / "wikitext-2.test.txt"
DEFAULT_MODEL = "transfo-xl-wt103"  # 1.0's default --model_name
SPLITS = {"all": ("test", "valid"), "valid": ("valid",), "test": ("test",)}  # 1.0's order
# 1.0's defaults when it evaluates a pretrained model; the training demo's otherwise
EVAL_DEFAULTS = dict(batch_size=10, tgt_len=128, mem_len=1600, ext_len=0, clamp_len=1000)
TRAIN_DEFAULTS = dict(batch_size=16, tgt_len=32, mem_len=64, ext_len=0, clamp_len=-1)


def build_data(
    corpus: Path, *, min_freq: int, eval_fraction: float
) -> tuple[TransfoXLTokenizer, Tensor, Tensor]:
    """Word vocabulary of ``corpus`` and its id stream split into (train, held-out) int64 (n,)."""
    tokenizer = TransfoXLTokenizer(special=["<unk>", "<eos>"], min_freq=min_freq)
    tokenizer.count_file(corpus, add_eos=True)
    tokenizer.build_vocab()
    ids = tokenizer.encode_file(corpus, ordered=True, add_eos=True)
    split = int(len(ids) * (1.0 - eval_fraction))
    return tokenizer, ids[:split], ids[split:]


def auto_cutoffs(vocab_size: int) -> list[int]:
    """Adaptive-softmax clusters for a vocabulary: none below 200 words, else at 10% and 40%."""
    if vocab_size < 200:
        return []
    return [vocab_size // 10, (vocab_size * 2) // 5]


def make_model(vocab_size: int, args: argparse.Namespace) -> transfo_xl.TransfoXLLMHeadModel:
    """The training demo's model: ``--d-model`` wide, clusters from :func:`auto_cutoffs`."""
    cutoffs = auto_cutoffs(vocab_size)
    config = transfo_xl.TransfoXLConfig(
        vocab_size=vocab_size,
        cutoffs=cutoffs,
        d_model=args.d_model,
        d_embed=args.d_model,
        n_head=args.n_head,
        d_head=args.d_model // args.n_head,
        d_inner=args.d_inner,
        div_val=2 if cutoffs else 1,
        n_layer=args.n_layer,
        tgt_len=args.tgt_len,
        ext_len=args.ext_len,
        mem_len=args.mem_len,
        clamp_len=args.clamp_len,
        same_length=args.same_length,
        dropout=args.dropout,
        dropatt=0.0,
    )
    return transfo_xl.TransfoXLLMHeadModel(config)


def segment_labels(data: Tensor, target: Tensor) -> Tensor:
    """Labels (b, data width) for one segment: -1 (ignored) on the ``ext_len`` context
    columns that come first in ``data`` (b, ext + s), then ``target`` (b, s)."""
    ext = data.shape[1] - target.shape[1]
    return torch.cat([torch.full_like(data[:, :ext], -1), target], dim=1)


def evaluate_loss(
    model: transfo_xl.TransfoXLLMHeadModel,
    params: dict,
    ids: Tensor,
    *,
    tgt_len: int,
    batch_size: int,
    use_memory: bool = True,
    first_mems: Any = None,
    ext_len: int = 0,
) -> float:
    """Mean NLL per predicted token of ``ids`` (n,) read as 1.0's ``evaluate`` reads it.

    ``batch_size`` rows, segments of ``tgt_len`` targets (every token but the first of a
    row is predicted once), each segment's mean loss weighted by its length. The first
    segment starts from ``first_mems`` (None: 1.0's zero memories; ``()``: empty); with
    ``use_memory`` each next one from the memories the previous returned, otherwise from
    ``first_mems`` again.
    """
    device = ptfunc.tree.leaves(params)[0].device
    batches = LMOrderedIterator(ids, bsz=batch_size, bptt=tgt_len, device=device, ext_len=ext_len)
    total_loss, total_len, mems = 0.0, 0, first_mems
    with torch.no_grad():
        for data, target, seq_len in batches:
            out = model.apply(params, data, labels=segment_labels(data, target), mems=mems)
            total_loss += seq_len * float(out.losses[:, -seq_len:].mean())
            total_len += seq_len
            mems = out.mems if use_memory else first_mems
    if total_len == 0:
        raise SystemExit(f"{len(ids)} tokens are too few for {batch_size} rows of 2 tokens")
    return total_loss / total_len


def evaluate(
    model: transfo_xl.TransfoXLLMHeadModel,
    params: dict,
    ids: Tensor,
    *,
    tgt_len: int,
    batch_size: int,
    use_memory: bool,
    first_mems: Any = (),
) -> float:
    """Perplexity of ``ids`` (:func:`evaluate_loss`; the training demo starts from empty
    memories, ``first_mems=()``)."""
    loss = evaluate_loss(
        model,
        params,
        ids,
        tgt_len=tgt_len,
        batch_size=batch_size,
        use_memory=use_memory,
        first_mems=first_mems,
        ext_len=model.config.ext_len,
    )
    return math.exp(loss)


def train(
    model: transfo_xl.TransfoXLLMHeadModel,
    params: dict,
    ids: Tensor,
    args: argparse.Namespace,
) -> dict:
    """Functional training loop; returns the trained params."""
    opt = optim.chain(
        optim.clip_by_global_norm(0.25),
        optim.adamw(
            lr=args.lr,
            weight_decay=0.0,
            schedule=optim.schedules.warmup_cosine(args.warmup, args.max_steps),
        ),
    )
    state = opt.init(params)
    base_key = ptfunc.random.key(args.seed + 1)

    def loss_fn(p, data, target, mems, key):
        labels = segment_labels(data, target)
        out = model.apply(p, data, labels=labels, mems=mems, train=True, key=key)
        return out.loss, out.mems

    step_fn = grad_and_value(loss_fn, has_aux=True)
    batches = LMOrderedIterator(ids, bsz=args.batch_size, bptt=args.tgt_len, ext_len=args.ext_len)
    if len(batches) == 0:
        raise SystemExit("the training stream is too short for one segment per row")
    start, step, mems = time.perf_counter(), 0, ()
    while step < args.max_steps:
        for data, target, _ in batches:
            key = ptfunc.random.fold_in(base_key, step)
            grads, (loss, mems) = step_fn(params, data, target, mems, key)
            params, state = optim.step(opt, grads, state, params, inplace=True)
            if step % args.log_every == 0 or step == args.max_steps - 1:
                print(
                    f"  step {step:5d}  loss {float(loss):.3f}  ppl {math.exp(float(loss)):9.1f}"
                    f"  ({time.perf_counter() - start:.0f}s)",
                    flush=True,
                )
            step += 1
            if step == args.max_steps:
                break
        mems = ()  # a new pass over the rows starts from empty memories
    return params


# -- 1.0's evaluation of a pretrained model ----------------------------------------------------


def read_corpus_bin(path: Path) -> dict[str, Tensor]:
    """1.0's ``corpus.bin`` (``torch.save`` of a ``TransfoXLCorpus`` without its vocabulary:
    ``dataset`` and the ``train`` / ``valid`` / ``test`` id streams) -> ``{split: int64 (n,)}``.

    Read with ``torch.load(weights_only=True)``: a file holding more than plain data is
    refused with a ``SystemExit`` naming it.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any unreadable file: one message naming it
        raise SystemExit(
            f"{path} cannot be read with torch.load(weights_only=True): "
            f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        ) from err
    if not isinstance(state, dict):
        raise SystemExit(f"{path} must hold a dict (1.0's TransfoXLCorpus); got {type(state)}")
    return {
        split: torch.as_tensor(state[split], dtype=torch.long)
        for split in ("valid", "test")
        if state.get(split) is not None
    }


def _text_file(directory: Path, split: str) -> Path | None:
    for name in (f"{split}.txt", f"wiki.{split}.tokens"):
        if (directory / name).is_file():
            return directory / name
    return None


def load_splits(args: argparse.Namespace, tokenizer_source: str) -> dict[str, Tensor]:
    """``{split: ids (n,)}`` for the splits ``--split`` asks, from ``--corpus`` or
    ``--data_dir`` (see the module docstring)."""
    wanted = SPLITS[args.split]
    if args.corpus is not None:
        if len(wanted) > 1:
            raise SystemExit("--corpus is one text: pass --split test or valid, or --data_dir")
        if not args.corpus.is_file():
            raise SystemExit(f"no corpus at {args.corpus}: pass --corpus PATH (a word-level text)")
        tokenizer = TransfoXLTokenizer.from_pretrained(tokenizer_source)
        return {wanted[0]: tokenizer.encode_file(args.corpus, ordered=True, add_eos=True)}
    directory = args.data_dir or Path(tokenizer_source)
    if (directory / "corpus.bin").is_file():
        streams = read_corpus_bin(directory / "corpus.bin")
        missing = [s for s in wanted if s not in streams]
        if missing:
            raise SystemExit(f"{directory / 'corpus.bin'} has no {missing[0]} split")
        return {split: streams[split] for split in wanted}
    files = {split: _text_file(directory, split) for split in wanted}
    if any(f is None for f in files.values()) or not directory.is_dir():
        raise SystemExit(
            f"no corpus for --split {args.split} in {directory}: pass --corpus FILE, or "
            "--data_dir DIR holding 1.0's corpus.bin or valid.txt / test.txt (or "
            "wiki.valid.tokens / wiki.test.tokens). 1.0 downloaded transfo-xl-wt103's "
            "corpus.bin from its own server; the Hugging Face Hub does not have it."
        )
    tokenizer = TransfoXLTokenizer.from_pretrained(tokenizer_source)
    return {s: tokenizer.encode_file(f, ordered=True, add_eos=True) for s, f in files.items()}


def configured_model(
    model: transfo_xl.TransfoXLLMHeadModel, args: argparse.Namespace
) -> transfo_xl.TransfoXLLMHeadModel:
    """1.0's ``reset_length(tgt_len, ext_len, mem_len)``, then ``clamp_len`` when > 0 and
    ``same_length`` when asked (1.0 set those two where they had no effect)."""
    model = model.reset_length(args.tgt_len, args.ext_len, args.mem_len)
    changes: dict[str, Any] = {}
    if args.clamp_len > 0:
        changes["clamp_len"] = args.clamp_len
    if args.same_length:
        changes["same_length"] = True
    return type(model)(model.config.replace(**changes)) if changes else model


def format_log(loss: float, split: str) -> str:
    """1.0's result line for one split."""
    return f"| {split} loss {loss:5.2f} | {split} ppl {math.exp(loss):9.3f} "


def evaluate_pretrained(args: argparse.Namespace) -> dict[str, float]:
    """1.0's ``run_transfo_xl.py``: ``{split: mean loss}``; prints (and logs) 1.0's lines."""
    lines: list[str] = []

    def log(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    device = _loop.default_device(args)
    log(f"device: {device}")
    name = args.model_name or DEFAULT_MODEL
    splits = load_splits(args, name)  # first: a missing corpus fails before a download
    model, params = transfo_xl.TransfoXLLMHeadModel.from_pretrained(name)
    model = configured_model(model, args)
    params = ptfunc.tree.map(lambda t: t.to(device), params)
    log(
        f"Evaluating with bsz {args.batch_size} tgt_len {args.tgt_len} ext_len {args.ext_len} "
        f"mem_len {args.mem_len} clamp_len {args.clamp_len}"
    )
    losses = {}
    for split, ids in splits.items():
        start = time.perf_counter()
        losses[split] = evaluate_loss(
            model,
            params,
            ids,
            tgt_len=args.tgt_len,
            batch_size=args.batch_size,
            first_mems=None,  # 1.0's mems=None: mem_len zero memories
            ext_len=args.ext_len,
        )
        n = len(LMOrderedIterator(ids, bsz=args.batch_size, bptt=args.tgt_len))
        elapsed = time.perf_counter() - start
        log(f"Time : {elapsed:.2f}s, {1000 * elapsed / max(n, 1):.2f}ms/segment")
    result = "".join(format_log(losses[s], s) for s in ("valid", "test") if s in losses)
    for line in ("=" * 100, result, "=" * 100):
        log(line)
    if args.work_dir is not None and not args.no_log:
        write_results(Path(args.work_dir), lines, losses, args)
    return losses


def write_results(
    work_dir: Path, lines: Sequence[str], losses: dict[str, float], args: argparse.Namespace
) -> None:
    """``log.txt`` (the printed lines) and ``eval_results.json`` in ``work_dir``."""
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / "log.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    settings = {
        k: getattr(args, k)
        for k in ("batch_size", "tgt_len", "ext_len", "mem_len", "clamp_len", "same_length")
    }
    results = {s: {"loss": loss, "ppl": math.exp(loss)} for s, loss in losses.items()}
    results["model_name"] = args.model_name or DEFAULT_MODEL
    results["settings"] = settings
    (work_dir / "eval_results.json").write_text(json.dumps(results, indent=2) + "\n")


# -- command line ------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Both modes' flags; ``None`` defaults are filled in by mode (1.0's or the demo's)."""
    parser = _loop.ExampleParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model-name",
        "--model-name-or-path",
        dest="model_name",
        default=None,
        help=f"evaluate this pretrained model (directory, {DEFAULT_MODEL} or a repo id)",
    )
    parser.add_argument("--split", default="test", choices=sorted(SPLITS), help="1.0: which split")
    parser.add_argument("--corpus", type=Path, default=None, help="a word-level text to read")
    parser.add_argument("--data-dir", type=Path, default=None, help="corpus.bin or split texts")
    parser.add_argument("--work-dir", default=None, help="1.0's: where log.txt and results go")
    parser.add_argument("--batch-size", type=int, default=None, help="rows (1.0: 10; demo: 16)")
    parser.add_argument("--tgt-len", type=int, default=None, help="targets per segment (128 / 32)")
    parser.add_argument("--ext-len", type=int, default=None, help="extra context columns (0)")
    parser.add_argument("--mem-len", type=int, default=None, help="memory per layer (1600 / 64)")
    parser.add_argument("--clamp-len", type=int, default=None, help="max relative distance (1000)")
    parser.add_argument("--same-length", action="store_true", help="same attention length")
    parser.add_argument("--no-cuda", action="store_true", help="stay on the CPU")
    parser.add_argument("--no-log", action="store_true", help="write nothing to --work_dir")
    parser.add_argument("--server-ip", default="", help="1.0's remote debugging: ignored")
    parser.add_argument("--server-port", default="", help="1.0's remote debugging: ignored")
    parser.add_argument("--max-steps", type=int, default=400)
    parser.add_argument("--eval-batch-size", type=int, default=8)
    parser.add_argument("--eval-fraction", type=float, default=0.1)
    parser.add_argument("--min-freq", type=int, default=3)
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--n-head", type=int, default=4)
    parser.add_argument("--d-inner", type=int, default=512)
    parser.add_argument("--n-layer", type=int, default=3)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    args.evaluate_only = args.model_name is not None or args.work_dir is not None
    for field, value in (EVAL_DEFAULTS if args.evaluate_only else TRAIN_DEFAULTS).items():
        if getattr(args, field) is None:
            setattr(args, field, value)
    if args.ext_len < 0:
        parser.error("--ext_len: extended context length must be non-negative")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.server_ip or args.server_port:
        print("note: --server_ip/--server_port (remote debugging with ptvsd) are ignored")
    if args.evaluate_only:
        evaluate_pretrained(args)
        return
    corpus = args.corpus or DEFAULT_CORPUS
    if not corpus.is_file():
        raise SystemExit(f"no corpus at {corpus}: pass --corpus PATH (a word-level text)")
    tokenizer, train_ids, eval_ids = build_data(
        corpus, min_freq=args.min_freq, eval_fraction=args.eval_fraction
    )
    model = make_model(len(tokenizer), args)
    params = model.init(ptfunc.random.key(args.seed))
    print(
        f"vocabulary {len(tokenizer):,} words (cutoffs {list(model.config.cutoffs)}); "
        f"{len(train_ids):,} training and {len(eval_ids):,} held-out tokens; "
        f"Transformer-XL {ptfunc.tree.size(params):,} params; {args.max_steps} steps of "
        f"{args.batch_size} x {args.tgt_len} tokens, memory {args.mem_len}"
    )
    params = train(model, params, train_ids, args)
    kw = dict(tgt_len=args.tgt_len, batch_size=args.eval_batch_size)
    with_memory = evaluate(model, params, eval_ids, use_memory=True, **kw)
    without = evaluate(model, params, eval_ids, use_memory=False, **kw)
    print(f"held-out perplexity with memories: {with_memory:.2f}")
    print(f"held-out perplexity without memories (each segment alone): {without:.2f}")


if __name__ == "__main__":
    main()
