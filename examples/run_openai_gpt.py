"""Fine-tune OpenAI GPT with its double heads (language model + multiple choice) on the
ROCStories cloze test, then report accuracy: the seed's ``run_openai_gpt.py`` over ptfunc.

The seed's command line runs as it is (flags with underscores or hyphens)::

    python examples/run_openai_gpt.py --model_name openai-gpt --do_train --do_eval \\
        --train_dataset "$ROC_STORIES_DIR/cloze_test_val__spring2016 - cloze_test_ALL_val.csv" \\
        --eval_dataset "$ROC_STORIES_DIR/cloze_test_test__spring2016 - cloze_test_ALL_test.csv" \\
        --output_dir ../log --train_batch_size 16

with its other flags and defaults (``--num_train_epochs 3``, ``--eval_batch_size 16``,
``--learning_rate 6.25e-5``, ``--warmup_steps 0``, ``--weight_decay 0.01``,
``--lm_coef 0.9``, ``--max_grad_norm 1``, ``--max_steps``, ``--gradient_accumulation_steps``,
``--adam_epsilon``, ``--seed``); ptfunc adds ``--fp16``, ``--local_rank``, ``--save-steps N``
/ ``--resume`` (bit-exact), ``--config-json`` and ``--tokenizer-dir`` (tests, toys).

1. Data: each CSV row (a header first) is a story of four sentences, two candidate
   endings and the 1-based right one (``load_rocstories``). Both choices become
   ``_start_ story _delimiter_ ending _classify_`` (story and ending each cut to
   ``n_positions // 2 - 2`` tokens), padded with id 0 to the longest choice of both files:
   ``input_ids`` (n, 2, L) int64, ``mc_token_ids`` (n, 2) the ``_classify_`` positions,
   ``lm_labels`` (n, 2, L) the ids with -1 at padding (ignored), ``mc_labels`` (n,).
2. Model: ``OpenAIGPTDoubleHeadsModel``; the three special tokens are added to the
   tokenizer and the embeddings grown to match (``resize_token_embeddings``, new rows
   drawn from the seed's init).
3. Training: the loss is 1.0's recipe ``lm_coef * lm_loss + mc_loss`` (``out[0]`` and
   ``out[1]``, as 1.0's tuple) in the shared loop of ``_loop.py``: AdamW with
   warmup-linear decay, no decay on biases and LayerNorm weights, global-norm clipping at
   ``--max_grad_norm`` (1.0 declared the flag but never clipped), checkpoints and resume.
   The model and tokenizer are saved to ``--output_dir``.
4. Evaluation (no dropout): ``eval_loss`` (the multiple-choice loss, averaged over batches
   as 1.0 does), ``eval_accuracy`` and ``train_loss`` (the mean loss of the last epoch, as
   1.0 resets it each epoch), printed and written to ``eval_results.txt`` (1.0's lines) and
   ``eval_results.json``.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _loop  # noqa: E402

import ptfunc  # noqa: E402
from ptfunc.archs import openai_gpt  # noqa: E402

SPECIAL_TOKENS = ("_start_", "_delimiter_", "_classify_")
PAD_ID = 0  # 1.0 pads input ids with 0 (a real token; masked out of the loss by -1 labels)


class Story(NamedTuple):
    """A ROCStories cloze example: the story, its two candidate endings, the right one."""

    story: str
    ending_1: str
    ending_2: str
    label: int  # 0 or 1


class Features(NamedTuple):
    """int64 tensors: ``input_ids`` / ``lm_labels`` (n, 2, L), ``mc_token_ids`` (n, 2),
    ``mc_labels`` (n,)."""

    input_ids: Tensor
    mc_token_ids: Tensor
    lm_labels: Tensor
    mc_labels: Tensor


def load_rocstories(path: Path) -> list[Story]:
    """The rows of a ROCStories cloze CSV (after its header): sentences 1-4 joined by
    spaces, the two endings, and the 1-based right ending as a 0-based label.

    Raises:
        ValueError: a row with fewer than 8 columns or a label other than 1 or 2.
    """
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))[1:]
    stories = []
    for number, row in enumerate(rows, start=2):
        if len(row) < 8 or row[-1].strip() not in ("1", "2"):
            raise ValueError(
                f"{path}, line {number}: expected id, 4 sentences, 2 endings and the right "
                f"ending (1 or 2), got {row!r}"
            )
        stories.append(Story(" ".join(row[1:5]), row[5], row[6], int(row[-1]) - 1))
    return stories


def encode(tokenizer: Any, stories: list[Story]) -> list[tuple[list[int], ...]]:
    """Token ids of each story and ending (1.0's ``tokenize`` then ``convert_tokens_to_ids``)."""

    def ids(text: str) -> list[int]:
        return tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text))

    return [(ids(s.story), ids(s.ending_1), ids(s.ending_2)) for s in stories]


def input_length(encoded: list[list[tuple[list[int], ...]]], n_positions: int) -> int:
    """The padded length of both splits: the longest capped choice + 3 special tokens."""
    cap = n_positions // 2 - 2
    longest = max(
        len(story[:cap]) + max(len(e1[:cap]), len(e2[:cap])) + 3
        for split in encoded
        for story, e1, e2 in split
    )
    return min(longest, n_positions)


def make_features(
    encoded: list[tuple[list[int], ...]],
    stories: list[Story],
    length: int,
    cap: int,
    special_ids: tuple[int, int, int],
) -> Features:
    """The model inputs of one split (see the module docstring)."""
    start, delimiter, classify = special_ids
    n = len(stories)
    input_ids = torch.full((n, 2, length), PAD_ID, dtype=torch.int64)
    lm_labels = torch.full((n, 2, length), -1, dtype=torch.int64)
    mc_token_ids = torch.zeros((n, 2), dtype=torch.int64)
    for i, (story, *endings) in enumerate(encoded):
        for j, ending in enumerate(endings):
            ids = [start, *story[:cap], delimiter, *ending[:cap], classify][:length]
            input_ids[i, j, : len(ids)] = torch.tensor(ids)
            lm_labels[i, j, : len(ids)] = torch.tensor(ids)
            mc_token_ids[i, j] = len(ids) - 1
    mc_labels = torch.tensor([s.label for s in stories], dtype=torch.int64)
    return Features(input_ids, mc_token_ids, lm_labels, mc_labels)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = _loop.ExampleParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train-dataset", type=Path, help="ROCStories CSV (--do_train)")
    parser.add_argument("--eval-dataset", type=Path, help="ROCStories CSV (--do_eval)")
    parser.add_argument("--lm-coef", type=float, default=0.9, help="weight of the LM loss")
    parser.add_argument("--n-valid", type=int, default=374, help="accepted (1.0 never used it)")
    _loop.add_model_args(parser, ("openai-gpt",), default_model="openai-gpt")
    _loop.add_training_args(parser, learning_rate=6.25e-5, batch_size=8, eval_batch_size=16)
    parser.set_defaults(weight_decay=0.01)
    args = parser.parse_args(argv)
    if args.do_train and args.train_dataset is None:
        parser.error("--do_train needs --train_dataset")
    if args.do_eval and args.eval_dataset is None:
        parser.error("--do_eval needs --eval_dataset")
    return args


def load_tokenizer_and_model(args: argparse.Namespace, key: Any) -> tuple[Any, Any, Any]:
    """The tokenizer with the three special tokens added and the double-heads model with
    embeddings for them (a fine-tuned directory already has both)."""
    tokenizer = _loop.load_tokenizer(args)
    tokenizer.add_tokens(list(SPECIAL_TOKENS))
    init_key, resize_key = ptfunc.random.split(key)
    model, params = _loop.load_model(args, openai_gpt.OpenAIGPTDoubleHeadsModel, init_key)
    if model.config.vocab_size != len(tokenizer):
        model, params = model.resize_token_embeddings(params, len(tokenizer), key=resize_key)
        params = _loop.to_device(args, params)
    return tokenizer, model, params


def evaluate(
    args: argparse.Namespace, model: Any, params: Any, features: Features
) -> dict[str, float]:
    """Multiple-choice loss (mean over batches, as 1.0) and accuracy, without dropout."""
    losses, correct, n = [], 0, features.mc_labels.shape[0]
    with torch.no_grad():
        for first in range(0, n, args.eval_batch_size):
            sl = slice(first, first + args.eval_batch_size)
            out = model.apply(
                params, features.input_ids[sl], mc_token_ids=features.mc_token_ids[sl],
                lm_labels=features.lm_labels[sl], mc_labels=features.mc_labels[sl],
            )  # fmt: skip
            _, mc_loss, _, mc_logits = out[:4]
            losses.append(float(mc_loss))
            correct += int((mc_logits.argmax(-1) == features.mc_labels[sl]).sum())
    return {"eval_loss": sum(losses) / len(losses), "eval_accuracy": correct / n}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    _loop.setup(args)
    init_key, run_key = ptfunc.random.split(ptfunc.random.key(args.seed))
    tokenizer, model, params = load_tokenizer_and_model(args, init_key)
    print(f"{type(model).__name__}: {ptfunc.tree.size(params):,} params", file=sys.stderr)

    paths = [p for p, on in ((args.train_dataset, args.do_train), (args.eval_dataset,
             args.do_eval)) if on]  # fmt: skip
    stories = [load_rocstories(p) for p in paths]
    encoded = [encode(tokenizer, s) for s in stories]
    n_positions = model.config.n_positions
    length = input_length(encoded, n_positions)
    special_ids = tuple(tokenizer.convert_tokens_to_ids(list(SPECIAL_TOKENS)))
    splits = [
        _loop.to_device(args, make_features(e, s, length, n_positions // 2 - 2, special_ids))
        for e, s in zip(encoded, stories)
    ]
    metrics: dict[str, Any] = {}
    if args.do_train:
        train_f = splits[0]
        batches = _loop.batches(args, train_f.mc_labels.shape[0])
        total = _loop.num_train_steps(args, batches.steps_per_epoch)  # for the last epoch

        def loss_fn(params, idx, key):
            out = model.apply(
                params, train_f.input_ids[idx], mc_token_ids=train_f.mc_token_ids[idx],
                lm_labels=train_f.lm_labels[idx], mc_labels=train_f.mc_labels[idx],
                train=True, key=key,
            )  # fmt: skip
            return args.lm_coef * out[0] + out[1]

        result = _loop.fine_tune(args, loss_fn, params, batches, key=run_key, model=model,
                                 tokenizer=tokenizer)  # fmt: skip
        if result is None:  # stopped early (--stop-at-step): no evaluation
            return {}
        params = result.params
        steps_per_epoch = max(1, batches.steps_per_epoch // args.gradient_accumulation_steps)
        log = _loop.read_log(args.output_dir)
        last_epoch = [r["loss"] for r in log if r["step"] > (total - 1) // steps_per_epoch
                      * steps_per_epoch]  # fmt: skip
        metrics["train_loss"] = sum(last_epoch) / len(last_epoch) if last_epoch else math.nan
        metrics["step"] = result.step
    else:
        metrics["train_loss"] = None  # as 1.0 writes it without --do_train
    if args.do_eval and args.is_main:
        metrics.update(evaluate(args, model, params, splits[-1]))
        _loop.write_eval_results(args, metrics)
    return metrics


if __name__ == "__main__":
    main()
