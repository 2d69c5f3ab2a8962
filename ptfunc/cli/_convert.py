"""``ptfunc convert``: original checkpoints to ptfunc directories, and directories between layouts.

Both spellings work::

    ptfunc convert bert TF_CHECKPOINT TF_CONFIG OUTPUT_DIR          # the seed's argument order
    ptfunc convert --from bert --checkpoint CKPT --config CFG --output OUTPUT_DIR --vocab vocab.txt
    ptfunc convert --to transformers SRC_DIR OUTPUT_DIR              # export a model directory
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ._progress import StderrProgress

__all__ = ["add_parser", "SEED_ORDER", "ARCH_ALIASES"]

# The seed's positional order: required arguments, then optional ones.
SEED_ORDER: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "bert": (("checkpoint", "config", "output"), ()),
    "gpt": (("checkpoint", "output"), ("config",)),
    "gpt2": (("checkpoint", "output"), ("config",)),
    "transfo_xl": (("checkpoint", "output"), ("config",)),
    "xlnet": (("checkpoint", "config", "output"), ("finetuning_task",)),
    "xlm": (("checkpoint", "output"), ()),
}
ARCH_ALIASES = {
    "openai-gpt": "gpt",
    "openai_gpt": "gpt",
    "transfo-xl": "transfo_xl",
    "transfoxl": "transfo_xl",
}
_LAYOUTS = ("transformers", "pytorch-transformers")


def _resolve(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """Merge the positional (seed-order) arguments with the named ones."""
    values: dict[str, Any] = {
        "checkpoint": args.checkpoint,
        "config": args.config,
        "output": args.output,
        "finetuning_task": args.finetuning_task,
    }
    positional = list(args.positional)
    if args.to is not None:
        names: tuple[str, ...] = ("checkpoint", "output")
        optional: tuple[str, ...] = ()
        arch = None
    else:
        arch = args.source
        if arch is None:
            if not positional:
                parser.error(
                    "say what to convert: an architecture (bert, gpt, gpt2, transfo_xl, "
                    "xlnet, xlm) with --from or first, or --to for a model directory"
                )
            arch = positional.pop(0)
        arch = ARCH_ALIASES.get(arch, arch)
        if arch not in SEED_ORDER:
            parser.error(f"unknown architecture {arch!r}; expected one of {', '.join(SEED_ORDER)}")
        names, optional = SEED_ORDER[arch]
    slots = [n for n in names + optional if values[n] is None]
    if len(positional) > len(slots):
        parser.error(f"too many arguments: {' '.join(positional[len(slots) :])}")
    for name, value in zip(slots, positional):
        values[name] = value
    missing = [n for n in names if values[n] is None]
    if missing:
        usage = " ".join(n.upper() for n in names) + "".join(f" [{n.upper()}]" for n in optional)
        parser.error(f"missing {', '.join(missing)} (order: {arch or '--to FORMAT'} {usage})")
    values["arch"] = arch
    return values


def _convert(values: dict[str, Any], args: argparse.Namespace, progress: Any) -> Path:
    from ..io import convert

    arch, ckpt, out = values["arch"], values["checkpoint"], values["output"]
    if Path(out).suffix in (".bin", ".pt", ".safetensors"):
        raise ValueError(
            f"ptfunc writes a model directory (config.json + model.safetensors); "
            f"{out} looks like a file name: pass a directory"
        )
    if args.to is not None:
        return convert.export_directory(
            ckpt, out, to=args.to, model_class=args.model_class, progress=progress
        )
    config, vocab, merges = values["config"], args.vocab, args.merges
    strict = not args.no_strict
    if arch == "bert":
        return convert.convert_bert(
            ckpt, config, out, vocab=vocab, progress=progress, strict=strict
        )
    if arch == "gpt2":
        return convert.convert_gpt2(
            ckpt, out, config=config, vocab=vocab, merges=merges, progress=progress, strict=strict
        )
    if arch == "gpt":
        return convert.convert_openai_gpt(
            ckpt, out, config=config, vocab=vocab, merges=merges, n_head=args.n_head,
            progress=progress,
        )  # fmt: skip
    if arch == "transfo_xl":
        if config is None:
            raise ValueError("transfo_xl needs the model's config (--config or third argument)")
        if not _looks_like_tf_checkpoint(Path(ckpt)):
            raise ValueError(
                f"{ckpt} is not a TensorFlow checkpoint. The seed also read pickled corpus files "
                "here; ptfunc does not unpickle them (they can run code): pass the vocabulary "
                "with --vocab"
            )
        return convert.convert_transfo_xl(
            ckpt, out, config=config, vocab=vocab, progress=progress, strict=strict
        )
    if arch == "xlnet":
        return convert.convert_xlnet(
            ckpt,
            config,
            out,
            finetuning_task=values["finetuning_task"],
            spiece_model=vocab,
            progress=progress,
            strict=strict,
        )
    assert arch == "xlm"
    return convert.convert_xlm(ckpt, out, merges=merges, progress=progress)


def _looks_like_tf_checkpoint(path: Path) -> bool:
    return (
        path.suffix == ".index"
        or Path(str(path) + ".index").is_file()
        or (path.is_dir() and (any(path.glob("*.index")) or (path / "checkpoint").is_file()))
        or "ckpt" in path.name
    )


def _run(args: argparse.Namespace) -> int:
    values = _resolve(args, args.parser)
    progress = None if args.quiet else StderrProgress("convert")
    out = _convert(values, args, progress)
    files = sorted(p.name for p in Path(out).iterdir())
    print(f"wrote {out}: {', '.join(files)}")
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "convert",
        help="convert original checkpoints; export model directories",
        description="Convert an original checkpoint (TensorFlow: bert, gpt2, transfo_xl, xlnet; "
        "NumPy: gpt; PyTorch: xlm) into a ptfunc model directory (config.json + "
        "model.safetensors + tokenizer files), or export a model directory to another layout "
        "with --to. The seed's positional order works: bert TF_CHECKPOINT TF_CONFIG OUTPUT | "
        "gpt OPENAI_FOLDER OUTPUT [CONFIG] | gpt2 TF_CHECKPOINT OUTPUT [CONFIG] | transfo_xl "
        "TF_CHECKPOINT OUTPUT CONFIG | xlnet TF_CHECKPOINT TF_CONFIG OUTPUT [FINETUNING_TASK] | "
        "xlm XLM_CHECKPOINT OUTPUT. Output is written atomically: a failed conversion leaves "
        "nothing behind.",
    )
    parser.add_argument("positional", nargs="*", metavar="ARG", help="the seed's arguments")
    parser.add_argument(
        "--from", dest="source", metavar="ARCH", help="bert, gpt, gpt2, transfo_xl, xlnet or xlm"
    )
    parser.add_argument("--to", choices=_LAYOUTS, help="export a model directory to this layout")
    parser.add_argument(
        "--checkpoint",
        help="original checkpoint (TF prefix, folder or file), or the model directory to export",
    )
    parser.add_argument(
        "--model-class",
        help="--to: the model class (e.g. BertForMaskedLM) when a 1.0 directory does not say",
    )
    parser.add_argument("--config", help="the original config file (bert_config.json, ...)")
    parser.add_argument("--output", "-o", help="output directory")
    parser.add_argument(
        "--vocab", help="vocabulary to copy (vocab.txt, encoder.json, spiece.model, ...)"
    )
    parser.add_argument("--merges", help="BPE merges to copy (vocab.bpe, merges.txt, XLM codes)")
    parser.add_argument(
        "--finetuning-task", help="xlnet: a GLUE task name or 'squad' picks the head"
    )
    parser.add_argument(
        "--n-head", type=int, help="gpt: attention heads (the NumPy release does not record them)"
    )
    parser.add_argument(
        "--no-strict",
        action="store_true",
        help="TensorFlow checkpoints: warn about and leave out variables the model does not use "
        "(default: an error naming them; optimizer slots and global_step are always skipped)",
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress lines")
    parser.set_defaults(run=_run, parser=parser)
