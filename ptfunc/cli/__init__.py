"""The ``ptfunc`` command (also ``python -m ptfunc``).

    ptfunc generate "ROMEO:"                          # the small GPT-2 shipped in the package
    ptfunc generate "Hello" --model gpt2 --greedy     # a directory, 1.0 name or Hub repo id
    ptfunc convert bert model.ckpt bert_config.json out/   # original checkpoints -> ptfunc
    ptfunc convert --to transformers DIR OUT          # model directories between layouts
    ptfunc encode -t DIR "Hello world"                # text -> ids (decode: ids -> text)
    ptfunc inspect CHECKPOINT                         # names, shapes, dtypes, total size
    ptfunc convert-sharded OLD_DIR NEW_DIR            # per-rank checkpoint -> DCP (any world)
    ptfunc bench --quick                              # the benchmarks, as ratios

Every subcommand has ``--help``. Failures print one line, ``ptfunc: <reason>``, on
stderr and exit with status 1 (2 for wrong arguments). Model and tokenizer arguments take
a directory, a pytorch-transformers 1.0 shortcut name (gpt2) or a Hub repo id (org/name),
fetched into the Hugging Face cache (HF_ENDPOINT, HF_HUB_OFFLINE and HF_HOME apply).
"""

from __future__ import annotations

import argparse
import sys

from . import _bench, _convert, _generate, _inspect, _sharded, _tokens
from ._generate import DEFAULT_MODEL, generate_text

__all__ = ["main", "build_parser", "DEFAULT_MODEL", "generate_text"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``ptfunc`` with all its subcommands."""
    parser = argparse.ArgumentParser(
        prog="ptfunc",
        description="pytorch-transformers models as pure functions: command-line tools",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _generate.add_parser(commands)
    _convert.add_parser(commands)
    _tokens.add_parsers(commands)
    _inspect.add_parser(commands)
    _sharded.add_parser(commands)
    _bench.add_parser(commands)
    return parser


def _one_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    if isinstance(error, KeyError) and len(error.args) == 1:
        text = f"missing {error.args[0]!r}"
    return " ".join(text.split())


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if argv[:1] == ["bench"] and "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    args = build_parser().parse_args(argv)
    args.extra = extra
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        print("ptfunc: interrupted", file=sys.stderr)
        return 130
    except (OSError, ValueError, TypeError, KeyError, RuntimeError) as error:
        print(f"ptfunc: {_one_line(error)}", file=sys.stderr)
        return 1
