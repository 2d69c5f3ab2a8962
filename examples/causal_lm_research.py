"""Per-example gradients and activation patching on a causal language model, as pure functions.

    python examples/causal_lm_research.py --model_name_or_path EleutherAI/pythia-70m \\
        [--text TEXT ...] [--query TEXT] [--chunk-size N] \\
        [--clean TEXT --corrupted TEXT --clean-answer " Mary" --corrupted-answer " John"] \\
        [--output_dir DIR] [--no-patching]
    python examples/causal_lm_research.py --tiny [--tiny-arch llama]   # random weights, offline

Works with the decoder language models ptfunc reads (Llama, Mistral, Qwen2, Qwen3, GPT-NeoX /
Pythia), from a directory or a Hub repo id (``ptfunc.generation.load_language_model``, the
directory's tokenizer by ``ptfunc.tokenize.auto.load_tokenizer``). ``--tiny`` builds a random
2-layer model of ``--tiny-arch`` over a word-level vocabulary of the texts instead (tests).

1. Per-example gradients, by ``torch.func.vmap`` over ``torch.func.grad``. The texts are one
   right-padded batch (attention mask; padding is never a label). For each text: its mean
   next-token loss, the global L2 norm of its gradient with respect to every parameter, and
   an influence-style score (TracIn at one checkpoint, Pruthi et al. 2020): the dot product
   of its gradient with the gradient of ``--query`` (default: the first text) and their
   cosine. One ``vmap`` returns the three numbers per text, so no more than ``--chunk-size``
   per-example gradients are alive at once (the default 1 suits large models).
2. Activation patching (Meng et al. 2022; Wang et al. 2022) between ``--clean`` and
   ``--corrupted``, two prompts of the same token length: for each layer ``l`` and position
   ``t``, the corrupted run with the residual stream entering layer ``l`` at ``t`` replaced by
   the clean run's. The score is the logit difference ``clean answer - corrupted answer`` at
   the last position; ``normalized`` is ``(patched - corrupted) / (clean - corrupted)``
   (1: the clean behaviour restored, 0: no effect; None when the two runs score alike).

   With the public API only: ``hidden_states[l]`` (``output_hidden_states=True``) is the
   stream entering layer ``l``, and the layers ``l..L-1`` are a model of their own: the same
   class with ``num_hidden_layers = L - l`` (and those layers' sliding windows), whose params
   are the same tree with ``layers[l:]``, run on ``inputs_embeds`` = the patched stream. The
   patches of one layer run as one batch. ``reconstruction_error`` checks the method: on
   the clean stream each such suffix gives the clean logits.

Output: two tables on stdout; with ``--output-dir``, ``causal_lm_research.json`` holding
``per_example`` (text, n_tokens, loss, grad_norm, grad_dot_query, grad_cosine_query) and
``patching`` (tokens, answers, clean / corrupted scores, ``effect`` and ``normalized`` as
[layer][position], reconstruction_error).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling _loop
import _loop  # noqa: E402

import ptfunc  # noqa: E402
from ptfunc import tree  # noqa: E402
from ptfunc.archs import gpt_neox, llama, mistral, qwen2, qwen3  # noqa: E402

TEXTS = (
    "The cat sat on the mat and looked at the door.",
    "A dog ran across the field to fetch the ball.",
    "The cat looked at the dog across the field.",
    "Stocks fell sharply on Monday after the report.",
)
CLEAN = "When John and Mary went to the store, John gave a drink to"
CORRUPTED = "When John and Mary went to the store, Mary gave a drink to"

TINY_SIZES = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, max_position_embeddings=64)  # fmt: skip
TINY = {
    # arch: (config class, causal-LM class, extra config fields)
    "llama": (llama.LlamaConfig, llama.LlamaForCausalLM, dict(num_key_value_heads=2)),
    "mistral": (
        mistral.MistralConfig,
        mistral.MistralForCausalLM,
        dict(num_key_value_heads=2, sliding_window=4),
    ),
    "qwen2": (
        qwen2.Qwen2Config,
        qwen2.Qwen2ForCausalLM,
        dict(num_key_value_heads=2, use_sliding_window=True, sliding_window=4, max_window_layers=1),
    ),  # fmt: skip
    "qwen3": (qwen3.Qwen3Config, qwen3.Qwen3ForCausalLM, dict(num_key_value_heads=2, head_dim=8)),
    "gpt_neox": (gpt_neox.GPTNeoXConfig, gpt_neox.GPTNeoXForCausalLM, dict(rotary_pct=0.5)),
}


class WordTokenizer:
    """Whitespace words of a fixed list (``--tiny``): id 0 is padding, unknown words raise."""

    pad_token_id = 0

    def __init__(self, texts: Sequence[str]) -> None:
        words = sorted({w for text in texts for w in text.split()})
        self.vocab = ["<pad>", *words]
        self.ids = {w: i for i, w in enumerate(self.vocab)}

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [self.ids[w] for w in text.split()]

    def decode(self, ids: Sequence[int]) -> str:
        return " ".join(self.vocab[i] for i in ids)


# -- model and data --------------------------------------------------------------------------


def load(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """``(model, params, tokenizer)``: ``--tiny``'s random model, or a pretrained one."""
    if args.tiny:
        words = [*args.text, args.query or "", args.clean, args.corrupted,
                 args.clean_answer, args.corrupted_answer]  # fmt: skip
        tokenizer = WordTokenizer(words)
        config_cls, model_cls, extra = TINY[args.tiny_arch]
        config = config_cls(vocab_size=len(tokenizer.vocab), **TINY_SIZES, **extra)
        model = model_cls(config)
        return model, model.init(ptfunc.random.key(args.seed)), tokenizer
    if not args.model_name_or_path:
        raise SystemExit("give --model_name_or_path (a directory or a Hub repo id) or --tiny")
    from ptfunc.generation import load_language_model
    from ptfunc.tokenize.auto import load_tokenizer

    _, model, params = load_language_model(args.model_name_or_path)
    params = tree.map(lambda x: x.to(torch.float32) if x.is_floating_point() else x, params)
    return model, params, load_tokenizer(args.model_name_or_path)


def encode(tokenizer: Any, text: str) -> list[int]:
    ids = tokenizer.encode(text, add_special_tokens=False)
    return list(ids.ids if hasattr(ids, "ids") else ids)


def lm_batch(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[Tensor, Tensor, Tensor]:
    """Right-padded ``(input_ids, attention_mask, labels)``, int64 (b, s); labels -100 on
    padding (positions count from 0 in every row, as the default position ids)."""
    if any(len(r) < 2 for r in rows):
        raise ValueError("every text needs at least 2 tokens: its loss predicts tokens 2..n")
    length = max(len(r) for r in rows)
    ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = 1
    return ids, mask, ids.masked_fill(mask == 0, -100)


# -- 1. per-example gradients ----------------------------------------------------------------


def example_loss(model: Any):
    """Mean next-token loss of one example (ids, mask, labels of shape (s,)) as a batch of 1."""

    def loss(params: Any, ids: Tensor, mask: Tensor, labels: Tensor) -> Tensor:
        return model.apply(params, ids[None], attention_mask=mask[None], labels=labels[None]).loss

    return loss


def _dot(a: Any, b: Any) -> Tensor:
    pairs = zip(tree.leaves(a), tree.leaves(b), strict=True)
    return torch.stack([(x.float() * y.float()).sum() for x, y in pairs]).sum()


def gradient_stats(
    model: Any, params: Any, batch: tuple[Tensor, Tensor, Tensor], query: tuple[Tensor, ...],
    *, chunk_size: int | None = 1,
) -> dict[str, Tensor]:  # fmt: skip
    """Per example of ``batch``: loss, gradient norm, and the dot product and cosine of its
    gradient with the gradient of the ``query`` example; each (b,) float32."""
    loss_fn = example_loss(model)
    query_grad = ptfunc.func.grad(loss_fn)(params, *query)
    query_norm = _dot(query_grad, query_grad).sqrt()

    def stats(ids: Tensor, mask: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        g, loss = torch.func.grad_and_value(loss_fn)(params, ids, mask, labels)
        return loss, _dot(g, g).sqrt(), _dot(g, query_grad)

    loss, norm, dot = torch.func.vmap(stats, chunk_size=chunk_size)(*batch)
    return {"loss": loss, "grad_norm": norm, "grad_dot_query": dot,
            "grad_cosine_query": dot / (norm * query_norm)}  # fmt: skip


# -- 2. activation patching ------------------------------------------------------------------


def suffix(model: Any, params: Any, layer: int) -> tuple[Any, Any]:
    """The layers ``layer..L-1`` (and the final norm and head) as a model of their own."""
    c = model.config
    base = params[model.base_model_prefix]
    if not isinstance(base, dict) or "layers" not in base:
        raise ValueError(f"{type(model).__name__}: patching needs a decoder with a layers list")
    changes: dict[str, Any] = {"num_hidden_layers": c.num_hidden_layers - layer}
    if hasattr(c, "layer_types"):  # Qwen2 / Qwen3: keep the sliding windows of those layers
        windows = c.sliding_windows()[layer:]
        changes["layer_types"] = tuple(
            "full_attention" if w is None else "sliding_attention" for w in windows
        )
    part = type(model)(c.replace(**changes))
    return part, {**params, model.base_model_prefix: {**base, "layers": base["layers"][layer:]}}


@torch.no_grad()
def activation_patching(
    model: Any, params: Any, clean: Tensor, corrupted: Tensor, answers: tuple[int, int]
) -> dict[str, Any]:
    """Patch the clean residual stream into the corrupted run, at every (layer, position).

    Args:
        clean, corrupted: (1, s) token ids of the same length.
        answers: the token ids of the clean and the corrupted answer.

    Returns:
        ``clean``/``corrupted`` (the two runs' logit differences), ``effect`` (L, s): the
        patched runs', ``normalized`` (L, s) or None, ``reconstruction_error``.
    """
    if clean.shape != corrupted.shape:
        raise ValueError(
            f"clean and corrupted prompts must have the same number of tokens, got "
            f"{clean.shape[-1]} and {corrupted.shape[-1]}"
        )
    good, bad = answers

    def score(logits: Tensor) -> Tensor:
        return logits[:, -1, good] - logits[:, -1, bad]

    runs = [model.apply(params, ids, output_hidden_states=True) for ids in (clean, corrupted)]
    s = clean.shape[-1]
    at = torch.eye(s, dtype=torch.bool, device=clean.device)[:, :, None]  # row t patches t
    effect, error = [], 0.0
    for layer in range(model.config.num_hidden_layers):
        part, part_params = suffix(model, params, layer)
        h_clean, h_corrupted = runs[0].hidden_states[layer], runs[1].hidden_states[layer]
        patched = torch.where(at, h_clean, h_corrupted)  # (s, s, d)
        effect.append(score(part.apply(part_params, inputs_embeds=patched).logits))
        again = part.apply(part_params, inputs_embeds=h_clean).logits
        error = max(error, (again - runs[0].logits).abs().max().item())
    effect_t = torch.stack(effect).float()
    m_clean, m_corrupted = (score(r.logits).item() for r in runs)
    span = m_clean - m_corrupted
    normalized = None
    if abs(span) > 1e-6:
        normalized = ((effect_t - m_corrupted) / span).tolist()
    return {"clean": m_clean, "corrupted": m_corrupted, "effect": effect_t.tolist(),
            "normalized": normalized, "reconstruction_error": error}  # fmt: skip


def answer_id(tokenizer: Any, text: str, log: Any) -> int:
    ids = encode(tokenizer, text)
    if not ids:
        raise ValueError(f"the answer {text!r} has no tokens")
    if len(ids) > 1:
        log(f"answer {text!r} is {len(ids)} tokens: scoring its first")
    return ids[0]


# -- the script ------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = _loop.ExampleParser(description=__doc__.split("\n")[0])
    p.add_argument("--model-name-or-path", default=None, help="directory or Hub repo id")
    p.add_argument("--tiny", action="store_true", help="a random tiny model (offline)")
    p.add_argument("--tiny-arch", default="llama", choices=sorted(TINY))
    p.add_argument("--text", action="append", default=None,
                   help="a text of the per-example batch (repeatable)")  # fmt: skip
    p.add_argument("--query", default=None, help="text whose gradient the others are scored by")
    p.add_argument("--chunk-size", type=int, default=1, help="per-example gradients at once")
    p.add_argument("--clean", default=CLEAN)
    p.add_argument("--corrupted", default=CORRUPTED)
    p.add_argument("--clean-answer", default=" Mary")
    p.add_argument("--corrupted-answer", default=" John")
    p.add_argument("--no-patching", action="store_true", help="per-example gradients only")
    p.add_argument("--output-dir", type=Path, default=None)
    p.add_argument("--seed", type=int, default=0, help="--tiny's initialisation")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--no-cuda", action="store_true", help="run on the CPU even if CUDA is there")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    args = p.parse_args(argv)
    args.text = args.text or list(TEXTS)
    return args


def _row(cells: Sequence[Any], widths: Sequence[int]) -> str:
    return "  ".join(str(c)[:w].ljust(w) for c, w in zip(cells, widths, strict=True))


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    _loop.set_threads(args)
    device = _loop.default_device(args)
    log = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr))
    model, params, tokenizer = load(args)
    params = tree.map(lambda x: x.to(device), params)
    name = f"tiny {args.tiny_arch}" if args.tiny else args.model_name_or_path
    log(f"{type(model).__name__} ({name}): {tree.size(params):,} params")
    pad_id = getattr(tokenizer, "pad_token_id", None) or 0

    rows = [encode(tokenizer, t) for t in args.text]
    batch = tuple(x.to(device) for x in lm_batch(rows, pad_id))
    if args.query:
        query = tuple(x[0].to(device) for x in lm_batch([encode(tokenizer, args.query)], pad_id))
    else:  # the first text, unpadded
        query = tuple(x[0, : len(rows[0])] for x in batch)
    t0 = time.perf_counter()
    stats = gradient_stats(model, params, batch, query, chunk_size=args.chunk_size)
    log(f"per-example gradients of {len(rows)} texts: {time.perf_counter() - t0:.2f} s")
    per_example = [
        {"text": text, "n_tokens": len(r), **{k: v[i].item() for k, v in stats.items()}}
        for i, (text, r) in enumerate(zip(args.text, rows, strict=True))
    ]
    widths = (3, 6, 8, 10, 12, 8, 40)
    print(_row(("#", "tokens", "loss", "grad_norm", "dot(query)", "cosine", "text"), widths))
    for i, e in enumerate(per_example):
        numbers = (f"{e['loss']:.4f}", f"{e['grad_norm']:.4g}", f"{e['grad_dot_query']:.4g}",
                   f"{e['grad_cosine_query']:.3f}")  # fmt: skip
        cells = (i, e["n_tokens"], *numbers, e["text"])
        print(_row(cells, widths))
    results: dict[str, Any] = {"model": name, "query": args.query or args.text[0],
                               "per_example": per_example}  # fmt: skip

    if not args.no_patching:
        clean = torch.tensor([encode(tokenizer, args.clean)], device=device)
        corrupted = torch.tensor([encode(tokenizer, args.corrupted)], device=device)
        answers = (answer_id(tokenizer, args.clean_answer, log),
                   answer_id(tokenizer, args.corrupted_answer, log))  # fmt: skip
        t0 = time.perf_counter()
        patching = activation_patching(model, params, clean, corrupted, answers)
        log(f"activation patching, {len(patching['effect'])} layers x {clean.shape[1]} "
            f"positions: {time.perf_counter() - t0:.2f} s")  # fmt: skip
        tokens = [tokenizer.decode([i]) for i in clean[0].tolist()]
        patching = {"clean_prompt": args.clean, "corrupted_prompt": args.corrupted,
                    "tokens": tokens, "answers": list(answers), **patching}  # fmt: skip
        table = patching["normalized"] or patching["effect"]
        kind = "normalized" if patching["normalized"] else "logit difference"
        print(f"\nactivation patching ({kind}; clean {patching['clean']:.4f}, corrupted "
              f"{patching['corrupted']:.4f}, reconstruction error "
              f"{patching['reconstruction_error']:.2e})")  # fmt: skip
        print("layer  " + " ".join(t.strip()[:7].rjust(7) for t in tokens))
        for layer, values in enumerate(table):
            print(f"{layer:5d}  " + " ".join(f"{v:7.3f}" for v in values))
        results["patching"] = patching

    if args.output_dir is not None:
        _loop.write_json(args.output_dir / "causal_lm_research.json", results)
    return results


if __name__ == "__main__":
    main()
