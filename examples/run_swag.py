"""Fine-tune BERT on SWAG multiple choice (pick the ending that follows a context), then
report accuracy.

The seed's command line (its examples page) runs as it is::

    python examples/run_swag.py --bert_model bert-base-uncased --do_train --do_lower_case \\
        --do_eval --data_dir $SWAG_DIR/data --train_batch_size 16 --learning_rate 2e-5 \\
        --num_train_epochs 3.0 --max_seq_length 80 --output_dir /tmp/swag_output/ \\
        --gradient_accumulation_steps 4

``--data_dir`` holds ``train.csv`` and ``val.csv``; ``--train_file`` / ``--predict_file``
name other files. Its other flags (``--eval_batch_size``, ``--warmup_proportion``,
``--fp16``, ``--loss_scale``, ``--local_rank``, ``--no_cuda``, ``--seed``) and
defaults are 1.0's; ptfunc adds ``--save-steps N`` / ``--resume`` and ``--config-json``.

1. Data: SWAG's CSV (header ``video-id, fold-ind, startphrase, sent1, sent2, gold-source,
   ending0..ending3, label``). Each of the 4 choices is ``[CLS] sent1 [SEP] sent2 ending
   [SEP]`` (the longer part loses its tail tokens until the pair fits), padded to
   ``--max-seq-length``: inputs (n, 4, max_seq_length) int64.
2. Training: ``BertForMultipleChoice`` (one score per choice from the pooled ``[CLS]``,
   cross-entropy over the 4; ``--model-type`` roberta / distilbert / albert / electra /
   deberta-v2 pick theirs, RoBERTa's choices read ``<s> sent1 </s></s> sent2 ending </s>``)
   with the shared loop of ``_loop.py`` (clipping, AdamW, warmup-linear, checkpoints,
   bit-exact ``--resume``).
3. Evaluation on the validation file without dropout: ``eval_accuracy``, ``eval_loss``,
   ``global_step`` and ``loss`` (mean training loss), printed and written to
   ``--output-dir/eval_results.txt`` (1.0's lines) and ``eval_results.json``.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _loop  # noqa: E402
import utils_glue  # noqa: E402  (the model types' input layouts)

import ptfunc  # noqa: E402
from ptfunc.archs import albert, bert, deberta_v2, distilbert, electra, roberta  # noqa: E402

MODELS = {
    "bert": bert.BertForMultipleChoice,
    "roberta": roberta.RobertaForMultipleChoice,
    "distilbert": distilbert.DistilBertForMultipleChoice,
    "albert": albert.AlbertForMultipleChoice,
    "electra": electra.ElectraForMultipleChoice,
    "deberta-v2": deberta_v2.DebertaV2ForMultipleChoice,
}
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
    examples: list[SwagExample],
    tokenizer: Any,
    max_seq_length: int,
    *,
    sep_token_extra: bool = False,
    token_types: bool = True,
) -> dict[str, Tensor]:
    """int64 ``input_ids``, ``attention_mask``, ``token_type_ids`` (n, 4, max_seq_length) and
    ``labels`` (n,); ``sep_token_extra=True``: RoBERTa's ``<s> a </s></s> b </s>``;
    ``token_types=False``: segment ids all 0."""
    cls, sep = tokenizer.cls_token, tokenizer.sep_token
    extra = int(sep_token_extra)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids, masks, segments = [], [], []
    for ex in examples:
        context = tokenizer.tokenize(ex.context)
        per_choice = ([], [], [])
        for ending in ex.endings:
            a = list(context)
            b = tokenizer.tokenize(ex.start_ending) + tokenizer.tokenize(ending)
            while len(a) + len(b) > max_seq_length - 3 - extra:
                (a if len(a) > len(b) else b).pop()
            tokens = [cls] + a + [sep] * (1 + extra) + b + [sep]
            pad = max_seq_length - len(tokens)
            per_choice[0].append(tokenizer.convert_tokens_to_ids(tokens) + [pad_id] * pad)
            per_choice[1].append([1] * len(tokens) + [0] * pad)
            second = int(token_types)
            per_choice[2].append([0] * (len(a) + 2 + extra) + [second] * (len(b) + 1) + [0] * pad)
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
    parser = _loop.ExampleParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, help="holds train.csv and val.csv")
    parser.add_argument("--train-file", type=Path, help="default: --data-dir/train.csv")
    parser.add_argument("--predict-file", type=Path, help="default: --data-dir/val.csv")
    parser.add_argument("--max-seq-length", type=int, default=128)
    _loop.add_model_args(parser, tuple(MODELS))
    _loop.add_training_args(parser, learning_rate=5e-5, batch_size=32, eval_batch_size=8,
                            warmup_proportion=0.1)  # fmt: skip
    args = parser.parse_args(argv)
    for flag, name in (("train_file", "train.csv"), ("predict_file", "val.csv")):
        if getattr(args, flag) is None and args.data_dir is not None:
            setattr(args, flag, args.data_dir / name)
    if args.do_train and args.train_file is None:
        parser.error("--do_train needs --data_dir or --train_file")
    if args.do_eval and args.predict_file is None:
        parser.error("--do_eval needs --data_dir or --predict_file")
    return args


def featurize(args: argparse.Namespace, tokenizer: Any, path: Path) -> dict[str, Tensor]:
    """Features of the CSV ``path`` in the layout of ``--model-type``."""
    lay = utils_glue.layout(args.model_type)
    return convert_examples_to_features(
        read_swag_examples(path), tokenizer, args.max_seq_length,
        sep_token_extra=lay.sep_token_extra, token_types=lay.token_types,
    )  # fmt: skip


def input_names(model_type: str, config: Any) -> tuple[str, ...]:
    """The feature names the model reads besides ``input_ids`` (no segment ids for
    RoBERTa, DistilBERT, or a DeBERTa-v2 without token types)."""
    if utils_glue.takes_token_types(model_type, config):
        return ("attention_mask", "token_type_ids")
    return ("attention_mask",)


def evaluate(args: argparse.Namespace, model: Any, params: Any, tokenizer: Any) -> dict:
    """Accuracy and mean loss on the validation file, without dropout."""
    eval_f = _loop.to_device(args, featurize(args, tokenizer, args.predict_file))
    names = input_names(args.model_type, model.config)
    correct, loss_sum, n = 0, 0.0, len(eval_f["labels"])
    with torch.no_grad():
        for first in range(0, n, args.eval_batch_size):
            sl = slice(first, first + args.eval_batch_size)
            labels = eval_f["labels"][sl]
            out = model.apply(params, eval_f["input_ids"][sl], labels=labels,
                              **{k: eval_f[k][sl] for k in names})  # fmt: skip
            correct += int((out.logits.argmax(-1) == labels).sum())
            loss_sum += float(out.loss) * len(labels)
    return {"eval_accuracy": correct / n, "eval_loss": loss_sum / n}


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = parse_args(argv)
    _loop.setup(args)
    tokenizer = _loop.load_tokenizer(args)
    init_key, run_key = ptfunc.random.split(ptfunc.random.key(args.seed))
    model, params = _loop.load_model(args, MODELS[args.model_type], init_key)
    print(f"{type(model).__name__}: {ptfunc.tree.size(params):,} params", file=sys.stderr)

    metrics: dict[str, float] = {}
    if args.do_train:
        train_f = _loop.to_device(args, featurize(args, tokenizer, args.train_file))
        batches = _loop.batches(args, len(train_f["labels"]))
        names = input_names(args.model_type, model.config)

        def loss_fn(params, idx, key):
            inputs = {k: train_f[k][idx] for k in names}
            out = model.apply(params, train_f["input_ids"][idx], labels=train_f["labels"][idx],
                              train=True, key=key, **inputs)  # fmt: skip
            return out.loss

        result = _loop.fine_tune(args, loss_fn, params, batches, key=run_key, model=model,
                                 tokenizer=tokenizer)  # fmt: skip
        if result is None:  # stopped early (--stop-at-step): no evaluation
            return {}
        params = result.params
        metrics["step"] = metrics["global_step"] = result.step
        run_losses = [r["loss"] for r in _loop.read_log(args.output_dir)] or [math.nan]
        metrics["loss"] = sum(run_losses) / len(run_losses)  # the whole run's, resumed or not
    if args.do_eval and args.is_main:
        metrics.update(evaluate(args, model, params, tokenizer))
        _loop.write_eval_results(args, metrics)
    return metrics


if __name__ == "__main__":
    main()
