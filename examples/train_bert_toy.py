"""Train a small BERT classifier on a toy task with a hand-written functional loop.

This is ptfunc's end-to-end example: no ``nn.Module``, no ``torch.optim``. The
model is a static object, the params are a nested dict of tensors, a training
step is ``ptfunc.func.grad_and_value`` of a pure loss function, and the update
rule (Adam, written out) is a few ``ptfunc.tree.map`` calls over the params tree.
Plain SGD barely moves a freshly initialised post-LN BERT in a few hundred
steps (the gradients reaching attention are tiny next to the classifier's), so
the per-parameter step size of Adam is what makes the toy task train in ~100 steps.

The toy task: each example is ``[CLS] t1 t2 ... tn [PAD] ...`` with random tokens
and a random length; the label is 1 when the sequence contains the "needle"
token, 0 otherwise (half of the examples of each class). The classifier reads
the pooled ``[CLS]`` vector, so attention has to learn to look for the needle.

Run it (offline, CPU, well under a minute)::

    python examples/train_bert_toy.py                 # saves to a new temporary directory
    python examples/train_bert_toy.py --out /tmp/toy  # or to a directory of your choice
    python examples/train_bert_toy.py --steps 300 --lr 3e-4 --seed 1

It prints the loss and accuracy as it trains, saves the params with
``ptfunc.io.save`` (safetensors, with a ``config.json`` next to them), loads
them back with ``ptfunc.io.load``, checks that the reloaded params give
bit-identical logits, and prints a summary. It exits with status 1 when the
held-out accuracy is not clearly above chance or the reload check fails.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # run from a checkout, uninstalled
import ptfunc  # noqa: E402
from ptfunc.archs import bert  # noqa: E402

PAD, CLS, NEEDLE = 0, 1, 2  # special token ids; ordinary tokens are 3 .. vocab_size - 1
MIN_EVAL_ACCURACY = 0.75  # chance is 0.5


def make_data(n: int, seq_len: int, vocab_size: int, gen: torch.Generator):
    """``n`` examples: (input_ids (n, seq_len), attention_mask (n, seq_len), labels (n,))."""
    ids = torch.randint(NEEDLE + 1, vocab_size, (n, seq_len), generator=gen)
    ids[:, 0] = CLS
    lengths = torch.randint(seq_len // 2, seq_len + 1, (n,), generator=gen)
    labels = torch.arange(n) % 2  # balanced classes
    labels = labels[torch.randperm(n, generator=gen)]
    # Put the needle at a random position after [CLS] and before the padding.
    where = 1 + (torch.rand(n, generator=gen) * (lengths - 1)).long()
    rows = labels.nonzero().squeeze(1)
    ids[rows, where[rows]] = NEEDLE
    mask = (torch.arange(seq_len)[None, :] < lengths[:, None]).long()
    return ids * mask, mask, labels  # padded positions hold PAD (0)


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return (logits.argmax(-1) == labels).float().mean().item()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train a small BERT on a toy task.")
    parser.add_argument("--out", type=Path, default=None, help="output directory (default: temp)")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch.set_num_threads (default 1: fastest here)"
    )
    args = parser.parse_args(argv)
    # The model is tiny: splitting its small matmuls over threads costs more in
    # synchronisation than it gains, and much more on a busy machine.
    torch.set_num_threads(args.threads)
    start = time.perf_counter()

    # 1. A model is a config; params are data.
    config = bert.BertConfig(
        vocab_size=32,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=32,
        num_labels=2,
    )
    model = bert.BertForSequenceClassification(config)
    root = ptfunc.random.key(args.seed)
    init_key, dropout_key = ptfunc.random.split(root)
    params = model.init(init_key)
    print(f"BertForSequenceClassification: {ptfunc.tree.size(params):,} params")

    # 2. Toy data: a fixed training set, then a held-out set (later draws of the generator).
    seq_len = 16
    gen = torch.Generator().manual_seed(args.seed)
    train_ids, train_mask, train_labels = make_data(2048, seq_len, config.vocab_size, gen)
    eval_ids, eval_mask, eval_labels = make_data(512, seq_len, config.vocab_size, gen)

    # 3. The loss is a pure function of (params, batch, key); dropout is on (train=True).
    def loss_fn(params, ids, mask, labels, key):
        out = model.apply(params, ids, attention_mask=mask, labels=labels, train=True, key=key)
        return out.loss, out.logits  # (value to differentiate, auxiliary output)

    grad_and_loss = ptfunc.func.grad_and_value(loss_fn, has_aux=True)

    def evaluate(params, ids, mask) -> torch.Tensor:
        return model.apply(params, ids, attention_mask=mask).logits  # train=False: no dropout

    # 4. Adam, written out: its state (first and second moments) are trees like the params.
    b1, b2, eps = 0.9, 0.999, 1e-8
    mu = ptfunc.tree.map(torch.zeros_like, params)
    nu = ptfunc.tree.map(torch.zeros_like, params)

    def adam_step(params, grads, mu, nu, t):
        mu = ptfunc.tree.map(lambda m, g: b1 * m + (1 - b1) * g, mu, grads)
        nu = ptfunc.tree.map(lambda v, g: b2 * v + (1 - b2) * g * g, nu, grads)
        lr_t = args.lr * (1 - b2**t) ** 0.5 / (1 - b1**t)  # bias correction (Kingma & Ba)
        params = ptfunc.tree.map(lambda p, m, v: p - lr_t * m / (v.sqrt() + eps), params, mu, nu)
        return params, mu, nu

    print(
        f"training {args.steps} steps, batch {args.batch}, Adam lr={args.lr}, "
        f"dropout {config.hidden_dropout_prob}"
    )
    n_train = train_ids.shape[0]
    steps_per_epoch = n_train // args.batch
    for step in range(args.steps):
        if step % steps_per_epoch == 0:  # a new epoch: reshuffle
            order = torch.randperm(n_train, generator=gen)
        i = step % steps_per_epoch
        idx = order[i * args.batch : (i + 1) * args.batch]
        key = ptfunc.random.fold_in(dropout_key, step)  # a fresh dropout key per step
        grads, (loss, logits) = grad_and_loss(
            params, train_ids[idx], train_mask[idx], train_labels[idx], key
        )
        params, mu, nu = adam_step(params, grads, mu, nu, step + 1)
        if step % 25 == 0 or step == args.steps - 1:
            print(
                f"  step {step:4d}  loss {loss.item():.4f}  "
                f"batch accuracy {accuracy(logits, train_labels[idx]):.3f}"
            )

    # 5. Evaluate without dropout, on the training set and the held-out set.
    train_acc = accuracy(evaluate(params, train_ids, train_mask), train_labels)
    eval_logits = evaluate(params, eval_ids, eval_mask)
    eval_acc = accuracy(eval_logits, eval_labels)
    print(f"train accuracy {train_acc:.3f}, held-out accuracy {eval_acc:.3f} (chance 0.5)")

    # 6. Save (safetensors, dotted names, plus config.json), reload, compare bit for bit.
    out_dir = args.out if args.out is not None else Path(tempfile.mkdtemp(prefix="ptfunc-toy-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = out_dir / "model.safetensors"
    ptfunc.io.save(weights, params)
    config.to_json_file(out_dir / "config.json")

    reloaded = ptfunc.io.load(weights)
    reloaded_model = bert.BertForSequenceClassification(
        bert.BertConfig.from_json_file(out_dir / "config.json")
    )
    same_params = all(
        torch.equal(a, b) for a, b in zip(ptfunc.tree.leaves(params), ptfunc.tree.leaves(reloaded))
    ) and ptfunc.tree.structure(params) == ptfunc.tree.structure(reloaded)
    reloaded_logits = reloaded_model.apply(reloaded, eval_ids, attention_mask=eval_mask).logits
    same_logits = torch.equal(eval_logits, reloaded_logits)

    print()
    print("summary")
    print(f"  steps:               {args.steps} (batch {args.batch}, seed {args.seed})")
    print(f"  final train accuracy {train_acc:.3f} on {n_train} examples (eval mode)")
    print(f"  held-out accuracy    {eval_acc:.3f} on {eval_ids.shape[0]} examples")
    print(f"  saved params:        {weights} ({weights.stat().st_size:,} bytes)")
    print(
        f"  reload:              params equal: {same_params}, logits bit-identical: {same_logits}"
    )
    print(f"  wall time:           {time.perf_counter() - start:.1f} s")

    failures = []
    if eval_acc < MIN_EVAL_ACCURACY:
        failures.append(f"held-out accuracy {eval_acc:.3f} < {MIN_EVAL_ACCURACY}")
    if not (same_params and same_logits):
        failures.append("reloaded params do not reproduce the logits")
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
