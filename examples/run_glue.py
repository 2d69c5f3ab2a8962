"""Fine-tune a sequence classifier on a GLUE task (MRPC, SST-2, CoLA, STS-B), then evaluate.

    python examples/run_glue.py --task mrpc --data-dir glue/MRPC --model-dir bert-base-uncased \\
        --output-dir out/mrpc [--model-type bert|xlnet|xlm] [--max-seq-length 128] \\
        [--batch-size 32] [--learning-rate 2e-5] [--num-train-epochs 3] [--save-steps N] [--resume]

1. Data: ``train.tsv`` and ``dev.tsv`` of ``--data-dir`` in GLUE's layout
   (``utils_glue.read_examples``), tokenised by the tokenizer of ``--tokenizer-dir``
   (default ``--model-dir``) into padded (n, max_seq_length) int64 tensors; XLNet puts
   ``<cls>`` last and pads on the left, as the seed's script does.
2. Model: ``BertForSequenceClassification`` (or the XLNet / XLM one) from ``--model-dir``
   (the classifier is freshly initialised), or a random model from ``--config-json``.
3. Training: the shared loop of ``_loop.py``: ``ptfunc.func.grad_and_value`` of the pure
   loss ``model.apply(params, ..., labels=..., train=True, key=k)``, global-norm clipping and
   AdamW on a warmup-linear schedule, checkpoints in ``--output-dir/checkpoints`` and a
   bit-exact ``--resume``.
4. Evaluation on ``dev.tsv`` without dropout: the task's metrics (accuracy and F1 for MRPC,
   Matthews for CoLA, Pearson/Spearman for STS-B), printed and written to
   ``--output-dir/eval_results.json``; the model (``save_pretrained``) and tokenizer are
   saved to ``--output-dir``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _loop  # noqa: E402
import utils_glue  # noqa: E402

import ptfunc  # noqa: E402
from ptfunc.archs import bert, xlm, xlnet  # noqa: E402

MODELS = {
    "bert": bert.BertForSequenceClassification,
    "xlnet": xlnet.XLNetForSequenceClassification,
    "xlm": xlm.XLMForSequenceClassification,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", required=True, choices=sorted(utils_glue.TASKS))
    parser.add_argument("--data-dir", type=Path, required=True, help="train.tsv and dev.tsv")
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--eval-batch-size", type=int, default=64)
    parser.add_argument("--do-lower-case", action=argparse.BooleanOptionalAction, default=None,
                        help="BERT tokenizer casing (default: the tokenizer's own)")  # fmt: skip
    _loop.add_model_args(parser, tuple(MODELS))
    _loop.add_training_args(parser, learning_rate=2e-5)
    return parser.parse_args(argv)


def featurize(args: argparse.Namespace, tokenizer: Any, split: str) -> utils_glue.Features:
    examples = utils_glue.read_examples(args.data_dir, args.task, split)
    xl = args.model_type == "xlnet"
    return utils_glue.convert_examples_to_features(
        examples, tokenizer, args.task, args.max_seq_length,
        cls_at_end=xl, pad_on_left=xl,
        cls_token_segment_id=2 if xl else 0, pad_token_segment_id=4 if xl else 0,
    )  # fmt: skip


def model_inputs(model_type: str, f: utils_glue.Features, idx: torch.Tensor) -> dict[str, Any]:
    """Keyword inputs of the rows ``idx``; XLM reads no segment ids (as the seed's script)."""
    inputs = {"attention_mask": f.attention_mask[idx]}
    if model_type != "xlm":
        inputs["token_type_ids"] = f.token_type_ids[idx]
    return inputs


def evaluate(
    args: argparse.Namespace, model: Any, params: Any, features: utils_glue.Features
) -> dict[str, float]:
    """The task's metrics on ``features`` (train=False: no dropout)."""
    outputs = []
    with torch.no_grad():
        for start in range(0, features.input_ids.shape[0], args.eval_batch_size):
            idx = torch.arange(start, min(start + args.eval_batch_size, len(features.labels)))
            inputs = model_inputs(args.model_type, features, idx)
            outputs.append(model.apply(params, features.input_ids[idx], **inputs).logits)
    logits = torch.cat(outputs)
    if utils_glue.num_labels(args.task) == 1:
        preds = logits[:, 0].tolist()
    else:
        preds = logits.argmax(-1).tolist()
    return utils_glue.compute_metrics(args.task, preds, features.labels.tolist())


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = parse_args(argv)
    _loop.set_threads(args)
    kwargs = {} if args.do_lower_case is None else {"do_lower_case": args.do_lower_case}
    tokenizer = _loop.load_tokenizer(args, **kwargs)
    train_f = featurize(args, tokenizer, "train")
    dev_f = featurize(args, tokenizer, "dev")

    init_key, run_key = ptfunc.random.split(ptfunc.random.key(args.seed))
    n_labels = utils_glue.num_labels(args.task)
    model, params = _loop.load_model(args, MODELS[args.model_type], init_key, num_labels=n_labels)
    sizes = f"{len(train_f.labels)} train / {len(dev_f.labels)} dev examples"
    print(f"{type(model).__name__}: {ptfunc.tree.size(params):,} params, {sizes}", file=sys.stderr)

    batches = _loop.Batches(len(train_f.labels), args.batch_size, seed=args.seed)
    total = _loop.num_train_steps(args, batches.steps_per_epoch)

    def loss_fn(params, idx, key):
        inputs = model_inputs(args.model_type, train_f, idx)
        out = model.apply(params, train_f.input_ids[idx], labels=train_f.labels[idx],
                          train=True, key=key, **inputs)  # fmt: skip
        return out.loss

    result = _loop.train_from_args(
        args, loss_fn, params, batches.indices, total_steps=total, key=run_key
    )
    if result.step < total:  # stopped early (--stop-at-step): no evaluation
        return {}
    metrics = evaluate(args, model, result.params, dev_f)
    metrics["step"] = result.step
    _loop.write_json(args.output_dir / "eval_results.json", metrics)
    ptfunc.io.save_pretrained(args.output_dir, model, result.params)
    tokenizer.save_pretrained(args.output_dir)
    for name, value in sorted(metrics.items()):
        print(f"{name} = {value}")
    return metrics


if __name__ == "__main__":
    main()
