"""``ptfunc generate``: continue a prompt with any causal model directory."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._hub import add_hub_arguments, hub_options

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "assets" / "tiny-shakespeare"
"""The model `ptfunc generate` runs without ``--model``: the tiny GPT-2 shipped in the package."""

__all__ = ["DEFAULT_MODEL", "generate_text", "add_parser", "run"]


def generate_text(
    prompt: str,
    model_dir: str | Path = DEFAULT_MODEL,
    *,
    max_new_tokens: int = 60,
    greedy: bool = False,
    temperature: float = 0.8,
    top_k: int = 40,
    top_p: float = 1.0,
    seed: int = 0,
    **hub_options: object,
) -> str:
    """Load a language model (GPT, GPT-2, Transformer-XL, XLNet, XLM or a decoder LLM, with
    its tokenizer files: a directory, a 1.0 shortcut name or a Hub repo id) and continue
    ``prompt``;
    returns prompt + continuation as text. ``hub_options``: ``revision=``, ``cache_dir=``,
    ``local_files_only=``, ``token=`` for names."""
    import torch

    import ptfunc
    from ptfunc.generation import context_length, load_language_model
    from ptfunc.tokenize.auto import load_tokenizer

    _, model, params = load_language_model(model_dir, **hub_options)
    tokenizer = load_tokenizer(model_dir, **hub_options)
    ids = tokenizer.encode(prompt, add_special_tokens=False)
    if not ids:
        raise ValueError("the prompt is empty after tokenisation")
    room = max_new_tokens
    context = context_length(model)
    if context is not None:
        if len(ids) >= context:
            raise ValueError(f"the prompt has {len(ids)} tokens; the model takes {context}")
        room = min(room, context - len(ids))
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
        out = ptfunc.generate(model, params, torch.tensor([ids]), max_new_tokens=room, **sampling)
    return tokenizer.decode(out[0].tolist())


def add_parser(commands: argparse._SubParsersAction) -> None:
    gen = commands.add_parser(
        "generate",
        help="continue a prompt with a language model",
        description="Continue a prompt with a GPT, GPT-2, Transformer-XL, XLNet, XLM, Llama, "
        "Mistral, Qwen2, Qwen3 or GPT-NeoX model: "
        "a directory (config.json, weights and tokenizer files), a pytorch-transformers 1.0 "
        "shortcut name (gpt2) or a Hub repo id, fetched into the Hugging Face cache.",
    )
    gen.add_argument("prompt")
    gen.add_argument(
        "--model",
        default=str(DEFAULT_MODEL),
        help="model directory, shortcut name or repo id (default: the small GPT-2 shipped "
        "with ptfunc)",
    )
    add_hub_arguments(gen)
    gen.add_argument("--max-new-tokens", type=int, default=60)
    gen.add_argument("--greedy", action="store_true", help="argmax instead of sampling")
    gen.add_argument("--temperature", type=float, default=0.8)
    gen.add_argument("--top-k", type=int, default=40)
    gen.add_argument("--top-p", type=float, default=1.0)
    gen.add_argument("--seed", type=int, default=0, help="sampling key (same seed, same text)")
    gen.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    print(
        generate_text(
            args.prompt,
            args.model,
            max_new_tokens=args.max_new_tokens,
            greedy=args.greedy,
            temperature=args.temperature,
            top_k=args.top_k,
            top_p=args.top_p,
            seed=args.seed,
            **hub_options(args),
        )
    )
    return 0
