"""GPT-2-small: ptfunc against ``transformers`` on the same weights and inputs, in one run.

    python benchmarks/gpt2.py [--repeats 3] [--threads N] [--quick]

Rows (ratios of interleaved medians, ptfunc / transformers):

* forward (eval, no_grad), batch 4 x 256: time ratio (target <= 1.0);
* greedy generation, a 1 x 32 prompt and 128 new tokens with the KV cache: time ratio
  (tokens/s ratio = 1 / time ratio; target >= 1.0 tokens/s);
* GPT-2 tokenizer on tinyshakespeare (when ``../shared/fixtures`` is present): ptfunc
  against transformers' ``GPT2Tokenizer`` (Rust) and pytorch-transformers 1.0's pure-Python
  one (the slow reference; transformers 5 has none), fresh tokenizers each call.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, os.path.dirname(__file__))
from _models import gpt2_pair, greedy_generate_fns  # noqa: E402
from _timing import Row, format_table, time_interleaved  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="tiny config: a smoke test")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import transformers

    batch, seq, new = (2, 32, 16) if args.quick else (4, 256, 128)
    pair = gpt2_pair(args.quick)
    reference, model, params = pair.ref, pair.model, pair.params
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 50257, (batch, seq), generator=g)
    prompt = torch.randint(0, 50257, (1, 32), generator=g)
    print(
        f"torch {torch.__version__}, transformers {transformers.__version__}, "
        f"{torch.get_num_threads()} threads; GPT-2 {'tiny' if args.quick else 'small (124M)'}, fp32"
    )

    rows = []
    with torch.no_grad():
        ours_out = model.apply(params, ids).logits
        ref_out = reference(ids).logits
        check = f"max|d|={(ours_out - ref_out).abs().max().item():.1e}"
        stats = time_interleaved(
            [lambda: model.apply(params, ids), lambda: reference(ids)],
            repeats=args.repeats,
            warmup=1,
        )
        rows.append(Row(f"forward {batch}x{seq}", *stats, check))

        ours_gen, ref_gen = greedy_generate_fns(pair, prompt, new)

        same = torch.equal(ours_gen(), ref_gen())
        stats = time_interleaved([ours_gen, ref_gen], repeats=args.repeats, warmup=1)
        rows.append(Row(f"greedy generate 1x32 + {new}", *stats, f"same tokens: {same}"))

    corpus = FIXTURES / "corpora" / "tinyshakespeare.txt"
    if corpus.is_file():
        from ptfunc.tokenize import GPT2Tokenizer

        text = corpus.read_text(encoding="utf-8")
        vocab, merges = FIXTURES / "gpt2" / "encoder.json", FIXTURES / "gpt2" / "vocab.bpe"

        def ours_tok():
            return GPT2Tokenizer(vocab, merges).encode(text, add_special_tokens=False)

        def ref_tok():
            tok = transformers.GPT2Tokenizer(
                str(FIXTURES / "gpt2" / "hf-whisper" / "vocab.json"),
                str(FIXTURES / "gpt2" / "hf-whisper" / "merges.txt"),
            )
            return tok.encode(text, add_special_tokens=False)

        same = ours_tok() == ref_tok()
        stats = time_interleaved([ours_tok, ref_tok], repeats=args.repeats, warmup=0)
        rows.append(Row("tokenize tinyshakespeare (cold) / Rust", *stats, f"same ids: {same}"))
        try:  # the slow (pure Python) reference: pytorch-transformers 1.0's GPT2Tokenizer
            import logging

            import pytorch_transformers

            logging.getLogger("pytorch_transformers").setLevel(logging.ERROR)

            def slow_tok():
                tok = pytorch_transformers.GPT2Tokenizer(str(vocab), str(merges))
                return tok.encode(text)

            same = ours_tok() == slow_tok()
            stats = time_interleaved([ours_tok, slow_tok], repeats=1, warmup=0)
            rows.append(
                Row("tokenize tinyshakespeare (cold) / 1.0 Python", *stats, f"same ids: {same}")
            )
        except ImportError:
            pass
    print()
    print(format_table(rows, peer="transformers"))
    print("\nratio = ptfunc / transformers time (< 1: ptfunc faster); tokens/s ratio = 1 / ratio")


if __name__ == "__main__":
    main()
