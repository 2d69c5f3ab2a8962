"""Fine-tune BERT for extractive question answering on SQuAD v1.1 / v2.0, then predict
and score the predictions with the official metrics (exact match and F1).

The seed README's command line runs as it is (underscores or hyphens)::

    python examples/run_squad.py --model_type bert \\
        --model_name_or_path bert-large-uncased-whole-word-masking --do_train --do_eval \\
        --do_lower_case --train_file $SQUAD_DIR/train-v1.1.json \\
        --predict_file $SQUAD_DIR/dev-v1.1.json --learning_rate 3e-5 --num_train_epochs 2 \\
        --max_seq_length 384 --doc_stride 128 --output_dir ../models/wwm_uncased_squad/ \\
        --per_gpu_eval_batch_size=3 --per_gpu_train_batch_size=3

with 1.0's other flags and defaults (``--version_2_with_negative``,
``--null_score_diff_threshold``, ``--n_best_size``, ``--max_answer_length``,
``--max_query_length``, ``--gradient_accumulation_steps``, ``--fp16``, ``--local_rank``,
...); ptfunc adds ``--save-steps N`` / ``--resume`` (bit-exact) and ``--config-json``.
``--model_type`` is ``bert``, ``roberta``, ``distilbert``, ``albert``, ``electra`` or
``deberta-v2`` (1.0's xlnet / xlm beam-search heads are not wired here); RoBERTa's windows
are ``<s> question </s></s> window </s>`` and it reads no segment ids, nor DistilBERT.

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
   answerable / unanswerable subsets, printed and written to ``eval_results.txt`` and
   ``eval_results.json``. ``--do_eval`` without ``--do_train`` predicts with the model
   saved in ``--output-dir`` (as 1.0) or else ``--model_name_or_path``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _loop  # noqa: E402
import utils_glue  # noqa: E402  (the model types' input layouts)
import utils_squad  # noqa: E402
import utils_squad_evaluate  # noqa: E402

import ptfunc  # noqa: E402
from ptfunc.archs import albert, bert, deberta_v2, distilbert, electra, roberta  # noqa: E402
from ptfunc.tokenize import BertTokenizer  # noqa: E402

MODELS = {
    "bert": bert.BertForQuestionAnswering,
    "roberta": roberta.RobertaForQuestionAnswering,
    "distilbert": distilbert.DistilBertForQuestionAnswering,
    "albert": albert.AlbertForQuestionAnswering,
    "electra": electra.ElectraForQuestionAnswering,
    "deberta-v2": deberta_v2.DebertaV2ForQuestionAnswering,
}


def input_names(model_type: str, config: Any) -> tuple[str, ...]:
    """The feature names the model reads besides ``input_ids`` (no segment ids for
    RoBERTa, DistilBERT, or a DeBERTa-v2 without token types)."""
    if utils_glue.takes_token_types(model_type, config):
        return ("attention_mask", "token_type_ids")
    return ("attention_mask",)


def window_options(args: argparse.Namespace) -> dict[str, Any]:
    """``convert_examples_to_features``'s window and layout options for ``args``."""
    lay = utils_glue.layout(args.model_type)
    return dict(max_seq_length=args.max_seq_length, doc_stride=args.doc_stride,
                max_query_length=args.max_query_length, sep_token_extra=lay.sep_token_extra,
                token_types=lay.token_types)  # fmt: skip


def load_tokenizer(args: argparse.Namespace) -> Any:
    """``--tokenizer-dir``'s tokenizer; RoBERTa's with ``add_prefix_space`` (each document
    word is tokenised alone, so it is encoded as inside a sentence, as transformers'
    SQuAD features do)."""
    if args.model_type == "roberta":
        return _loop.load_tokenizer(args, add_prefix_space=True)
    return _loop.load_tokenizer(args)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = _loop.ExampleParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train-file", type=Path, help="SQuAD JSON to train on (--do_train)")
    parser.add_argument("--predict-file", type=Path, help="SQuAD JSON to score (--do_eval)")
    parser.add_argument("--version-2-with-negative", action="store_true",
                        help="SQuAD 2.0: some questions have no answer")  # fmt: skip
    parser.add_argument("--null-score-diff-threshold", type=float, default=0.0)
    parser.add_argument("--max-seq-length", type=int, default=384)
    parser.add_argument("--doc-stride", type=int, default=128)
    parser.add_argument("--max-query-length", type=int, default=64)
    parser.add_argument("--n-best-size", type=int, default=20)
    parser.add_argument("--max-answer-length", type=int, default=30)
    parser.add_argument("--verbose-logging", action="store_true",
                        help="accepted for 1.0's command lines (no extra logging)")  # fmt: skip
    _loop.add_model_args(parser, tuple(MODELS))
    _loop.add_training_args(parser, learning_rate=5e-5, batch_size=8, eval_batch_size=8)
    args = parser.parse_args(argv)
    if args.do_train and args.train_file is None:
        parser.error("--do_train needs --train_file")
    if args.do_eval and args.predict_file is None:
        parser.error("--do_eval needs --predict_file")
    return args


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = parse_args(argv)
    _loop.setup(args)
    tokenizer = load_tokenizer(args)
    v2 = args.version_2_with_negative
    windows = window_options(args)
    init_key, run_key = ptfunc.random.split(ptfunc.random.key(args.seed))
    model, params = _loop.load_model(args, MODELS[args.model_type], init_key, num_labels=2)
    print(f"{type(model).__name__}: {ptfunc.tree.size(params):,} params", file=sys.stderr)

    metrics: dict[str, float] = {}
    if args.do_train:
        train_ex = utils_squad.read_squad_examples(
            args.train_file, is_training=True, version_2_with_negative=v2
        )
        train_f = _loop.to_device(args, utils_squad.stack_features(
            utils_squad.convert_examples_to_features(train_ex, tokenizer, is_training=True,
                                                     **windows)
        ))  # fmt: skip
        n_train = train_f["input_ids"].shape[0]
        print(f"{len(train_ex)} questions -> {n_train} windows", file=sys.stderr)
        batches = _loop.batches(args, n_train)

        names = input_names(args.model_type, model.config)

        def loss_fn(params, idx, key):
            out = model.apply(
                params, train_f["input_ids"][idx],
                start_positions=train_f["start_positions"][idx],
                end_positions=train_f["end_positions"][idx],
                train=True, key=key, **{k: train_f[k][idx] for k in names},
            )  # fmt: skip
            return out.loss

        result = _loop.fine_tune(args, loss_fn, params, batches, key=run_key, model=model,
                                 tokenizer=tokenizer)  # fmt: skip
        if result is None:  # stopped early (--stop-at-step): no prediction
            return {}
        params, metrics["step"] = result.params, result.step
    if args.do_eval and args.is_main:
        metrics.update(predict_and_score(args, model, params, tokenizer, windows))
        _loop.write_eval_results(args, metrics)
    return metrics


def predict_and_score(
    args: argparse.Namespace, model: Any, params: Any, tokenizer: Any, windows: dict[str, Any]
) -> dict[str, float]:
    """Predict every window of ``--predict-file`` without dropout, write predictions.json,
    nbest_predictions.json (and null_odds.json for v2.0), and score them."""
    v2 = args.version_2_with_negative
    eval_ex = utils_squad.read_squad_examples(
        args.predict_file, is_training=False, version_2_with_negative=v2
    )
    eval_feats = utils_squad.convert_examples_to_features(
        eval_ex, tokenizer, is_training=False, **windows
    )
    eval_f = _loop.to_device(args, utils_squad.stack_features(eval_feats))
    names = input_names(args.model_type, model.config)
    starts, ends = [], []
    with torch.no_grad():
        for first in range(0, len(eval_feats), args.eval_batch_size):
            sl = slice(first, first + args.eval_batch_size)
            out = model.apply(params, eval_f["input_ids"][sl],
                              **{k: eval_f[k][sl] for k in names})  # fmt: skip
            starts.append(out.start_logits.cpu())
            ends.append(out.end_logits.cpu())
    predictions, nbest, null_odds = utils_squad.postprocess(
        eval_ex, eval_feats, torch.cat(starts), torch.cat(ends),
        n_best_size=args.n_best_size, max_answer_length=args.max_answer_length,
        do_lower_case=args.do_lower_case, version_2_with_negative=v2,
        null_score_diff_threshold=args.null_score_diff_threshold,
        tokens_to_text=None if isinstance(tokenizer, BertTokenizer)
        else tokenizer.convert_tokens_to_string,
    )  # fmt: skip
    _loop.write_json(args.output_dir / "predictions.json", predictions)
    _loop.write_json(args.output_dir / "nbest_predictions.json", nbest)
    if v2:
        _loop.write_json(args.output_dir / "null_odds.json", null_odds)

    dataset = json.loads(args.predict_file.read_text(encoding="utf-8"))["data"]
    # ``predictions`` already applies the threshold; null_odds only feed best_* (v2.0).
    return utils_squad_evaluate.evaluate(
        dataset, predictions, null_odds if v2 else None, threshold=float("inf")
    )


if __name__ == "__main__":
    main()
