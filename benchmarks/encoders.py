"""The BERT family after 1.0 (issue 21): ptfunc against transformers 5 on the same weights.

    python benchmarks/encoders.py [--arch roberta ...] [--repeats 5] [--check] [--quick]

Base-sized random models (RoBERTa-base, DistilBERT-base, ELECTRA-base discriminator,
ALBERT-base-v2, DeBERTa-v3-base shapes), float32 on the CPU. One row per model: the forward
(eval, no_grad) of the bare encoder at 8x128 with a padding mask, ptfunc / transformers with
``attn_implementation="sdpa"`` where transformers has it (eager otherwise, named in the row).
Target (issue 21): RoBERTa <= 0.97; ``--check`` exits 1 when it is missed.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings

import torch

sys.path.insert(0, os.path.dirname(__file__))
from _timing import Row, format_table, time_interleaved  # noqa: E402

from ptfunc import io  # noqa: E402

BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)
SHAPES = {
    "roberta": ("Roberta", "roberta", dict(BASE, vocab_size=50265, max_position_embeddings=514,
                                            type_vocab_size=1, pad_token_id=1)),
    "distilbert": ("DistilBert", "distilbert", dict(vocab_size=30522, dim=768, n_layers=6,
                                                    n_heads=12, hidden_dim=3072)),
    "electra": ("Electra", "electra", dict(BASE, vocab_size=30522, embedding_size=768)),
    "albert": ("Albert", "albert", dict(BASE, vocab_size=30000, embedding_size=128)),
    "deberta-v2": ("DebertaV2", "deberta_v2", dict(
        BASE, vocab_size=128100, relative_attention=True, position_buckets=256,
        max_relative_positions=-1, pos_att_type=["p2c", "c2p"], norm_rel_ebd="layer_norm",
        share_att_key=True, position_biased_input=False, type_vocab_size=0)),
}  # fmt: skip
TINY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128)
TARGETS = {"roberta": 0.97}


def build(arch: str, quick: bool):
    """(transformers base model, attention implementation, ptfunc model, params)."""
    import transformers

    name, module, shape = SHAPES[arch]
    if quick:
        shape = dict(shape, **TINY)
        if arch == "distilbert":
            shape.update(dim=64, n_layers=2, n_heads=4, hidden_dim=128)
            for k in TINY:
                shape.pop(k, None)
        if arch == "albert":
            shape["embedding_size"] = 32
        if arch == "electra":
            shape["embedding_size"] = 64
    cfg_cls = getattr(transformers, name + "Config")
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for attn in ("sdpa", "eager"):
            try:
                ref = getattr(transformers, name + "Model")(
                    cfg_cls(**shape, attn_implementation=attn)
                )
                break
            except (ValueError, ImportError):
                continue
    ref.eval()
    ours = importlib.import_module(f"ptfunc.archs.{module}")
    config = getattr(ours, name + "Config").from_dict(ref.config.to_dict())
    model = getattr(ours, name + "Model")(config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        params = io.from_torch_state_dict(model, ref.state_dict())
    return ref, attn, model, params


def forward_row(arch: str, quick: bool, b: int, s: int, repeats: int) -> Row:
    """Time the bare encoder's forward at b x s (the first row half padding) on both sides."""
    ref, attn, model, params = build(arch, quick)
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, model.config.vocab_size, (b, s), generator=g)
    mask = torch.ones_like(ids)
    mask[0, s // 2 :] = 0
    pad = getattr(model.config, "pad_token_id", 0) or 0
    ids = ids.masked_fill(mask == 0, pad)
    with torch.no_grad():
        mine = model.apply(params, ids, attention_mask=mask)[0]
        theirs = ref(ids, attention_mask=mask)[0]
        d = (mine - theirs)[mask.bool()].abs().max().item()
        stats = time_interleaved(
            [lambda: model.apply(params, ids, attention_mask=mask),
             lambda: ref(ids, attention_mask=mask)],
            repeats=repeats, warmup=1,
        )  # fmt: skip
    return Row(f"{arch} forward {b}x{s} ({attn})", *stats, f"max|d|={d:.1e}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", nargs="*", default=list(SHAPES), choices=list(SHAPES))
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--quick", action="store_true", help="tiny configs: a smoke test, no targets")
    p.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    import transformers

    b, s = (2, 16) if args.quick else (8, 128)
    print(
        f"torch {torch.__version__}, transformers {transformers.__version__}, "
        f"{torch.get_num_threads()} threads; {'tiny' if args.quick else 'base-sized'} "
        f"encoders, float32, forward {b}x{s} with padding; median of {args.repeats} repeats"
    )
    rows, missed = [], []
    for arch in args.arch:
        row = forward_row(arch, args.quick, b, s, args.repeats)
        rows.append(row)
        if not args.quick and arch in TARGETS and row.ratio > TARGETS[arch]:
            missed.append(f"{row.case}: {row.ratio:.3f} > {TARGETS[arch]}")
    print()
    print(format_table(rows, peer="transformers"))
    print("\nratio = ptfunc / transformers time (< 1: ptfunc faster)")
    for line in missed:
        print("missed:", line)
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
