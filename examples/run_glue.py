"""Fine-tune a sequence classifier on a GLUE task (MRPC, SST-2, CoLA, STS-B), then evaluate.

The seed README's command line runs as it is (flags with underscores or hyphens)::

    python examples/run_glue.py --model_type bert --model_name_or_path bert-base-uncased \\
        --task_name MRPC --do_train --do_eval --do_lower_case --data_dir $GLUE_DIR/MRPC \\
        --max_seq_length 128 --per_gpu_eval_batch_size=8 --per_gpu_train_batch_size=8 \\
        --learning_rate 2e-5 --num_train_epochs 3.0 --output_dir /tmp/MRPC/

and so do 1.0's other flags (``--gradient_accumulation_steps``, ``--warmup_steps``,
``--max_steps``, ``--weight_decay``, ``--overwrite_output_dir``, ``--fp16``,
``--local_rank`` under ``python -m torch.distributed.launch``, ``--no_cuda``), with 1.0's
defaults; ptfunc adds ``--save-steps N`` / ``--resume`` (bit-exact) and ``--config-json``.

1. Data: ``train.tsv`` and ``dev.tsv`` of ``--data-dir`` in GLUE's layout
   (``utils_glue.read_examples``), tokenised by the tokenizer of ``--tokenizer-dir``
   (default ``--model-dir``) into padded (n, max_seq_length) int64 tensors; XLNet puts
   ``<cls>`` last and pads on the left, as the seed's script does; RoBERTa builds
   ``<s> A </s></s> B </s>`` (``utils_glue.LAYOUTS``).
2. Model: ``BertForSequenceClassification`` (or the XLNet / XLM / RoBERTa / DistilBERT /
   ALBERT / ELECTRA / DeBERTa-v2 one: ``--model-type``) from ``--model-dir``
   (the classifier is freshly initialised), or a random model from ``--config-json``.
3. Training: the shared loop of ``_loop.py``: ``ptfunc.func.grad_and_value`` of the pure
   loss ``model.apply(params, ..., labels=..., train=True, key=k)``, global-norm clipping and
   AdamW on a warmup-linear schedule, checkpoints in ``--output-dir/checkpoints`` and a
   bit-exact ``--resume``.
4. Evaluation on ``dev.tsv`` without dropout: the task's metrics (accuracy and F1 for MRPC,
   Matthews for CoLA, Pearson/Spearman for STS-B), printed and written to
   ``--output-dir/eval_results.txt`` (1.0's ``name = value`` lines) and
   ``eval_results.json``; after training the model (``save_pretrained``) and tokenizer are
   saved to ``--output-dir`` (``--do_eval`` alone evaluates the model saved there, as 1.0).
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
from ptfunc.archs import (  # noqa: E402
    albert,
    bert,
    deberta_v2,
    distilbert,
    electra,
    roberta,
    xlm,
    xlnet,
)

MODELS = {
    "bert": bert.BertForSequenceClassification,
    "xlnet": xlnet.XLNetForSequenceClassification,
    "xlm": xlm.XLMForSequenceClassification,
    "roberta": roberta.RobertaForSequenceClassification,
    "distilbert": distilbert.DistilBertForSequenceClassification,
    "albert": albert.AlbertForSequenceClassification,
    "electra": electra.ElectraForSequenceClassification,
    "deberta-v2": deberta_v2.DebertaV2ForSequenceClassification,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = _loop.ExampleParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", "--task-name", dest="task", type=str.lower, required=True,
                        choices=sorted(utils_glue.TASKS))  # fmt: skip
    parser.add_argument("--data-dir", type=Path, required=True, help="train.tsv and dev.tsv")
    parser.add_argument("--max-seq-length", type=int, default=128)
    _loop.add_model_args(parser, tuple(MODELS))
    _loop.add_training_args(parser, learning_rate=5e-5, batch_size=8, eval_batch_size=8)
    return parser.parse_args(argv)


def featurize(args: argparse.Namespace, tokenizer: Any, split: str) -> utils_glue.Features:
    """Features of ``split`` in the layout of ``--model-type`` (:data:`utils_glue.LAYOUTS`)."""
    examples = utils_glue.read_examples(args.data_dir, args.task, split)
    lay = utils_glue.layout(args.model_type)
    return utils_glue.convert_examples_to_features(
        examples, tokenizer, args.task, args.max_seq_length,
        cls_at_end=lay.cls_at_end, pad_on_left=lay.pad_on_left,
        cls_token_segment_id=lay.cls_token_segment_id,
        pad_token_segment_id=lay.pad_token_segment_id,
        sep_token_extra=lay.sep_token_extra, token_types=lay.token_types,
    )  # fmt: skip


def model_inputs(
    model_type: str, f: utils_glue.Features, idx: torch.Tensor, config: Any = None
) -> dict[str, Any]:
    """Keyword inputs of the rows ``idx``; XLM (as the seed's script), RoBERTa, DistilBERT
    and a DeBERTa-v2 without token types read no segment ids."""
    inputs = {"attention_mask": f.attention_mask[idx]}
    if utils_glue.takes_token_types(model_type, config):
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
            inputs = model_inputs(args.model_type, features, idx, model.config)
            outputs.append(model.apply(params, features.input_ids[idx], **inputs).logits)
    logits = torch.cat(outputs)
    if utils_glue.num_labels(args.task) == 1:
        preds = logits[:, 0].tolist()
    else:
        preds = logits.argmax(-1).tolist()
    return utils_glue.compute_metrics(args.task, preds, features.labels.tolist())


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = parse_args(argv)
    _loop.setup(args)
    tokenizer = _loop.load_tokenizer(args)
    init_key, run_key = ptfunc.random.split(ptfunc.random.key(args.seed))
    n_labels = utils_glue.num_labels(args.task)
    model, params = _loop.load_model(args, MODELS[args.model_type], init_key, num_labels=n_labels)
    print(f"{type(model).__name__}: {ptfunc.tree.size(params):,} params", file=sys.stderr)

    metrics: dict[str, float] = {}
    if args.do_train:
        train_f = _loop.to_device(args, featurize(args, tokenizer, "train"))
        batches = _loop.batches(args, len(train_f.labels))

        def loss_fn(params, idx, key):
            inputs = model_inputs(args.model_type, train_f, idx, model.config)
            out = model.apply(params, train_f.input_ids[idx], labels=train_f.labels[idx],
                              train=True, key=key, **inputs)  # fmt: skip
            return out.loss

        result = _loop.fine_tune(args, loss_fn, params, batches, key=run_key, model=model,
                                 tokenizer=tokenizer)  # fmt: skip
        if result is None:  # stopped early (--stop-at-step): no evaluation
            return {}
        params, metrics["step"] = result.params, result.step
    if args.do_eval and args.is_main:
        dev_f = _loop.to_device(args, featurize(args, tokenizer, "dev"))
        metrics.update(evaluate(args, model, params, dev_f))
        _loop.write_eval_results(args, metrics)
    return metrics


if __name__ == "__main__":
    main()
