"""Continue prompts with any causal language model directory (GPT, GPT-2, Transformer-XL,
XLNet, XLM): the seed's ``run_generation.py`` over ``ptfunc.generate``.

    python examples/run_generation.py --model_type=gpt2 --length=20 --model_name_or_path=gpt2

is the seed README's command line and runs as it is (flags with underscores or hyphens);
ptfunc adds ``--prompt TEXT`` (repeatable), ``--prompt-file``, ``--greedy``,
``--num-samples``, ``--batch-size`` and ``--json``. ``--model_type`` is checked against the
model's config (1.0 needed it to pick the class; ptfunc reads the class from config.json).

* The model class follows ``config.json`` (``GPT2LMHeadModel``, ``OpenAIGPTLMHeadModel``,
  ``TransfoXLLMHeadModel``, ``XLNetLMHeadModel``, ``XLMWithLMHeadModel``); the tokenizer is
  the directory's own (``ptfunc.tokenize.auto.load_tokenizer``).
* Prompts: ``--prompt`` (repeatable), ``--prompt-file`` (one prompt per line), else one
  prompt per line of standard input. ``--num-samples`` continuations of each.
* XLNet and Transformer-XL read short prompts badly; as the seed did, a long padding text
  (Aman Rusia's trick, ``PADDING_TEXT``) is put before each prompt for those two models.
  ``--padding-text TEXT`` replaces it, ``--no-padding-text`` drops it. It is not printed.
* Sampling: temperature, then top-k, then nucleus (top-p) filtering, one Gumbel-max draw
  per step from ``ptfunc.random`` keys: the same ``--seed`` and the same prompts and
  ``--batch-size`` give the same text. ``--greedy`` takes the argmax instead.
* Batches: rows (prompt x sample) are grouped by prompt length, up to ``--batch-size``
  rows; GPT, GPT-2 and XLNet also pad shorter prompts on the left into the same batch
  (their logits do not change under left padding; Transformer-XL has no attention mask
  and XLM counts positions from the left, so those batch equal lengths only).

Output: each continuation as text (``--json``: one JSON object per line with
``prompt_index``, ``sample``, ``prompt``, ``ids`` (the new token ids) and ``text``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling _loop
import _loop  # noqa: E402

import ptfunc  # noqa: E402
from ptfunc.generation import context_length, load_language_model  # noqa: E402
from ptfunc.tokenize.auto import load_tokenizer  # noqa: E402

# Models whose prompts may be left-padded into one batch (Transformer-XL has no mask and
# XLM's positions would shift, so those batch only prompts of equal length).
PADS_LEFT = ("gpt2", "openai-gpt", "xlnet")
MODEL_TYPES = ("gpt2", "openai-gpt", "transfo-xl", "xlnet", "xlm")
NEEDS_PADDING_TEXT = ("transfo-xl", "xlnet")

# The text the seed put before XLNet and Transformer-XL prompts (after Aman Rusia,
# https://github.com/rusiaaman/XLNet-gen#methodology): a long context helps both models.
PADDING_TEXT = """In 1991, the remains of Russian Tsar Nicholas II and his family
(except for Alexei and Maria) are discovered.
The voice of Nicholas's young son, Tsarevich Alexei Nikolaevich, narrates the
remainder of the story. 1883 Western Siberia,
a young Grigori Rasputin is asked by his father and a group of men to perform magic.
Rasputin has a vision and denounces one of the men as a horse thief. Although his
father initially slaps him for making such an accusation, Rasputin watches as the
man is chased outside and beaten. Twenty years later, Rasputin sees a vision of
the Virgin Mary, prompting him to become a priest. Rasputin quickly becomes famous,
with people, even a bishop, begging for his blessing. <eod> </s> <eos>"""


@dataclass(frozen=True)
class Row:
    """One continuation to make: prompt ``prompt_index``, sample ``sample``, its context ids
    (padding text included) and how many of them are padding text."""

    prompt_index: int
    sample: int
    ids: tuple[int, ...]
    n_padding: int


def make_rows(
    prompts: Sequence[str], tokenizer: Any, *, num_samples: int, padding_text: str
) -> list[Row]:
    """Tokenize each prompt (no special tokens, as the seed) after ``padding_text``."""
    pad_ids = tokenizer.encode(padding_text, add_special_tokens=False) if padding_text else []
    rows = []
    for i, prompt in enumerate(prompts):
        ids = tokenizer.encode(prompt, add_special_tokens=False)
        if not ids and not pad_ids:
            raise ValueError(f"prompt {i} is empty after tokenisation")
        rows += [Row(i, s, tuple(pad_ids + ids), len(pad_ids)) for s in range(num_samples)]
    return rows


def group_rows(rows: Sequence[Row], batch_size: int, *, left_pad: bool) -> list[list[Row]]:
    """Batches of at most ``batch_size`` rows; of equal context length unless ``left_pad``.

    Rows keep their input order inside and across batches of the same length.
    """
    if left_pad:
        ordered = list(rows)
        return [ordered[i : i + batch_size] for i in range(0, len(ordered), batch_size)]
    by_length: dict[int, list[Row]] = {}
    for row in rows:
        by_length.setdefault(len(row.ids), []).append(row)
    out = []
    for group in by_length.values():
        out += [group[i : i + batch_size] for i in range(0, len(group), batch_size)]
    return out


def left_pad(batch: Sequence[Row], pad_id: int) -> tuple[Tensor, Tensor]:
    """(input_ids, attention_mask), int64 (b, longest context), padding on the left."""
    length = max(len(row.ids) for row in batch)
    ids = torch.full((len(batch), length), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for r, row in enumerate(batch):
        n = len(row.ids)
        ids[r, length - n :] = torch.tensor(row.ids, dtype=torch.long)
        mask[r, length - n :] = 1
    return ids, mask


def generate_batch(
    model: Any, params: Any, batch: Sequence[Row], length: int, args: argparse.Namespace, key: Any
) -> list[list[int]]:
    """New token ids (``length`` of them) for every row of ``batch``."""
    device = ptfunc.tree.leaves(params)[0].device
    ids, mask = (t.to(device) for t in left_pad(batch, pad_id=0))
    sampling: dict[str, Any] = {}
    if not args.greedy:
        sampling = dict(
            do_sample=True,
            key=key,
            temperature=args.temperature,
            top_k=args.top_k,
            top_p=args.top_p,
        )
    options = {"attention_mask": mask} if not bool(mask.all()) else {}
    with torch.no_grad():
        out = ptfunc.generate(model, params, ids, max_new_tokens=length, **options, **sampling)
    return out[:, ids.shape[1] :].tolist()


def read_prompts(args: argparse.Namespace) -> list[str]:
    prompts = list(args.prompt or [])
    if args.prompt_file is not None:
        text = args.prompt_file.read_text(encoding="utf-8")
        prompts += [line for line in text.splitlines() if line.strip()]
    if not prompts:
        prompts = [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if not prompts:
        raise ValueError("no prompt: pass --prompt TEXT, --prompt-file FILE or lines on stdin")
    return prompts


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Generate for every prompt and sample; returns the records in input order."""
    kind, model, params = load_language_model(args.model_dir)
    if args.model_type is not None and args.model_type != kind:
        raise ValueError(
            f"--model_type {args.model_type}, but {args.model_dir} holds a {kind} model"
        )
    tokenizer = load_tokenizer(args.tokenizer_dir or args.model_dir)
    if args.no_padding_text:
        padding_text = ""
    elif args.padding_text is not None:
        padding_text = args.padding_text
    else:
        padding_text = PADDING_TEXT if kind in NEEDS_PADDING_TEXT else ""
    prompts = read_prompts(args)
    rows = make_rows(prompts, tokenizer, num_samples=args.num_samples, padding_text=padding_text)
    length = args.length
    context = context_length(model)
    if context is not None:
        longest = max(len(row.ids) for row in rows)
        if longest >= context:
            raise ValueError(f"a context has {longest} tokens; the model takes {context}")
        length = min(length, context - longest)
    device = torch.device(args.device)
    params = ptfunc.tree.map(lambda t: t.to(device), params)
    base_key = ptfunc.random.key(args.seed)
    records: dict[tuple[int, int], dict[str, Any]] = {}
    batches = group_rows(rows, args.batch_size, left_pad=kind in PADS_LEFT)
    for number, batch in enumerate(batches):
        key = ptfunc.random.fold_in(base_key, number)
        new = generate_batch(model, params, batch, length, args, key)
        for row, ids in zip(batch, new):
            records[row.prompt_index, row.sample] = {
                "prompt_index": row.prompt_index,
                "sample": row.sample,
                "prompt": prompts[row.prompt_index],
                "ids": ids,
                "text": tokenizer.decode(ids, clean_up_tokenization_spaces=True),
            }
        print(f"run_generation: batch {number + 1}/{len(batches)}", file=sys.stderr, flush=True)
    return [records[row.prompt_index, row.sample] for row in rows]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = _loop.ExampleParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model-dir",
        "--model-name-or-path",
        dest="model_dir",
        required=True,
        help="a directory, a 1.0 shortcut name (gpt2) or a Hub repo id",
    )
    parser.add_argument(
        "--model-type",
        choices=MODEL_TYPES,
        default=None,
        help="checked against the model's config.json (default: whatever it is)",
    )
    parser.add_argument("--tokenizer-dir", default=None, help="default: --model-dir")
    parser.add_argument("--prompt", action="append", help="a prompt (repeat for several)")
    parser.add_argument("--prompt-file", type=Path, default=None, help="one prompt per line")
    parser.add_argument("--padding-text", default=None, help="context put before each prompt")
    parser.add_argument("--no-padding-text", action="store_true")
    parser.add_argument("--length", type=int, default=20, help="new tokens per continuation")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-k", type=int, default=0)
    parser.add_argument("--top-p", type=float, default=0.9)
    parser.add_argument("--greedy", action="store_true", help="argmax instead of sampling")
    parser.add_argument("--num-samples", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=8, help="rows per generate call")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--device", default=None, help="default: cuda when there, else cpu")
    parser.add_argument("--no-cuda", action="store_true", help="run on the CPU")
    parser.add_argument("--json", action="store_true", help="JSON lines instead of text")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.length < 0 or args.num_samples < 1 or args.batch_size < 1:
        parser.error("--length must be >= 0, --num-samples and --batch-size >= 1")
    if args.device is None:
        args.device = _loop.default_device(args)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        records = run(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"run_generation: {error}", file=sys.stderr)
        return 1
    for record in records:
        if args.json:
            print(json.dumps(record))
        else:
            print(f"=== prompt {record['prompt_index']}, sample {record['sample']} ===")
            print(record["prompt"] + record["text"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
