"""Today's decoder LLMs (issue 20): ptfunc against transformers 5 on the same weights, in one run.

    python benchmarks/llm.py [--arch llama|gpt_neox] [--repeats 5] [--check] [--quick]

A random Llama-style model, 12 layers, 768 wide, 12 query / 4 key-value heads, SwiGLU 2048,
vocabulary 32000 (``--arch gpt_neox``: a Pythia-160M-shaped GPT-NeoX), float32 on the CPU
(``--device cuda --dtype bfloat16`` on a GPU). Rows (ratios of interleaved medians):

* forward 8x256 (eval, no_grad): ptfunc / transformers with ``attn_implementation="sdpa"``
  (time; target <= 0.97);
* greedy generation, batch 1, a 32-token prompt + 64 new tokens: ptfunc eager and
  ``compile=True`` (static KV cache, one compiled decoding step) / transformers' ``generate``
  (time; tokens/s ratio = 1 / time ratio; target for compiled: tokens/s >= 1.5x);
* peak tensor memory of the forward (``PeakTracker``, bytes; ratio < 1: ptfunc smaller).

``--check`` exits 1 when a target is missed. The tokens of both generations are compared.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

import torch

sys.path.insert(0, os.path.dirname(__file__))
from _timing import Row, format_table, time_interleaved  # noqa: E402

import ptfunc  # noqa: E402
from ptfunc import io  # noqa: E402
from ptfunc.research.remat import PeakTracker  # noqa: E402

SHAPES = {
    "llama": dict(
        vocab_size=32000, hidden_size=768, intermediate_size=2048, num_hidden_layers=12,
        num_attention_heads=12, num_key_value_heads=4, max_position_embeddings=2048,
    ),
    "gpt_neox": dict(
        vocab_size=50304, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
        num_attention_heads=12, max_position_embeddings=2048, rotary_pct=0.25,
    ),
}  # fmt: skip
TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4)
NAMES = {"llama": ("Llama", "llama"), "gpt_neox": ("GPTNeoX", "gpt_neox")}
TARGETS = {"forward": 0.97, "compiled generate": 1 / 1.5}


def build(arch: str, quick: bool, device: str, dtype: torch.dtype):
    """(transformers module with sdpa, ptfunc model, params) on the same random weights."""
    import importlib

    import transformers

    name, module = NAMES[arch]
    shape = {**SHAPES[arch], **(TINY if quick else {})}
    if quick and "num_key_value_heads" in shape:
        shape["num_key_value_heads"] = 2
    hf_config = getattr(transformers, name + "Config")(**shape, attn_implementation="sdpa")
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = getattr(transformers, name + "ForCausalLM")(hf_config).eval().to(device, dtype)
    ours = importlib.import_module(f"ptfunc.archs.{module}")
    config = getattr(ours, name + "Config").from_dict(hf_config.to_dict())
    model = getattr(ours, name + "ForCausalLM")(config)
    params = io.from_torch_state_dict(model, ref.state_dict())
    return ref, model, params


def peak_bytes(fn) -> int:
    with PeakTracker() as tracker:
        out = fn()
    del out
    return tracker.peak


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="llama", choices=sorted(SHAPES))
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--quick", action="store_true", help="tiny config: a smoke test, no targets")
    p.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    import transformers

    dtype = getattr(torch, args.dtype)
    ref, model, params = build(args.arch, args.quick, args.device, dtype)
    batch, seq = (2, 16) if args.quick else (8, 256)
    prompt_len, new = (8, 8) if args.quick else (32, 64)
    g = torch.Generator().manual_seed(1)
    vocab = model.config.vocab_size
    ids = torch.randint(0, vocab, (batch, seq), generator=g).to(args.device)
    prompt = torch.randint(0, vocab, (1, prompt_len), generator=g).to(args.device)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    print(
        f"torch {torch.__version__}, transformers {transformers.__version__}, "
        f"{torch.get_num_threads()} threads, {args.device} {args.dtype}; {args.arch} "
        f"{'tiny' if args.quick else '12 x 768'}; median of {args.repeats} interleaved repeats"
    )
    rows: list[Row] = []
    with torch.no_grad():

        def ours_fwd():
            out = model.apply(params, ids).logits
            sync()
            return out

        def ref_fwd():
            out = ref(ids).logits
            sync()
            return out

        d = (ours_fwd().float() - ref_fwd().float()).abs().max().item()
        stats = time_interleaved([ours_fwd, ref_fwd], repeats=args.repeats, warmup=1)
        rows.append(Row(f"forward {batch}x{seq}", *stats, f"max|d|={d:.1e}"))

        def ref_gen():
            out = ref.generate(
                prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=new,
                min_new_tokens=new, do_sample=False, pad_token_id=0,
            )  # fmt: skip
            sync()
            return out

        for label, mode in (("generate", False), ("compiled generate", True)):

            def ours_gen(mode=mode):
                out = ptfunc.generate(model, params, prompt, max_new_tokens=new, compile=mode)
                sync()
                return out

            same = torch.equal(ours_gen(), ref_gen())
            stats = time_interleaved([ours_gen, ref_gen], repeats=args.repeats, warmup=1)
            rows.append(Row(f"{label} 1x{prompt_len}+{new}", *stats, f"same tokens: {same}"))

        peaks = peak_bytes(ours_fwd), peak_bytes(ref_fwd)
    print()
    print(format_table(rows, peer="transformers (sdpa)"))
    mem = peaks[0] / peaks[1]
    print(
        f"\npeak tensor memory of the forward {batch}x{seq}: {peaks[0] / 2**20:,.1f} vs "
        f"{peaks[1] / 2**20:,.1f} MiB, ratio {mem:.3f}"
    )
    print("ratio = ptfunc / transformers time (< 1: ptfunc faster); tokens/s ratio = 1 / ratio")
    missed = []
    if not args.quick:
        for row in rows:
            for name, target in TARGETS.items():
                if row.case.startswith(name + " ") and row.ratio > target:
                    missed.append(f"{row.case}: {row.ratio:.3f} > {target:.3f}")
    for line in missed:
        print("missed:", line)
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
