"""Tokenizers on pathological and cold-cache input: ptfunc against the Rust ``tokenizers``.

    python benchmarks/tokenize_pathological.py [--repeats 3] [--megabytes 1.0] [--quick]

Rows (ratios of interleaved medians, ptfunc / Rust ``tokenizers``; < 1: ptfunc faster):

* ``1 MB letters, no space``: one "word" of random ASCII letters, the denial-of-service
  case of issue 17 (the classic BPE loop, pytorch-transformers 1.0's included, is
  quadratic in a word's length: 100,000 letters took over a minute). ptfunc's GPT-2,
  OpenAI GPT and XLM tokenizers, each against the Rust GPT-2 tokenizer on the same text
  (for OpenAI GPT and XLM the Rust GPT-2 is a yardstick, not the same algorithm); and the
  BPE trainer (300 merges, on the first 100 KB: the Rust trainer is quadratic too)
  against the Rust ``BpeTrainer`` with the same settings, one run each;
* ``wikitext-2 ... cold``: GPT-2 ``encode`` of every line of
  ``corpora/wikitext-2.test.txt`` with both word caches emptied before each call;
  ``warm``: the same with the caches kept from the previous call.

The Rust tokenizer is ``tokenizers.Tokenizer(BPE.from_file(vocab.json, merges.txt))`` with
GPT-2's byte-level pre-tokenizer, built from ``../shared/fixtures/gpt2/hf-whisper`` (the
same vocabulary as ``encoder.json`` + ``vocab.bpe``, which ptfunc reads); the outputs
column says whether both give the same ids. Needs the shared fixtures and ``tokenizers``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import string
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))
from _timing import Row, format_table, time_interleaved  # noqa: E402

FIXTURES = Path(
    os.environ.get("PTFUNC_FIXTURES", Path(__file__).resolve().parents[2] / "shared" / "fixtures")
)


def _rust_gpt2(gpt2: Path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    tok = Tokenizer(
        models.BPE.from_file(
            str(gpt2 / "hf-whisper" / "vocab.json"), str(gpt2 / "hf-whisper" / "merges.txt")
        )
    )
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return tok


def _rust_trainer(texts: list[str], vocab_size: int) -> list:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    return tok


def _xlm_files(openai: Path, directory: Path) -> tuple[Path, Path]:
    """OpenAI GPT's ``</w>`` BPE written in XLM's file format (merges without header)."""
    merges = (openai / "vocab_40000.bpe").read_text(encoding="utf-8").split("\n")[1:]
    (directory / "merges.txt").write_text("\n".join(m for m in merges if m) + "\n", "utf-8")
    vocab = json.loads((openai / "encoder_bpe_40000.json").read_text(encoding="utf-8"))
    (directory / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    return directory / "vocab.json", directory / "merges.txt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--megabytes", type=float, default=1.0, help="size of the letter run")
    parser.add_argument("--quick", action="store_true", help="100 KB and 500 lines: seconds")
    args = parser.parse_args()
    gpt2, corpus = FIXTURES / "gpt2", FIXTURES / "corpora" / "wikitext-2.test.txt"
    if not (gpt2 / "encoder.json").is_file() or not corpus.is_file():
        sys.exit(f"needs the shared fixtures (gpt2/, corpora/) at {FIXTURES}")
    try:
        import tokenizers
    except ImportError:
        sys.exit("needs the Rust `tokenizers` package (pip install tokenizers)")
    import tempfile

    from ptfunc.tokenize import GPT2Tokenizer, OpenAIGPTTokenizer, XLMTokenizer, train_bpe

    size = int((0.1 if args.quick else args.megabytes) * 1_000_000)
    rng = random.Random(0)
    letters = "".join(rng.choice(string.ascii_letters) for _ in range(size))
    lines = corpus.read_text(encoding="utf-8").split("\n")
    if args.quick:
        lines = lines[:500]
    ours = GPT2Tokenizer(gpt2 / "encoder.json", gpt2 / "vocab.bpe")
    rust = _rust_gpt2(gpt2)
    print(
        f"tokenizers {tokenizers.__version__}; letters: {size:,} chars; corpus: {corpus.name}, "
        f"{len(lines):,} lines, {sum(len(t) + 1 for t in lines) / 1e6:.2f} MB"
    )

    def rust_letters():
        return rust.encode(letters, add_special_tokens=False).ids

    rows = []
    same = ours.encode(letters) == rust_letters()
    # no warm-up: neither side caches a word this long
    stats = time_interleaved(
        [lambda: ours.encode(letters), rust_letters], repeats=args.repeats, warmup=0
    )
    rows.append(Row(f"{size / 1e6:g} MB letters, no space: GPT-2", *stats, f"same ids: {same}"))

    openai = FIXTURES / "openai-gpt"
    if (openai / "vocab_40000.bpe").is_file():
        with tempfile.TemporaryDirectory() as tmp:
            vocab, merges = _xlm_files(openai, Path(tmp))
            others = {
                "OpenAI GPT": OpenAIGPTTokenizer(
                    openai / "encoder_bpe_40000.json", openai / "vocab_40000.bpe"
                ),
                "XLM": XLMTokenizer(vocab, merges),
            }
        for name, tok in others.items():
            stats = time_interleaved(
                [lambda t=tok: t.encode(letters), rust_letters], repeats=args.repeats, warmup=0
            )
            rows.append(Row(f"... {name} (yardstick: Rust GPT-2)", *stats, ""))

    # the Rust BpeTrainer is itself quadratic in a word's length (about 300 s for 1 MB
    # here), so the trainer row uses at most 100 KB, once each
    word = letters[:100_000]
    vocab_size = 256 + 1 + 300
    out: dict[str, Any] = {}
    stats = time_interleaved(
        [
            lambda: out.__setitem__("ours", train_bpe([word], vocab_size)[1]),
            lambda: out.__setitem__("rust", _rust_trainer([word], vocab_size)),
        ],
        repeats=1,
        warmup=0,
    )
    raw = json.loads(out["rust"].to_str())["model"]["merges"]
    same = out["ours"] == [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in raw]
    case = f"{len(word) / 1e6:g} MB letters: train_bpe 300 merges / BpeTrainer"
    rows.append(Row(case, *stats, f"same merges: {same}"))

    def ours_cold():
        ours.bpe.cache.clear()
        return [ours.encode(t) for t in lines]

    def rust_cold():
        rust.model._clear_cache()
        return [rust.encode(t, add_special_tokens=False).ids for t in lines]

    def ours_warm():
        return [ours.encode(t) for t in lines]

    def rust_warm():
        return [rust.encode(t, add_special_tokens=False).ids for t in lines]

    same = ours_cold() == rust_cold()
    stats = time_interleaved([ours_cold, rust_cold], repeats=args.repeats)
    rows.append(Row("wikitext-2 per line, cold cache: GPT-2", *stats, f"same ids: {same}"))
    stats = time_interleaved([ours_warm, rust_warm], repeats=args.repeats)
    rows.append(Row("wikitext-2 per line, warm cache: GPT-2", *stats, ""))

    print()
    print(format_table(rows, peer="Rust"))
    print("\nratio = ptfunc / Rust tokenizers time (< 1: ptfunc faster)")


if __name__ == "__main__":
    main()
