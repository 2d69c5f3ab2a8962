"""``ptfunc inspect``: list a checkpoint's tensors, shapes, dtypes and total size."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ._hub import add_hub_arguments, hub_options

__all__ = ["add_parser", "human_bytes"]


def human_bytes(n: int) -> str:
    """``1536`` -> ``'1.5 KiB'``.

    Example:
        >>> human_bytes(512), human_bytes(3 * 2**20)
        ('512 B', '3.0 MiB')
    """
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _local(path: str, args: argparse.Namespace) -> Path:
    """``path`` itself, or for a Hub name the cache snapshot with its config and weights."""
    from .. import hub
    from ..io.pretrained import fetch_model_files

    if not hub.is_hub_name(path):
        return Path(path)
    return fetch_model_files(path, hub.HubOptions(**hub_options(args)))


def _run(args: argparse.Namespace) -> int:
    from ..io.inspect import inspect_checkpoint

    summary = inspect_checkpoint(_local(args.path, args))
    if args.json:
        print(
            json.dumps(
                {
                    "format": summary.format,
                    "num_tensors": len(summary.tensors),
                    "num_parameters": summary.num_parameters,
                    "nbytes": summary.nbytes,
                    "tensors": [
                        {
                            "name": t.name,
                            "shape": list(t.shape),
                            "dtype": t.dtype,
                            "nbytes": t.nbytes,
                        }
                        for t in summary.tensors
                    ],
                },
                indent=1,
            )
        )
        return 0
    width = max((len(t.name) for t in summary.tensors), default=4)
    for t in summary.tensors:
        print(f"{t.name:<{width}}  {t.dtype:<8}  {list(t.shape)}")
    print(
        f"{summary.format}: {len(summary.tensors)} tensors, {summary.num_parameters:,} parameters, "
        f"{human_bytes(summary.nbytes)}"
    )
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "inspect",
        help="list a checkpoint's tensors",
        description="List the tensors of a checkpoint (names, dtypes, shapes, total size) without "
        "loading it: model directories, .safetensors, .bin/.pt/.pth (weights only), TensorFlow "
        "checkpoints (prefix, .index or directory), the OpenAI GPT numpy release.",
    )
    parser.add_argument(
        "path", help="file, TensorFlow prefix, directory, 1.0 shortcut name or Hub repo id"
    )
    add_hub_arguments(parser)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(run=_run)
