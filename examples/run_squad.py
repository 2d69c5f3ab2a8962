"""Fine-tune BERT for extractive question answering on SQuAD v1.1 / v2.0, then predict
and score the predictions with the official metrics (exact match and F1).

    python examples/run_squad.py --train-file train-v1.1.json --predict-file dev-v1.1.json \\
        --model-dir bert-base-uncased --output-dir out/squad [--version-2-with-negative] \\
        [--max-seq-length 384] [--doc-stride 128] [--max-query-length 64] [--n-best-size 20] \\
        [--max-answer-length 30] [--null-score-diff-threshold 0.0] [--save-steps N] [--resume]

1. Data (``utils_squad``): paragraphs split on whitespace with a character -> word map;
   words WordPiece-tokenised; long documents cut into ``--doc-stride`` windows of
   ``[CLS] question [SEP] window [SEP]``; training targets are the answer's token span
   in the window, or ``[CLS]`` (position 0) when it has none.
2. Training: ``BertForQuestionAnswering`` (start and end logits over the tokens; loss the
   mean of the two cross-entropies) with the shared loop of ``_loop.py`` (clipping, AdamW,
   warmup-linear, checkpoints, bit-exact ``--resume``).
3. Prediction: logits of every window without dropout, then n-best post-processing
   (``utils_squad.postprocess``): ``predictions.json``, ``nbest_predictions.json`` and,
   for v2.0, ``null_odds.json`` in ``--output-dir``.
4. Scores (``utils_squad_evaluate``, the official scripts' logic): ``exact``, ``f1`` and the
   answerable / unanswerable subsets, printed and written to ``eval_results.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _loop  # noqa: E402
import utils_squad  # noqa: E402
import utils_squad_evaluate  # noqa: E402

import ptfunc  # noqa: E402
from ptfunc.archs import bert  # noqa: E402

MODELS = {"bert": bert.BertForQuestionAnswering}
INPUTS = ("attention_mask", "token_type_ids")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train-file", type=Path, required=True, help="SQuAD JSON to train on")
    parser.add_argument("--predict-file", type=Path, required=True, help="SQuAD JSON to score")
    parser.add_argument("--version-2-with-negative", action="store_true",
                        help="SQuAD 2.0: some questions have no answer")  # fmt: skip
    parser.add_argument("--null-score-diff-threshold", type=float, default=0.0)
    parser.add_argument("--max-seq-length", type=int, default=384)
    parser.add_argument("--doc-stride", type=int, default=128)
    parser.add_argument("--max-query-length", type=int, default=64)
    parser.add_argument("--n-best-size", type=int, default=20)
    parser.add_argument("--max-answer-length", type=int, default=30)
    parser.add_argument("--eval-batch-size", type=int, default=64)
    parser.add_argument("--do-lower-case", action=argparse.BooleanOptionalAction, default=True)
    _loop.add_model_args(parser, tuple(MODELS))
    _loop.add_training_args(parser, learning_rate=3e-5, batch_size=12, num_train_epochs=2.0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = parse_args(argv)
    _loop.set_threads(args)
    tokenizer = _loop.load_tokenizer(args, do_lower_case=args.do_lower_case)
    v2 = args.version_2_with_negative
    windows = dict(max_seq_length=args.max_seq_length, doc_stride=args.doc_stride,
                   max_query_length=args.max_query_length)  # fmt: skip
    train_ex = utils_squad.read_squad_examples(
        args.train_file, is_training=True, version_2_with_negative=v2
    )
    train_f = utils_squad.stack_features(
        utils_squad.convert_examples_to_features(train_ex, tokenizer, is_training=True, **windows)
    )
    n_train = train_f["input_ids"].shape[0]

    init_key, run_key = ptfunc.random.split(ptfunc.random.key(args.seed))
    model, params = _loop.load_model(args, MODELS[args.model_type], init_key, num_labels=2)
    print(f"{type(model).__name__}: {ptfunc.tree.size(params):,} params, "
          f"{len(train_ex)} questions -> {n_train} windows", file=sys.stderr)  # fmt: skip

    batches = _loop.Batches(n_train, args.batch_size, seed=args.seed)
    total = _loop.num_train_steps(args, batches.steps_per_epoch)

    def loss_fn(params, idx, key):
        out = model.apply(
            params, train_f["input_ids"][idx],
            start_positions=train_f["start_positions"][idx],
            end_positions=train_f["end_positions"][idx],
            train=True, key=key, **{k: train_f[k][idx] for k in INPUTS},
        )  # fmt: skip
        return out.loss

    result = _loop.train_from_args(
        args, loss_fn, params, batches.indices, total_steps=total, key=run_key
    )
    if result.step < total:  # stopped early (--stop-at-step): no prediction
        return {}
    ptfunc.io.save_pretrained(args.output_dir, model, result.params)
    tokenizer.save_pretrained(args.output_dir)

    # Prediction: every window of the predict file, without dropout.
    eval_ex = utils_squad.read_squad_examples(
        args.predict_file, is_training=False, version_2_with_negative=v2
    )
    eval_feats = utils_squad.convert_examples_to_features(
        eval_ex, tokenizer, is_training=False, **windows
    )
    eval_f = utils_squad.stack_features(eval_feats)
    starts, ends = [], []
    with torch.no_grad():
        for first in range(0, len(eval_feats), args.eval_batch_size):
            sl = slice(first, first + args.eval_batch_size)
            out = model.apply(result.params, eval_f["input_ids"][sl],
                              **{k: eval_f[k][sl] for k in INPUTS})  # fmt: skip
            starts.append(out.start_logits)
            ends.append(out.end_logits)
    predictions, nbest, null_odds = utils_squad.postprocess(
        eval_ex, eval_feats, torch.cat(starts), torch.cat(ends),
        n_best_size=args.n_best_size, max_answer_length=args.max_answer_length,
        do_lower_case=args.do_lower_case, version_2_with_negative=v2,
        null_score_diff_threshold=args.null_score_diff_threshold,
    )  # fmt: skip
    _loop.write_json(args.output_dir / "predictions.json", predictions)
    _loop.write_json(args.output_dir / "nbest_predictions.json", nbest)
    if v2:
        _loop.write_json(args.output_dir / "null_odds.json", null_odds)

    dataset = json.loads(args.predict_file.read_text(encoding="utf-8"))["data"]
    # ``predictions`` already applies the threshold; null_odds only feed best_* (v2.0).
    metrics = utils_squad_evaluate.evaluate(
        dataset, predictions, null_odds if v2 else None, threshold=float("inf")
    )
    metrics["step"] = result.step
    _loop.write_json(args.output_dir / "eval_results.json", metrics)
    for name, value in sorted(metrics.items()):
        print(f"{name} = {value}")
    return metrics


if __name__ == "__main__":
    main()
