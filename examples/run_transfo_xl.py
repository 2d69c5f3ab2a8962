"""Train a small Transformer-XL on a word-level corpus, then compare held-out perplexity
with memories carried across segments and without (each segment alone).

    python examples/run_transfo_xl.py [--corpus PATH] [--max-steps 400] [--tgt-len 32]
                                      [--mem-len 64] [--batch-size 16] [--threads N]

1. Vocabulary: ``ptfunc.tokenize.TransfoXLTokenizer`` counts the corpus (word level,
   ``<eos>`` at each line end, words seen fewer than ``--min-freq`` times become
   ``<unk>``); the last ``--eval-fraction`` of the token stream is held out.
2. Training: the stream is cut into ``--batch-size`` rows and read in segments of
   ``--tgt-len`` tokens (``ptfunc.tokenize.LMOrderedIterator``); each step is one pure
   function call, ``ptfunc.func.grad_and_value`` over ``model.apply(params, data,
   targets=target, mems=mems, train=True, key=...)``, whose new memories (detached,
   ``(mem_len, batch, d_model)`` per layer) feed the next segment of the same rows.
   Updates: ``ptfunc.optim`` global-norm clipping (0.25, as the paper) chained with
   AdamW on a warmup-cosine schedule; dropout keys are ``fold_in(key, step)``.
3. Evaluation: the held-out stream, segment by segment, once carrying the memories
   and once starting every segment from empty memories; memories should lower the
   perplexity, since the first tokens of a segment then still see context.

With ``--model_name_or_path`` (a directory, ``transfo-xl-wt103`` or a Hub repo id), the
script does what pytorch-transformers 1.0's did instead: it loads that pretrained model
and its vocabulary and only evaluates (the whole corpus, no training).

Defaults: WikiText-2's test split from ``../shared/fixtures/corpora`` when present.
Everything is seeded; ``--threads`` pins the CPU thread count.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

import ptfunc
from ptfunc import optim
from ptfunc.archs import transfo_xl
from ptfunc.func import grad_and_value
from ptfunc.tokenize import LMOrderedIterator, TransfoXLTokenizer

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO.parent / "shared" / "fixtures" / "corpora" / "wikitext-2.test.txt"


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
        mem_len=args.mem_len,
        clamp_len=-1,
        same_length=False,
        dropout=args.dropout,
        dropatt=0.0,
    )
    return transfo_xl.TransfoXLLMHeadModel(config)


def evaluate(
    model: transfo_xl.TransfoXLLMHeadModel,
    params: dict,
    ids: Tensor,
    *,
    tgt_len: int,
    batch_size: int,
    use_memory: bool,
) -> float:
    """Perplexity of ``ids`` (n,) read as ``batch_size`` rows in segments of ``tgt_len``.

    Every token but the first of each row is predicted once. ``use_memory`` carries the
    memories from one segment to the next; otherwise each segment starts empty.
    """
    total, count, mems = 0.0, 0, None
    with torch.no_grad():
        for data, target, _ in LMOrderedIterator(ids, bsz=batch_size, bptt=tgt_len):
            out = model.apply(params, data, targets=target, mems=mems)
            total += float(out.losses.sum())
            count += target.numel()
            mems = out.mems if use_memory else None
    return math.exp(total / count)


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
        out = model.apply(p, data, targets=target, mems=mems, train=True, key=key)
        return out.loss, out.mems

    step_fn = grad_and_value(loss_fn, has_aux=True)
    batches = LMOrderedIterator(ids, bsz=args.batch_size, bptt=args.tgt_len)
    if len(batches) == 0:
        raise SystemExit("the training stream is too short for one segment per row")
    start, step, mems = time.perf_counter(), 0, None
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
        mems = None  # a new pass over the rows starts without memories
    return params


def evaluate_pretrained(args: argparse.Namespace) -> None:
    """1.0's run_transfo_xl.py: perplexity of a pretrained model on the whole corpus."""
    name = args.model_name_or_path
    tokenizer = TransfoXLTokenizer.from_pretrained(name)
    model, params = transfo_xl.TransfoXLLMHeadModel.from_pretrained(
        name, mem_len=args.mem_len, tgt_len=args.tgt_len
    )
    ids = tokenizer.encode_file(args.corpus, ordered=True, add_eos=True)
    print(f"{name}: {ptfunc.tree.size(params):,} params; {len(ids):,} tokens of {args.corpus}")
    kw = dict(tgt_len=args.tgt_len, batch_size=args.eval_batch_size)
    with_memory = evaluate(model, params, ids, use_memory=True, **kw)
    print(f"perplexity with memories: {with_memory:.2f}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model_name_or_path",
        "--model-name-or-path",
        "--model_name",
        dest="model_name_or_path",
        default=None,
        help="evaluate this pretrained model (directory, transfo-xl-wt103 or a repo id) "
        "instead of training one",
    )
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--max-steps", type=int, default=400)
    parser.add_argument("--tgt-len", type=int, default=32, help="tokens per segment")
    parser.add_argument("--mem-len", type=int, default=64, help="memory length per layer")
    parser.add_argument("--batch-size", type=int, default=16)
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
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.corpus.is_file():
        raise SystemExit(f"no corpus at {args.corpus}: pass --corpus PATH (a word-level text)")
    if args.model_name_or_path is not None:
        evaluate_pretrained(args)
        return
    tokenizer, train_ids, eval_ids = build_data(
        args.corpus, min_freq=args.min_freq, eval_fraction=args.eval_fraction
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
