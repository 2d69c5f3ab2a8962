"""Fine-tune BERT on SWAG multiple choice (pick the ending that follows a context), then
report accuracy.

    python examples/run_swag.py --train-file swagaf/data/train.csv --predict-file val.csv \\
        --model-dir bert-base-uncased --output-dir out/swag [--max-seq-length 80] \\
        [--batch-size 16] [--learning-rate 2e-5] [--num-train-epochs 3] [--save-steps N] [--resume]

1. Data: SWAG's CSV (header ``video-id, fold-ind, startphrase, sent1, sent2, gold-source,
   ending0..ending3, label``). Each of the 4 choices is ``[CLS] sent1 [SEP] sent2 ending
   [SEP]`` (the longer part loses its tail tokens until the pair fits), padded to
   ``--max-seq-length``: inputs (n, 4, max_seq_length) int64.
2. Training: ``BertForMultipleChoice`` (one score per choice from the pooled ``[CLS]``,
   cross-entropy over the 4) with the shared loop of ``_loop.py`` (clipping, AdamW,
   warmup-linear, checkpoints, bit-exact ``--resume``).
3. Evaluation on ``--predict-file`` without dropout: accuracy and mean loss, printed and
   written to ``--output-dir/eval_results.json``.
"""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _loop  # noqa: E402

import ptfunc  # noqa: E402
from ptfunc.archs import bert  # noqa: E402

MODELS = {"bert": bert.BertForMultipleChoice}
NUM_CHOICES = 4
COLUMNS = ("video-id", "fold-ind", "startphrase", "sent1", "sent2", "gold-source",
           "ending0", "ending1", "ending2", "ending3", "label")  # fmt: skip


@dataclass(frozen=True)
class SwagExample:
    """A context (``sent1``), the start of the next sentence (``sent2``), 4 endings, a label."""

    swag_id: str
    context: str
    start_ending: str
    endings: tuple[str, ...]
    label: int


def read_swag_examples(path: Path) -> list[SwagExample]:
    """Examples of a SWAG CSV file with a header row naming the columns above.

    Raises:
        ValueError: a missing column (e.g. ``label`` in a test split without answers).
    """
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return []
    missing = [c for c in COLUMNS[2:] if c not in rows[0]]
    if missing:
        raise ValueError(f"{path}: SWAG CSV lacks columns {missing}; expected {list(COLUMNS)}")
    return [
        SwagExample(
            f"{r['video-id']}-{r['fold-ind']}",
            r["sent1"],
            r["sent2"],
            tuple(r[f"ending{i}"] for i in range(NUM_CHOICES)),
            int(r["label"]),
        )  # fmt: skip
        for r in rows
    ]


def convert_examples_to_features(
    examples: list[SwagExample], tokenizer: Any, max_seq_length: int
) -> dict[str, Tensor]:
    """int64 ``input_ids``, ``attention_mask``, ``token_type_ids`` (n, 4, max_seq_length) and
    ``labels`` (n,)."""
    cls, sep = tokenizer.cls_token, tokenizer.sep_token
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids, masks, segments = [], [], []
    for ex in examples:
        context = tokenizer.tokenize(ex.context)
        per_choice = ([], [], [])
        for ending in ex.endings:
            a = list(context)
            b = tokenizer.tokenize(ex.start_ending) + tokenizer.tokenize(ending)
            while len(a) + len(b) > max_seq_length - 3:
                (a if len(a) > len(b) else b).pop()
            tokens = [cls] + a + [sep] + b + [sep]
            pad = max_seq_length - len(tokens)
            per_choice[0].append(tokenizer.convert_tokens_to_ids(tokens) + [pad_id] * pad)
            per_choice[1].append([1] * len(tokens) + [0] * pad)
            per_choice[2].append([0] * (len(a) + 2) + [1] * (len(b) + 1) + [0] * pad)
        for out, rows in zip((ids, masks, segments), per_choice):
            out.append(rows)

    def as_tensor(rows: list[list[list[int]]]) -> Tensor:
        return torch.tensor(rows, dtype=torch.int64).reshape(-1, NUM_CHOICES, max_seq_length)

    return {
        "input_ids": as_tensor(ids),
        "attention_mask": as_tensor(masks),
        "token_type_ids": as_tensor(segments),
        "labels": torch.tensor([ex.label for ex in examples], dtype=torch.int64),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train-file", type=Path, required=True)
    parser.add_argument("--predict-file", type=Path, required=True)
    parser.add_argument("--max-seq-length", type=int, default=80)
    parser.add_argument("--eval-batch-size", type=int, default=16)
    parser.add_argument("--do-lower-case", action=argparse.BooleanOptionalAction, default=True)
    _loop.add_model_args(parser, tuple(MODELS))
    _loop.add_training_args(parser, learning_rate=2e-5, batch_size=16)
    return parser.parse_args(argv)


INPUTS = ("attention_mask", "token_type_ids")


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = parse_args(argv)
    _loop.set_threads(args)
    tokenizer = _loop.load_tokenizer(args, do_lower_case=args.do_lower_case)
    train_f = convert_examples_to_features(
        read_swag_examples(args.train_file), tokenizer, args.max_seq_length
    )
    eval_f = convert_examples_to_features(
        read_swag_examples(args.predict_file), tokenizer, args.max_seq_length
    )
    init_key, run_key = ptfunc.random.split(ptfunc.random.key(args.seed))
    model, params = _loop.load_model(args, MODELS[args.model_type], init_key)
    n_train = len(train_f["labels"])
    print(f"{type(model).__name__}: {ptfunc.tree.size(params):,} params, {n_train} train / "
          f"{len(eval_f['labels'])} eval examples", file=sys.stderr)  # fmt: skip

    batches = _loop.Batches(n_train, args.batch_size, seed=args.seed)
    total = _loop.num_train_steps(args, batches.steps_per_epoch)

    def loss_fn(params, idx, key):
        out = model.apply(params, train_f["input_ids"][idx], labels=train_f["labels"][idx],
                          train=True, key=key, **{k: train_f[k][idx] for k in INPUTS})  # fmt: skip
        return out.loss

    result = _loop.train_from_args(
        args, loss_fn, params, batches.indices, total_steps=total, key=run_key
    )
    if result.step < total:  # stopped early (--stop-at-step): no evaluation
        return {}
    ptfunc.io.save_pretrained(args.output_dir, model, result.params)
    tokenizer.save_pretrained(args.output_dir)

    correct, loss_sum, n = 0, 0.0, len(eval_f["labels"])
    with torch.no_grad():
        for first in range(0, n, args.eval_batch_size):
            sl = slice(first, first + args.eval_batch_size)
            labels = eval_f["labels"][sl]
            out = model.apply(result.params, eval_f["input_ids"][sl], labels=labels,
                              **{k: eval_f[k][sl] for k in INPUTS})  # fmt: skip
            correct += int((out.logits.argmax(-1) == labels).sum())
            loss_sum += float(out.loss) * len(labels)
    metrics = {"eval_accuracy": correct / n, "eval_loss": loss_sum / n, "step": result.step}
    _loop.write_json(args.output_dir / "eval_results.json", metrics)
    for name, value in sorted(metrics.items()):
        print(f"{name} = {value}")
    return metrics


if __name__ == "__main__":
    main()
