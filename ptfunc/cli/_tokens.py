"""``ptfunc encode`` and ``ptfunc decode``: text to ids and back with any tokenizer directory."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

from ._hub import add_hub_arguments, hub_options

__all__ = ["add_parsers", "parse_ids"]

_SEPARATORS = re.compile(r"[\s,]+")


def _lines(path: str) -> Iterator[str]:
    if path == "-":
        for line in sys.stdin:
            yield line.rstrip("\n")
        return
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"expected a text file at {file}")
    with open(file, encoding="utf-8") as handle:
        for line in handle:
            yield line.rstrip("\n")


def parse_ids(text: str, where: str = "") -> list[int]:
    """Token ids from ``"1 2 3"``, ``"1,2,3"`` or a JSON list ``"[1, 2, 3]"``.

    Example:
        >>> parse_ids("[15496, 11, 995]"), parse_ids("1, 2 3")
        ([15496, 11, 995], [1, 2, 3])
    """
    stripped = text.strip().removeprefix("[").removesuffix("]")
    ids = []
    for piece in _SEPARATORS.split(stripped.strip()):
        if not piece:
            continue
        try:
            ids.append(int(piece))
        except ValueError:
            raise ValueError(f"expected integer token ids{where}, got {piece!r}") from None
    return ids


def _tokenizer(args: argparse.Namespace):
    from ..tokenize.auto import load_tokenizer

    return load_tokenizer(args.tokenizer, args.kind, **hub_options(args))


def _run_encode(args: argparse.Namespace) -> int:
    tokenizer = _tokenizer(args)
    texts = args.text if args.text else _lines(args.file or "-")
    for text in texts:
        if args.tokens:
            out: list = tokenizer.tokenize(text)
        else:
            out = tokenizer.encode(text, args.pair, add_special_tokens=not args.no_special_tokens)
        print(json.dumps(out, ensure_ascii=False) if args.json else " ".join(map(str, out)))
    return 0


def _run_decode(args: argparse.Namespace) -> int:
    tokenizer = _tokenizer(args)
    if args.ids:
        rows: Iterator[list[int]] = iter([parse_ids(" ".join(args.ids))])
    else:
        source = args.file or "-"
        rows = (
            parse_ids(line, f" on line {n} of {source}")
            for n, line in enumerate(_lines(source), start=1)
        )
    for ids in rows:
        print(tokenizer.decode(ids, skip_special_tokens=args.skip_special_tokens))
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tokenizer",
        "-t",
        required=True,
        help="directory with the tokenizer files (a model directory works too), a "
        "pytorch-transformers 1.0 shortcut name (bert-base-uncased) or a Hub repo id",
    )
    add_hub_arguments(parser)
    parser.add_argument(
        "--kind",
        choices=["bert", "gpt2", "openai-gpt", "transfo-xl", "xlnet", "xlm", "tokenizer-json"],
        help="tokenizer family, when the directory does not say",
    )
    parser.add_argument(
        "--file", "-f", help="read inputs from this file, one per line ('-' for stdin)"
    )


def add_parsers(commands: argparse._SubParsersAction) -> None:
    enc = commands.add_parser(
        "encode",
        help="text to token ids",
        description="Tokenize texts given as arguments, or the lines of --file or stdin; "
        "prints one line of ids per text.",
    )
    _common(enc)
    enc.add_argument("text", nargs="*", help="texts to encode (default: lines of --file or stdin)")
    enc.add_argument("--pair", help="a second sequence for every text (e.g. BERT's sentence B)")
    enc.add_argument(
        "--no-special-tokens", action="store_true", help="leave out [CLS]/[SEP], <sep>/<cls>, ..."
    )
    enc.add_argument("--tokens", action="store_true", help="print token strings instead of ids")
    enc.add_argument("--json", action="store_true", help="print a JSON list per text")
    enc.set_defaults(run=_run_encode)

    dec = commands.add_parser(
        "decode",
        help="token ids to text",
        description="Turn ids back into text: the ids given as arguments, or one sequence per "
        "line of --file or stdin (separated by spaces or commas, or a JSON list).",
    )
    _common(dec)
    dec.add_argument("ids", nargs="*", help="token ids of one sequence")
    dec.add_argument("--skip-special-tokens", action="store_true")
    dec.set_defaults(run=_run_decode)
