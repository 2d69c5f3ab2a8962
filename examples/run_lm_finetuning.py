"""BERT pre-training / LM fine-tuning (masked LM + next sentence) on a text corpus, as a
functional loop: the seed's ``lm_finetuning/simple_lm_finetuning.py`` over ptfunc.

The seed's command line (its lm_finetuning README) runs as it is::

    python examples/run_lm_finetuning.py --train_corpus my_corpus.txt \\
        --bert_model bert-base-uncased --do_lower_case --output_dir finetuned_lm/ --do_train

with its other flags and defaults (``--max_seq_length``, ``--train_batch_size``,
``--learning_rate``, ``--num_train_epochs``, ``--warmup_proportion``,
``--gradient_accumulation_steps``, ``--on_memory`` (always: the corpus is held in
memory), ``--fp16``, ``--loss_scale``, ``--local_rank``, ``--no_cuda``, ``--seed``).
ptfunc adds ``--do_eval`` (held-out metrics), ``--save-steps N`` / ``--resume`` and
``--config-json``.

1. Corpus: one sentence per line, a blank line between documents (see ``utils_lm``). The
   last ``--eval-fraction`` of the documents are held out.
2. Examples: sentence pairs, half of them true successors (NSP label 0) and half random
   sentences of other documents (label 1); 15% of the tokens chosen for the masked LM
   (80% ``[MASK]``, 10% a random token, 10% unchanged). Training examples are re-paired
   and re-masked each epoch, all from ``--seed``: the batch of a step is a function of the
   step alone.
3. Model: ``BertForPreTraining`` from ``--model-dir`` (pretrained, e.g. to adapt BERT to a
   domain) or ``--config-json`` (random init, for pre-training from scratch and tests).
4. Training: ``_loop.train``: ``ptfunc.func.grad`` of the MLM + NSP loss, the seed's
   optimizer recipe (global-norm clipping, AdamW with warmup-linear decay, weight decay
   0.01 off biases and LayerNorm weights), checkpoints (params, optimizer state, step,
   key) every ``--save-steps`` and at the end; ``--resume`` continues bit-exactly.
5. The model and its tokenizer are saved to ``--output-dir`` (as 1.0). With ``--do_eval``,
   held-out metrics: masked-LM accuracy and loss over the chosen positions, NSP
   accuracy, printed and written to ``<output-dir>/eval_results.txt`` and ``.json``.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling _loop, utils_lm
import _loop  # noqa: E402
import utils_lm  # noqa: E402

import ptfunc  # noqa: E402
from ptfunc.archs import bert  # noqa: E402

MODEL_INPUTS = ("input_ids", "token_type_ids", "attention_mask")


def batch_for_step(
    step: int,
    batches: _loop.Batches,
    corpus: utils_lm.Corpus,
    tokenizer: Any,
    *,
    seed: int,
    max_seq_length: int,
) -> dict[str, Tensor]:
    """The training batch of ``step``: its examples drawn for (seed, epoch, index)."""
    epoch = step // batches.steps_per_epoch
    examples = [
        utils_lm.make_example(
            corpus,
            index,
            utils_lm.example_rng("train", seed, epoch, index),
            max_seq_length=max_seq_length,
            tokenizer=tokenizer,
        )
        for index in batches.indices(step).tolist()
    ]
    return utils_lm.collate(examples, max_seq_length)


def heldout_examples(
    corpus: utils_lm.Corpus, tokenizer: Any, *, seed: int, max_seq_length: int
) -> list[utils_lm.Example]:
    """One fixed example per start of the held-out corpus."""
    return [
        utils_lm.make_example(
            corpus,
            index,
            utils_lm.example_rng("eval", seed, 0, index),
            max_seq_length=max_seq_length,
            tokenizer=tokenizer,
        )
        for index in range(len(corpus.starts))
    ]


def evaluate(
    model: Any,
    params: Any,
    examples: Sequence[utils_lm.Example],
    *,
    batch_size: int,
    max_seq_length: int,
) -> dict[str, float]:
    """Masked-LM accuracy and mean loss over the labelled positions, NSP accuracy."""
    mlm_correct = mlm_count = nsp_correct = 0
    mlm_loss = 0.0
    for start in range(0, len(examples), batch_size):
        batch = utils_lm.collate(examples[start : start + batch_size], max_seq_length)
        device = next(iter(ptfunc.tree.leaves(params))).device
        batch = {k: v.to(device) for k, v in batch.items()}
        with torch.no_grad():
            out = model.apply(params, **{k: batch[k] for k in MODEL_INPUTS})
        labels = batch["masked_lm_labels"]
        chosen = labels != utils_lm.IGNORE
        logits = out.prediction_logits[chosen].float()
        targets = labels[chosen]
        mlm_loss += float(torch.nn.functional.cross_entropy(logits, targets, reduction="sum"))
        mlm_correct += int((logits.argmax(-1) == targets).sum())
        mlm_count += int(chosen.sum())
        nsp = out.seq_relationship_logits.argmax(-1)
        nsp_correct += int((nsp == batch["next_sentence_label"]).sum())
    return {
        "mlm_accuracy": mlm_correct / max(mlm_count, 1),
        "mlm_loss": mlm_loss / max(mlm_count, 1) if mlm_count else math.nan,
        "nsp_accuracy": nsp_correct / max(len(examples), 1),
        "examples": len(examples),
        "masked_tokens": mlm_count,
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = _loop.ExampleParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", "--train-corpus", dest="corpus", type=Path, required=True,
                        help="one sentence per line, blank lines between documents")  # fmt: skip
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--eval-fraction", type=float, default=0.1, help="held-out documents")
    parser.add_argument("--on-memory", action="store_true",
                        help="accepted for 1.0's command line (always in memory)")  # fmt: skip
    _loop.add_model_args(parser, ("bert",))
    _loop.add_training_args(parser, learning_rate=3e-5, batch_size=32, eval_batch_size=32,
                            num_train_epochs=3.0, warmup_proportion=0.1)  # fmt: skip
    parser.set_defaults(weight_decay=0.01)  # the seed's BertAdam recipe
    args = parser.parse_args(argv)
    if args.max_seq_length < 5:
        parser.error("--max-seq-length must leave room for [CLS] a [SEP] b [SEP]")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    _loop.setup(args)
    try:
        tokenizer = _loop.load_tokenizer(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"run_lm_finetuning: {error}", file=sys.stderr)
        return 1
    if not args.corpus.is_file():
        print(f"run_lm_finetuning: no corpus at {args.corpus}", file=sys.stderr)
        return 1
    corpus = utils_lm.tokenize_documents(utils_lm.read_documents(args.corpus), tokenizer)
    train_corpus, eval_corpus = utils_lm.split_corpus(corpus, args.eval_fraction)
    if not train_corpus.starts:
        print(
            "run_lm_finetuning: the training documents hold no sentence pair "
            "(a document needs two sentences)",
            file=sys.stderr,
        )
        return 1

    init_key, run_key = ptfunc.random.split(ptfunc.random.key(args.seed))
    model, params = _loop.load_model(args, bert.BertForPreTraining, init_key)
    if model.config.vocab_size < tokenizer.vocab_size:
        print(
            f"run_lm_finetuning: the model has {model.config.vocab_size} token embeddings; "
            f"the tokenizer has {tokenizer.vocab_size} tokens",
            file=sys.stderr,
        )
        return 1

    batches = _loop.batches(args, len(train_corpus.starts))
    total = _loop.num_train_steps(args, batches.steps_per_epoch)
    print(
        f"{len(train_corpus.documents)} training documents ({len(train_corpus.starts)} sentence "
        f"pairs), {len(eval_corpus.documents)} held out; BERT {ptfunc.tree.size(params):,} "
        f"params; {total} steps of {args.batch_size} x {args.max_seq_length} tokens",
        flush=True,
    )

    def get_batch(step: int) -> dict[str, Tensor]:
        return _loop.to_device(args, batch_for_step(
            step, batches, train_corpus, tokenizer,
            seed=args.seed, max_seq_length=args.max_seq_length,
        ))  # fmt: skip

    def loss_fn(p: Any, batch: dict[str, Tensor], key: Any) -> Tensor:
        return model.apply(p, **batch, train=True, key=key).loss

    if args.do_train:
        result = _loop.train_from_args(
            args, loss_fn, params, get_batch, total_steps=total, key=run_key
        )
        if result.step < total:
            print(f"stopped at step {result.step} of {total}; --resume continues", flush=True)
            return 0
        params = result.params
        if args.is_main:
            ptfunc.io.save_pretrained(args.output_dir, model, params)
            tokenizer.save_pretrained(args.output_dir)
    if not (args.do_eval and args.is_main):
        return 0

    examples = heldout_examples(
        eval_corpus if eval_corpus.starts else train_corpus,
        tokenizer,
        seed=args.seed,
        max_seq_length=args.max_seq_length,
    )
    metrics = evaluate(
        model, params, examples,
        batch_size=args.eval_batch_size, max_seq_length=args.max_seq_length,
    )  # fmt: skip
    if args.do_train:
        metrics["step"] = total
    metrics["heldout"] = bool(eval_corpus.starts)
    _loop.write_eval_results(args, metrics)
    where = "held-out" if eval_corpus.starts else "training (nothing held out)"
    print(
        f"{where}: mlm_accuracy {metrics['mlm_accuracy']:.4f}  mlm_loss {metrics['mlm_loss']:.4f}"
        f"  nsp_accuracy {metrics['nsp_accuracy']:.4f}  ({metrics['examples']} examples, "
        f"{metrics['masked_tokens']} masked tokens)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
