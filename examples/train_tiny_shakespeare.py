"""Train the small GPT-2 that ships inside ptfunc (``ptfunc generate``'s default model).

    python examples/train_tiny_shakespeare.py [--corpus PATH] [--steps 1500] [--out DIR]

1. learns a byte-level BPE vocabulary (``ptfunc.tokenize.train_gpt2_tokenizer``) on
   tinyshakespeare (public domain; ``../shared/fixtures/corpora`` by default);
2. trains a 4-layer GPT-2 (n_embd 128, context 128) with ``ptfunc.optim.adamw`` and a
   warmup-linear schedule, functional steps with ``ptfunc.func.grad_and_value`` and
   dropout keys, printing the loss as it goes;
3. writes ``config.json``, ``model.safetensors``, ``vocab.json`` and ``merges.txt`` to
   ``--out`` (default: the package's ``ptfunc/assets/tiny-shakespeare``).

Everything is seeded, so a run reproduces the shipped model (on the same torch build).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import ptfunc
from ptfunc import optim
from ptfunc.archs import gpt2
from ptfunc.func import grad_and_value
from ptfunc.tokenize import train_gpt2_tokenizer

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO.parent / "shared" / "fixtures" / "corpora" / "tinyshakespeare.txt"
DEFAULT_OUT = REPO / "ptfunc" / "assets" / "tiny-shakespeare"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--vocab", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    text = args.corpus.read_text(encoding="utf-8")
    start = time.perf_counter()
    tokenizer = train_gpt2_tokenizer(text.splitlines(keepends=True), args.vocab)
    ids = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    print(
        f"BPE vocab {tokenizer.vocab_size} learned in {time.perf_counter() - start:.1f}s; "
        f"corpus {len(text):,} chars -> {len(ids):,} tokens"
    )
    split = int(0.95 * len(ids))
    train, held_out = ids[:split], ids[split:]

    context = 128
    config = gpt2.GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=context,
        n_ctx=context,
        n_embd=128,
        n_layer=4,
        n_head=4,
        resid_pdrop=0.1,
        embd_pdrop=0.1,
        attn_pdrop=0.1,
    )
    model = gpt2.GPT2LMHeadModel(config)
    params = model.init(ptfunc.random.key(0))
    print(
        f"GPT-2 {ptfunc.tree.size(params):,} params; {args.steps} steps of {args.batch} x {context}"
    )
    opt = optim.adamw(
        lr=3e-3,
        weight_decay=0.01,
        mask=optim.no_decay_mask,
        schedule=optim.schedules.warmup_linear(100, args.steps),
    )
    state = opt.init(params)
    g = torch.Generator().manual_seed(0)

    def batch(data: torch.Tensor) -> torch.Tensor:
        starts = torch.randint(0, len(data) - context, (args.batch,), generator=g)
        return torch.stack([data[s : s + context] for s in starts.tolist()])

    def loss_fn(p, x, key):
        return model.apply(p, x, labels=x, train=True, key=key).loss

    start = time.perf_counter()
    for step in range(args.steps):
        x = batch(train)
        grads, loss = grad_and_value(loss_fn)(
            params, x, ptfunc.random.fold_in(ptfunc.random.key(1), step)
        )
        params, state = optim.step(opt, grads, state, params, inplace=True)
        if step % 100 == 0 or step == args.steps - 1:
            with torch.no_grad():
                x_val = batch(held_out)
                val = model.apply(params, x_val, labels=x_val).loss
            print(
                f"  step {step:5d}  loss {float(loss):.3f}  held-out {float(val):.3f}  "
                f"({time.perf_counter() - start:.0f}s)",
                flush=True,
            )
    args.out.mkdir(parents=True, exist_ok=True)
    ptfunc.io.save_pretrained(args.out, model, params)
    tokenizer.save_vocabulary(str(args.out))
    prompt = torch.tensor([tokenizer.encode("ROMEO:")])
    sample = ptfunc.generate(
        model,
        params,
        prompt,
        max_new_tokens=40,
        key=ptfunc.random.key(2),
        temperature=0.8,
        top_k=40,
    )
    print(f"saved to {args.out}\nsample:\n{tokenizer.decode(sample[0].tolist())}")


if __name__ == "__main__":
    main()
