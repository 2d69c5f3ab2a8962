"""``ptfunc bench``: run the benchmark scripts of the source tree (ratios against the reference)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

__all__ = ["add_parser", "benchmarks_dir", "available"]


def benchmarks_dir() -> Path:
    """``benchmarks/`` beside the package (``PTFUNC_BENCHMARKS`` overrides).

    Raises:
        FileNotFoundError: ptfunc was installed without its source tree.
    """
    override = os.environ.get("PTFUNC_BENCHMARKS")
    directory = Path(override) if override else Path(__file__).resolve().parents[2] / "benchmarks"
    if not directory.is_dir():
        raise FileNotFoundError(
            f"no benchmarks at {directory}: they ship with the source tree; run from a clone "
            "(pip install -e .) or set PTFUNC_BENCHMARKS"
        )
    return directory


def available() -> list[str]:
    """Names of the benchmark scripts (``bert``, ``gpt2``, ...)."""
    return sorted(p.stem for p in benchmarks_dir().glob("*.py") if not p.name.startswith("_"))


def _run(args: argparse.Namespace) -> int:
    names = available()
    if args.list:
        print("\n".join(names))
        return 0
    chosen = args.names or names
    unknown = [n for n in chosen if n not in names]
    if unknown:
        raise ValueError(f"unknown benchmark {unknown[0]!r}; expected one of {', '.join(names)}")
    extra = (["--quick"] if args.quick else []) + list(getattr(args, "extra", []))
    failed = []
    for name in chosen:
        script = benchmarks_dir() / f"{name}.py"
        print(f"== {name} ==", flush=True)
        if subprocess.call([sys.executable, str(script), *extra]) != 0:
            failed.append(name)
    if failed:
        raise RuntimeError(f"benchmark(s) failed: {', '.join(failed)}")
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "bench",
        help="run the benchmarks (ratios against the reference)",
        description="Run benchmark scripts from benchmarks/; each prints ptfunc's time as a ratio "
        "of the reference's, measured in the same run. Arguments after -- go to every script.",
    )
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.set_defaults(run=_run)
