"""Bertology: attention entropy and importance of every head of a GLUE classifier, then
optionally mask the least important heads and prune them (Michel et al. 2019).

    python examples/run_bertology.py --task_name mrpc --data_dir glue/MRPC \\
        --model_name_or_path out/mrpc --output_dir out/bertology [--do_lower_case] \\
        [--split dev] [--max_seq_length 128] [--batch_size 8] [--data_subset N] \\
        [--max-steps N] [--try-masking --masking-threshold 0.9 --masking-amount 0.1] \\
        [--dont-normalize-importance-by-layer] [--dont-normalize-global-importance] [--remat]

1. Data: ``<split>.tsv`` of ``--data-dir`` (GLUE layout, ``utils_glue``), tokenised by the
   tokenizer of ``--tokenizer-dir`` (default ``--model-dir``); ``--max-steps`` limits the
   number of batches (``--max-steps 3``: the first three).
2. Model: a fine-tuned ``BertForSequenceClassification`` from ``--model-dir`` (or a random
   one from ``--config-json``, for tests).
   Flags are 1.0's (underscores or hyphens); ``--metric_name`` defaults to the task's
   first metric (``acc`` for MRPC, as 1.0's default); ``--local_rank`` is not offered
   (one process).
3. Head statistics (``ptfunc.research.bertology.compute_head_stats``): importance =
   ``|d loss / d head_mask|`` summed over batches with ``torch.func.grad``, per token, then
   normalised per layer (L2) and globally (min-max) unless told not to; entropy of each
   head's attention per token. Printed as tables (and ranks), saved as
   ``head_importance.npy``, ``attn_entropy.npy`` and ``head_stats.json``; a heat map
   ``head_importance.png`` with ``--plot`` (needs matplotlib).
4. ``--try-masking``: mask ``--masking-amount`` of the heads at a time, least important
   first, re-scoring after each step, while the metric (``--metric-name``) stays at or above
   ``--masking-threshold`` times the original; the final mask goes to ``head_mask.npy``.
   Then the masked heads are pruned (``bertology.prune_heads``: weights removed, a new
   config recording them) and the pruned model is scored without a mask: the two scores
   agree, the parameter count drops. ``--save-pruned`` saves that model.
5. Final metrics go to ``--output-dir/bertology_results.json``.

This script trains nothing, so there is nothing to checkpoint or resume.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _loop  # noqa: E402
import utils_glue  # noqa: E402

import ptfunc  # noqa: E402
from ptfunc.archs import bert  # noqa: E402
from ptfunc.research import bertology  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = _loop.ExampleParser(description=__doc__.split("\n")[0])
    p.add_argument("--task", "--task-name", dest="task", type=str.lower, default="mrpc",
                   choices=sorted(utils_glue.TASKS))  # fmt: skip
    p.add_argument("--data-dir", type=Path, required=True, help="<split>.tsv in GLUE layout")
    p.add_argument("--split", default="dev", choices=("train", "dev"))
    p.add_argument("--output-dir", type=Path, required=True)
    p.add_argument("--max-seq-length", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-steps", type=int, default=-1, help="use at most N batches")
    p.add_argument("--data-subset", type=int, default=-1,
                   help="use only the first N examples (1.0's flag; -1: all)")  # fmt: skip
    p.add_argument("--dont-normalize-importance-by-layer", action="store_true")
    p.add_argument("--dont-normalize-global-importance", action="store_true")
    p.add_argument("--try-masking", action="store_true", help="mask heads, then prune them")
    p.add_argument("--masking-threshold", type=float, default=0.9,
                   help="stop masking when the metric < threshold * original")  # fmt: skip
    p.add_argument("--masking-amount", type=float, default=0.1,
                   help="fraction of all heads masked at each step")  # fmt: skip
    p.add_argument("--metric-name", default=None,
                   help="metric driving the masking (default: the task's first)")  # fmt: skip
    p.add_argument("--save-pruned", action="store_true", help="save the pruned model")
    p.add_argument("--remat", action="store_true", help="recompute layers in backward")
    p.add_argument("--plot", action="store_true", help="head_importance.png (matplotlib)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("--no-cuda", action="store_true", help="run on the CPU even if CUDA is there")
    for flag in ("--overwrite-output-dir", "--overwrite-cache"):
        p.add_argument(flag, action="store_true", help="accepted for 1.0's command lines")
    _loop.add_model_args(p, ("bert",))
    return p.parse_args(argv)


def make_batches(args: argparse.Namespace, f: utils_glue.Features) -> list[dict[str, Any]]:
    n = len(f.labels)
    batches = []
    for start in range(0, n, args.batch_size):
        if 0 < args.max_steps <= len(batches):
            break
        s = slice(start, min(start + args.batch_size, n))
        batches.append({
            "input_ids": f.input_ids[s], "attention_mask": f.attention_mask[s],
            "token_type_ids": f.token_type_ids[s], "labels": f.labels[s],
        })  # fmt: skip
    return batches


def table(name: str, x: torch.Tensor) -> str:
    """A (layers, heads) matrix as text: one line per layer, as the seed prints it."""
    lines = [name, "layer\\head\t" + "\t".join(str(h + 1) for h in range(x.shape[1]))]
    for i, row in enumerate(x.tolist()):
        cells = (f"{v:d}" if isinstance(v, int) else f"{v:.5f}" for v in row)
        lines.append(f"layer {i + 1}:\t" + "\t".join(cells))
    return "\n".join(lines)


def score(task: str, stats: bertology.HeadStats) -> dict[str, float]:
    if utils_glue.num_labels(task) == 1:
        preds = stats.logits[:, 0].tolist()
    else:
        preds = stats.logits.argmax(-1).tolist()
    return utils_glue.compute_metrics(task, preds, stats.labels.tolist())


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    _loop.set_threads(args)
    args.device = _loop.default_device(args)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = _loop.load_tokenizer(args)
    examples = utils_glue.read_examples(args.data_dir, args.task, args.split)
    if args.data_subset > 0:
        examples = examples[: args.data_subset]
    features = utils_glue.convert_examples_to_features(
        examples, tokenizer, args.task, args.max_seq_length
    )
    n_labels = utils_glue.num_labels(args.task)
    model, params = _loop.load_model(
        args, bert.BertForSequenceClassification, ptfunc.random.key(args.seed), num_labels=n_labels
    )
    batches = _loop.to_device(args, make_batches(args, features))
    n_layers, n_heads = bertology.head_shape(model)
    log = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr))
    log(f"{type(model).__name__}: {n_layers} layers x {n_heads} heads, "
        f"{ptfunc.tree.size(params):,} params, {len(batches)} batches of {args.split}")  # fmt: skip

    def progress(done: int) -> None:
        if done == len(batches) or done % 10 == 0:
            log(f"batch {done}/{len(batches)}")

    options = dict(
        normalize_by_layer=not args.dont_normalize_importance_by_layer,
        normalize_global=not args.dont_normalize_global_importance,
        remat=args.remat,
    )
    stats = bertology.compute_head_stats(model, params, batches, progress=progress, **options)
    metrics = score(args.task, stats)
    metric_name = args.metric_name or next(iter(metrics))
    ranks = bertology.head_ranks(stats.importance)
    print(table("Attention entropies", stats.entropy))
    print(table("Head importance scores", stats.importance))
    print(table("Head ranked by importance scores (0 = most important)", ranks))
    np.save(args.output_dir / "attn_entropy.npy", stats.entropy.cpu().numpy())
    np.save(args.output_dir / "head_importance.npy", stats.importance.cpu().numpy())
    _loop.write_json(
        args.output_dir / "head_stats.json",
        {
            "entropy": stats.entropy.tolist(),
            "importance": stats.importance.tolist(),
            "ranks": ranks.tolist(),
            "n_tokens": stats.n_tokens,
        },
    )
    if args.plot:
        bertology.plot_head_importance(stats.importance, args.output_dir / "head_importance.png")
    results: dict[str, Any] = {"metrics": metrics, "n_tokens": stats.n_tokens}

    if args.try_masking:

        def evaluate(head_mask: torch.Tensor) -> tuple[float, torch.Tensor]:
            s = bertology.compute_head_stats(
                model, params, batches, head_mask=head_mask, compute_entropy=False, **options
            )
            value = score(args.task, s)[metric_name]
            log(f"masking: {int(head_mask.sum())}/{head_mask.numel()} heads, "
                f"{metric_name} {value:.4f}")  # fmt: skip
            return value, s.importance

        masking = bertology.mask_heads_by_importance(
            evaluate,
            (n_layers, n_heads),
            threshold=args.masking_threshold,
            amount=args.masking_amount,
        )
        print(table("Final head mask", masking.head_mask.long()))
        np.save(args.output_dir / "head_mask.npy", masking.head_mask.cpu().numpy())
        heads = bertology.heads_from_mask(masking.head_mask)

        t0 = time.perf_counter()
        with torch.no_grad():
            masked = bertology.compute_head_stats(
                model, params, batches, head_mask=masking.head_mask,
                compute_importance=False, compute_entropy=False,
            )  # fmt: skip
        t_masked = time.perf_counter() - t0
        pruned_model, pruned = bertology.prune_heads(model, params, heads)
        t0 = time.perf_counter()
        with torch.no_grad():
            after = bertology.compute_head_stats(
                pruned_model, pruned, batches, compute_importance=False, compute_entropy=False
            )
        t_pruned = time.perf_counter() - t0
        n_before, n_after = ptfunc.tree.size(params), ptfunc.tree.size(pruned)
        results["masking"] = {
            "metric": metric_name,
            "original_score": masking.original_score,
            "masked_score": score(args.task, masked)[metric_name],
            "pruned_score": score(args.task, after)[metric_name],
            "heads_kept": int(masking.head_mask.sum()),
            "pruned_heads": {str(k): v for k, v in heads.items()},
            "params_before": n_before,
            "params_after": n_after,
            "history": masking.history,
            "max_logit_diff_pruned_vs_masked": (after.logits - masked.logits).abs().max().item(),
        }
        print(f"Pruning: {n_before:,} params -> {n_after:,} ({100 * n_after / n_before:.1f}%); "
              f"{metric_name} masked {results['masking']['masked_score']:.4f}, pruned "
              f"{results['masking']['pruned_score']:.4f}; time pruned/masked "
              f"{t_pruned / max(t_masked, 1e-9):.2f}")  # fmt: skip
        if args.save_pruned:
            ptfunc.io.save_pretrained(args.output_dir / "pruned", pruned_model, pruned)

    print("Final metrics: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    _loop.write_json(args.output_dir / "bertology_results.json", results)
    return results


if __name__ == "__main__":
    main()
