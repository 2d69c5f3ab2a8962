"""``ptfunc convert-sharded``: a per-rank sharded checkpoint (``index.json``) -> DCP."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_parser"]


def _run(args: argparse.Namespace) -> int:
    from ..distributed import dcp

    out = dcp.from_sharded(Path(args.src), Path(args.dst))
    if not args.quiet:
        print(f"wrote {out} (DCP: loads on any number of processes)")
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "convert-sharded",
        help="per-rank sharded checkpoint -> DCP checkpoint",
        description="Convert a checkpoint written by ptfunc.distributed.save_sharded (one file "
        "per rank and index.json, readable only on the world size that wrote it) into a "
        "torch.distributed.checkpoint directory that ptfunc.distributed.dcp.load reads on any "
        "number of processes, and dcp.consolidate in one process.",
    )
    parser.add_argument("src", help="the sharded checkpoint directory (with index.json)")
    parser.add_argument("dst", help="the new DCP checkpoint directory (must not exist)")
    parser.add_argument("--quiet", "-q", action="store_true")
    parser.set_defaults(run=_run)
