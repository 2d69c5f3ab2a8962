"""Extract hidden states of a model for every token of a text file, as JSON lines.

    python examples/extract_features.py --input-file in.txt --output-file out.jsonl \\
        --model-dir DIR [--layers -1,-2,-3,-4] [--max-seq-length 128] [--batch-size 8]

The seed's feature extraction (``extract_features.py`` of pytorch-pretrained-bert), as a
plain loop over ptfunc:

1. Input: one example per line, either a sentence or a pair written ``text a ||| text b``.
2. Tokens: the directory's tokenizer (``ptfunc.tokenize.auto.load_tokenizer``; BERT's
   WordPiece for a BERT directory), truncated longest-first so that the model's special
   tokens still fit in ``--max-seq-length`` (``[CLS] a [SEP] b [SEP]`` for BERT), segment
   ids 0 for ``a`` and 1 for ``b``.
3. Model: the head-less model of the directory's architecture
   (``ptfunc.archs.registry.architecture_of`` on the model type; a checkpoint saved
   with a head loads its base), run with ``output_hidden_states=True`` on right-padded
   batches with an attention mask.
4. Output: one JSON object per input line::

       {"linex_index": i, "features": [
           {"token": "[CLS]", "layers": [{"index": -1, "values": [0.1, ...]}, ...]}, ...]}

   ``--layers`` index the outputs of the encoder layers as the seed did: ``0`` is the
   first layer's output, ``-1`` the last layer's (the embeddings are not a layer here).
   Values are rounded to 6 decimals, as the seed wrote them. Padding is not written.

Works with any model directory ptfunc reads (BERT, GPT, GPT-2, Transformer-XL, XLNet,
XLM). Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import torch
from torch import Tensor

sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # run from a checkout, uninstalled
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the siblings utils_lm, _loop
import _loop  # noqa: E402
from utils_lm import truncate_pair  # noqa: E402  (the seed's longest-first rule)

import ptfunc  # noqa: E402
from ptfunc.archs.registry import architecture_of  # noqa: E402
from ptfunc.cli._progress import StderrProgress  # noqa: E402
from ptfunc.tokenize.auto import load_tokenizer  # noqa: E402

PAIR = re.compile(r"^(.*) \|\|\| (.*)$")


@dataclass(frozen=True)
class Example:
    """One input line: ``index`` (0-based line number), ``text_a`` and optional ``text_b``."""

    index: int
    text_a: str
    text_b: str | None = None


@dataclass(frozen=True)
class Features:
    """One example ready for the model: tokens and ids of equal length (no padding)."""

    index: int
    tokens: list[str]
    input_ids: list[int]
    token_type_ids: list[int]


def read_examples(path: Path) -> list[Example]:
    """Lines of ``path`` as examples; ``a ||| b`` makes a pair. Blank lines are kept (empty)."""
    examples = []
    with open(path, encoding="utf-8") as handle:
        for i, line in enumerate(handle):
            line = line.strip()
            match = PAIR.match(line)
            if match:
                examples.append(Example(i, match.group(1), match.group(2)))
            else:
                examples.append(Example(i, line))
    return examples


def convert_examples(
    examples: Sequence[Example], tokenizer: Any, max_seq_length: int
) -> list[Features]:
    """Tokenize, truncate to ``max_seq_length`` (special tokens included) and add the
    tokenizer's special tokens and segment ids."""
    out = []
    for example in examples:
        ids_a = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(example.text_a))
        ids_b = None
        pair = example.text_b is not None
        room = max_seq_length - tokenizer.num_special_tokens_to_add(pair=pair)
        if room < 0:
            raise ValueError(
                f"--max-seq-length {max_seq_length} leaves no room for the special tokens"
            )
        if pair:
            ids_b = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(example.text_b))
            ids_a, ids_b = truncate_pair(ids_a, ids_b, room)
        else:
            ids_a = ids_a[:room]
        input_ids = tokenizer.build_inputs_with_special_tokens(ids_a, ids_b)
        types = tokenizer.create_token_type_ids(ids_a, ids_b)
        tokens = tokenizer.convert_ids_to_tokens(input_ids)
        out.append(Features(example.index, tokens, input_ids, types))
    return out


def batches(features: Sequence[Features], size: int) -> Iterator[list[Features]]:
    for start in range(0, len(features), size):
        yield list(features[start : start + size])


def pad_batch(batch: Sequence[Features], pad_id: int) -> tuple[Tensor, Tensor, Tensor]:
    """Right-pad a batch: (input_ids, token_type_ids, attention_mask), each int64 (b, s)."""
    length = max(1, max(len(f.input_ids) for f in batch))
    ids = torch.full((len(batch), length), pad_id, dtype=torch.long)
    types = torch.zeros_like(ids)
    mask = torch.zeros_like(ids)
    for row, f in enumerate(batch):
        n = len(f.input_ids)
        ids[row, :n] = torch.tensor(f.input_ids, dtype=torch.long)
        types[row, :n] = torch.tensor(f.token_type_ids, dtype=torch.long)
        mask[row, :n] = 1
    return ids, types, mask


def load_model(model_dir: str | Path) -> tuple[str, Any, Any]:
    """``(model type, model, params)``: the head-less model of ``model_dir``'s architecture
    (a directory, a 1.0 shortcut name or a Hub repo id)."""
    kind = ptfunc.auto.config_from_pretrained(model_dir).model_type
    with warnings.catch_warnings():  # a head checkpoint's head weights are meant to be left
        warnings.filterwarnings("ignore", message=".*checkpoint names not used")
        model, params = ptfunc.io.from_pretrained(model_dir, architecture_of({"model_type": kind}))
    return kind, model, params


def layer_outputs(
    model: Any, params: Any, ids: Tensor, types: Tensor | None, mask: Tensor | None
) -> tuple[Tensor, ...]:
    """Outputs of the encoder layers, each (b, s, d), first layer first (no embeddings).

    ``types`` and ``mask`` (b, s) are passed when given (None: the model does not take them).
    """
    options: dict[str, Any] = {"output_hidden_states": True}
    if mask is not None:
        options["attention_mask"] = mask
    if types is not None:
        options["token_type_ids"] = types
    with torch.no_grad():
        out = model.apply(params, ids, **options)
    return tuple(out.hidden_states[1:])


def check_layers(layers: Sequence[int], n_layers: int) -> None:
    for index in layers:
        if not -n_layers <= index < n_layers:
            raise ValueError(
                f"--layers: index {index} is out of range for a model of {n_layers} layers "
                f"(expected {-n_layers} .. {n_layers - 1})"
            )


def write_features(
    stream: TextIO,
    batch: Sequence[Features],
    outputs: Sequence[Tensor],
    layers: Sequence[int],
) -> None:
    """One JSON line per example of ``batch`` in the seed's layout."""
    chosen = {index: outputs[index].float().cpu() for index in layers}
    for row, f in enumerate(batch):
        tokens = []
        for position, token in enumerate(f.tokens):
            entry = [
                {
                    "index": index,
                    "values": [round(v, 6) for v in chosen[index][row, position].tolist()],
                }
                for index in layers
            ]
            tokens.append({"token": token, "layers": entry})
        stream.write(json.dumps({"linex_index": f.index, "features": tokens}) + "\n")


def extract(args: argparse.Namespace) -> int:
    """Run the whole extraction; returns the number of examples written."""
    layers = [int(x) for x in args.layers.split(",") if x.strip()]
    if not layers:
        raise ValueError("--layers: expected comma-separated layer indices, e.g. -1,-2,-3,-4")
    tokenizer_dir = args.tokenizer_dir or args.model_dir
    kwargs = {} if args.do_lower_case is None else {"do_lower_case": args.do_lower_case}
    tokenizer = load_tokenizer(tokenizer_dir, **kwargs)
    kind, model, params = load_model(args.model_dir)
    device = torch.device(args.device)
    params = ptfunc.tree.map(lambda t: t.to(device), params)
    features = convert_examples(read_examples(args.input_file), tokenizer, args.max_seq_length)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    with_types = "token_type_ids" in tokenizer.model_input_names
    # Transformer-XL has no attention mask; it is causal, so right padding cannot reach
    # the real tokens anyway.
    with_mask = kind != "transfo-xl"
    progress = StderrProgress("extract_features")
    done = 0
    tmp = args.output_file.with_name(args.output_file.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as stream:
        for batch in batches(features, args.batch_size):
            ids, types, mask = (t.to(device) for t in pad_batch(batch, pad_id))
            outputs = layer_outputs(
                model, params, ids, types if with_types else None, mask if with_mask else None
            )
            check_layers(layers, len(outputs))
            write_features(stream, batch, outputs, layers)
            done += len(batch)
            progress(done, len(features), "examples")
    tmp.replace(args.output_file)
    return done


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = _loop.ExampleParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input-file", type=Path, required=True)
    parser.add_argument("--output-file", type=Path, required=True)
    parser.add_argument(
        "--model-dir",
        "--model-name-or-path",
        "--bert-model",
        dest="model_dir",
        required=True,
        help="config.json + weights (+ tokenizer files): a directory, 1.0 name or repo id",
    )
    parser.add_argument("--tokenizer-dir", default=None, help="default: --model-dir")
    parser.add_argument("--layers", default="-1,-2,-3,-4", help="encoder layer indices")
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    lower = parser.add_mutually_exclusive_group()
    lower.add_argument("--do-lower-case", dest="do_lower_case", action="store_true", default=None)
    lower.add_argument("--no-lower-case", dest="do_lower_case", action="store_false")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda "
                        "when there, else cpu, as 1.0)")  # fmt: skip
    parser.add_argument("--no-cuda", action="store_true", help="run on the CPU")
    parser.add_argument("--threads", type=int, default=None)
    argv = list(sys.argv[1:] if argv is None else argv)
    for i, item in enumerate(argv[:-1]):  # "--layers -1,-2" would read -1,-2 as an option
        if item == "--layers":
            argv[i : i + 2] = [f"--layers={argv[i + 1]}"]
            break
    args = parser.parse_args(argv)
    if args.device is None:
        args.device = _loop.default_device(args)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.batch_size < 1:
        raise SystemExit("--batch-size must be at least 1")
    try:
        n = extract(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"extract_features: {error}", file=sys.stderr)
        return 1
    print(f"wrote features of {n} examples to {args.output_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
