"""The Hub options every subcommand that takes a model or tokenizer name shares."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_hub_arguments", "hub_options"]


def add_hub_arguments(parser: argparse.ArgumentParser) -> None:
    """``--revision``, ``--cache-dir``, ``--local-files-only``, ``--token`` (for names)."""
    group = parser.add_argument_group("Hub names (ignored for local paths)")
    group.add_argument("--revision", help="branch, tag or commit of a Hub repo (default main)")
    group.add_argument("--cache-dir", help="Hugging Face cache (default: HF_HUB_CACHE/HF_HOME)")
    group.add_argument(
        "--local-files-only",
        action="store_true",
        help="the cache only, no network (as HF_HUB_OFFLINE=1)",
    )
    group.add_argument("--token", help="Hub token for gated or private repos (or set HF_TOKEN)")


def hub_options(args: argparse.Namespace) -> dict[str, Any]:
    """The hub keyword arguments of ``from_pretrained`` that were given on the command line."""
    options = {
        "revision": args.revision,
        "cache_dir": args.cache_dir,
        "token": args.token,
        "local_files_only": args.local_files_only or None,
    }
    return {name: value for name, value in options.items() if value is not None}
