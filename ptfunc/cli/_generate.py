"""The ``ptfunc`` command.

    ptfunc generate "ROMEO:"                       # the small GPT-2 shipped in the package
    ptfunc generate "Hello" --model DIR --greedy   # any GPT / GPT-2 checkpoint directory
    python -m ptfunc generate ...

A model directory holds ``config.json``, weights (``model.safetensors`` or
``pytorch_model.bin``) and the tokenizer files (``vocab.json`` + ``merges.txt``, or
GPT-2's original ``encoder.json`` + ``vocab.bpe``). Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DEFAULT_MODEL = Path(__file__).resolve().parent / "assets" / "tiny-shakespeare"

__all__ = ["main", "DEFAULT_MODEL"]


def _architecture(directory: Path) -> str:
    """``gpt2`` or ``openai-gpt`` from config.json (1.0 files have no model_type)."""
    path = directory / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"expected a config.json in {directory}")
    config = json.loads(path.read_text(encoding="utf-8"))
    kind = config.get("model_type")
    if kind is None:
        kind = "openai-gpt" if "afn" in config else "gpt2" if "n_embd" in config else None
    if kind not in ("gpt2", "openai-gpt"):
        raise ValueError(
            f"{directory} holds a {kind!r} model; generate supports gpt2 and openai-gpt"
        )
    return kind


def _tokenizer_files(directory: Path) -> tuple[Path, Path]:
    for vocab, merges in (("vocab.json", "merges.txt"), ("encoder.json", "vocab.bpe")):
        if (directory / vocab).is_file() and (directory / merges).is_file():
            return directory / vocab, directory / merges
    raise FileNotFoundError(
        f"no tokenizer in {directory}: expected vocab.json + merges.txt "
        "(or encoder.json + vocab.bpe)"
    )


def generate_text(
    prompt: str,
    model_dir: Path = DEFAULT_MODEL,
    *,
    max_new_tokens: int = 60,
    greedy: bool = False,
    temperature: float = 0.8,
    top_k: int = 40,
    top_p: float = 1.0,
    seed: int = 0,
) -> str:
    """Load a GPT/GPT-2 directory and continue ``prompt``; returns prompt + continuation."""
    import torch

    import ptfunc
    from ptfunc.archs import gpt2, openai_gpt
    from ptfunc.tokenize import GPT2Tokenizer, OpenAIGPTTokenizer

    kind = _architecture(model_dir)
    vocab, merges = _tokenizer_files(model_dir)
    if kind == "gpt2":
        tokenizer, constructor = GPT2Tokenizer(vocab, merges), gpt2.GPT2LMHeadModel
    else:
        tokenizer, constructor = OpenAIGPTTokenizer(vocab, merges), openai_gpt.OpenAIGPTLMHeadModel
    model, params = ptfunc.io.from_pretrained(model_dir, constructor)
    ids = tokenizer.encode(prompt, add_special_tokens=False)
    if not ids:
        raise ValueError("the prompt is empty after tokenisation")
    room = model.config.n_positions - len(ids)
    if room <= 0:
        raise ValueError(
            f"the prompt has {len(ids)} tokens; the model takes {model.config.n_positions}"
        )
    sampling = (
        {}
        if greedy
        else dict(
            key=ptfunc.random.key(seed),
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            do_sample=True,
        )
    )
    with torch.no_grad():
        out = ptfunc.generate(
            model, params, torch.tensor([ids]), max_new_tokens=min(max_new_tokens, room), **sampling
        )
    return tokenizer.decode(out[0].tolist())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ptfunc",
        description="pytorch-transformers models as pure functions: command-line tools",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("generate", help="continue a prompt with a GPT / GPT-2 model")
    gen.add_argument("prompt")
    gen.add_argument(
        "--model",
        type=Path,
        default=DEFAULT_MODEL,
        help="checkpoint directory (default: the small GPT-2 shipped with ptfunc)",
    )
    gen.add_argument("--max-new-tokens", type=int, default=60)
    gen.add_argument("--greedy", action="store_true", help="argmax instead of sampling")
    gen.add_argument("--temperature", type=float, default=0.8)
    gen.add_argument("--top-k", type=int, default=40)
    gen.add_argument("--top-p", type=float, default=1.0)
    gen.add_argument("--seed", type=int, default=0, help="sampling key (same seed, same text)")
    args = parser.parse_args(argv)
    try:
        text = generate_text(
            args.prompt,
            args.model,
            max_new_tokens=args.max_new_tokens,
            greedy=args.greedy,
            temperature=args.temperature,
            top_k=args.top_k,
            top_p=args.top_p,
            seed=args.seed,
        )
    except (FileNotFoundError, ValueError) as e:
        print(f"ptfunc: {e}", file=sys.stderr)
        return 2
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
