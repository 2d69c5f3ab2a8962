"""GPT-2: OpenAI's TensorFlow checkpoints -> a ptfunc directory (GPT2LMHeadModel).

The original ``model.py`` names and layouts, and the params they become::

    model/wte (n_vocab, n_embd), model/wpe (n_ctx, n_embd)  transformer.wte.weight, wpe.weight
    model/h{i}/ln_1/{g,b}, ln_2/{g,b}                       transformer.h.{i}.ln_1/ln_2 weight, bias
    model/h{i}/attn/c_attn/{w,b}, attn/c_proj/{w,b}         transformer.h.{i}.attn.c_attn/c_proj
    model/h{i}/mlp/c_fc/{w,b}, mlp/c_proj/{w,b}             transformer.h.{i}.mlp.c_fc/c_proj
    model/ln_f/{g,b}                                        transformer.ln_f.{weight,bias}

The conv1d weights ``w`` are ``(1, nx, nf)``; PyTorch's Conv1D keeps ``(nx, nf)``,
so only the leading axis goes. The LM head is tied to ``wte`` (no variable of its own).

Config. ``config`` may be OpenAI's ``hparams.json`` (``n_vocab``, ``n_ctx``,
``n_embd``, ``n_head``, ``n_layer``) or a config.json (1.0's or today's keys).
Without one, the ``hparams.json`` next to the checkpoint is used (OpenAI's
downloads ship one); failing that the sizes are read off the variables' shapes
(``n_vocab``/``n_embd`` from ``wte``, ``n_ctx`` from ``wpe``, ``n_layer`` from the
blocks) and ``n_head = n_embd // 64``, the head width of every released GPT-2 —
with a warning, since the head count cannot be seen in the weights. (The seed
used GPT2Config()'s defaults, which fit the 117M model only.)
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Any

from ...archs.gpt2 import GPT2Config, GPT2LMHeadModel
from ..tf_checkpoint import TFCheckpoint
from ._common import Progress, read_file_bytes
from ._tf_names import (
    Source,
    checkpoint_folder,
    convert_checkpoint,
    open_checkpoint,
    read_json,
    squeeze_leading,
    var,
)

__all__ = ["convert_gpt2", "gpt2_table", "gpt2_config"]

HPARAMS_NAME = "hparams.json"
_HEAD_WIDTH = 64  # n_embd / n_head of gpt2, gpt2-medium, gpt2-large and gpt2-xl


def gpt2_table(config: GPT2Config) -> dict[str, Source]:
    """``{GPT2LMHeadModel param: TF source}`` for OpenAI's checkpoint names."""
    table = {
        "transformer.wte.weight": var("model/wte"),
        "transformer.wpe.weight": var("model/wpe"),
        "transformer.ln_f.weight": var("model/ln_f/g"),
        "transformer.ln_f.bias": var("model/ln_f/b"),
    }
    for i in range(config.n_layer):
        tf, pt = f"model/h{i}/", f"transformer.h.{i}."
        for norm in ("ln_1", "ln_2"):
            table[f"{pt}{norm}.weight"] = var(f"{tf}{norm}/g")
            table[f"{pt}{norm}.bias"] = var(f"{tf}{norm}/b")
        for conv in ("attn/c_attn", "attn/c_proj", "mlp/c_fc", "mlp/c_proj"):
            name = pt + conv.replace("/", ".")
            table[f"{name}.weight"] = squeeze_leading(f"{tf}{conv}/w")
            table[f"{name}.bias"] = var(f"{tf}{conv}/b")
    return table


def _from_hparams(hparams: dict[str, Any]) -> GPT2Config:
    """OpenAI's hparams.json keys -> GPT2Config (``n_ctx`` is also the number of positions)."""
    d = dict(hparams)
    if "n_vocab" in d:
        d["vocab_size"] = d.pop("n_vocab")
    if "n_ctx" in d and "n_positions" not in d:
        d["n_positions"] = d["n_ctx"]
    return GPT2Config.from_dict(d)


def _inferred(ckpt: TFCheckpoint) -> GPT2Config:
    for name in ("model/wte", "model/wpe"):
        if name not in ckpt:
            raise ValueError(
                f"cannot infer the GPT-2 sizes: the checkpoint has no {name} (is it a GPT-2 "
                "checkpoint?); pass config=hparams.json"
            )
    n_vocab, n_embd = ckpt.shape("model/wte")
    n_ctx = ckpt.shape("model/wpe")[0]
    n_layer = len({m.group(1) for n in ckpt.names if (m := re.match(r"model/h(\d+)/", n))})
    if n_embd % _HEAD_WIDTH:
        raise ValueError(
            f"cannot infer n_head: n_embd {n_embd} is not a multiple of {_HEAD_WIDTH}; "
            "pass config=hparams.json"
        )
    hparams = dict(n_vocab=n_vocab, n_ctx=n_ctx, n_embd=n_embd, n_layer=n_layer)
    hparams["n_head"] = n_embd // _HEAD_WIDTH
    warnings.warn(
        f"no GPT-2 config given and no {HPARAMS_NAME} next to the checkpoint: using {hparams} "
        f"read off the weights, with n_head = n_embd // {_HEAD_WIDTH} as in every released "
        "GPT-2 (the weights do not show the head count; pass config= if it differs)",
        stacklevel=3,
    )
    return _from_hparams(hparams)


def gpt2_config(
    config: str | os.PathLike[str] | None, ckpt: TFCheckpoint, checkpoint: str | os.PathLike[str]
) -> GPT2Config:
    """The GPT2Config for a checkpoint: from ``config`` (hparams.json or config.json),
    else ``hparams.json`` beside the checkpoint, else inferred (see the module doc)."""
    if config is None:
        beside = checkpoint_folder(checkpoint) / HPARAMS_NAME
        if not beside.is_file():
            return _inferred(ckpt)
        config = beside
    return _from_hparams(read_json(config, "GPT-2 hparams.json or config.json"))


def convert_gpt2(
    checkpoint: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    config: str | os.PathLike[str] | None = None,
    vocab: str | os.PathLike[str] | None = None,
    merges: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
    strict: bool = True,
) -> Path:
    """Convert an OpenAI GPT-2 checkpoint into a ptfunc directory (GPT2LMHeadModel).

    Args:
        checkpoint: the checkpoint prefix (``models/117M/model.ckpt``), its ``.index``
            file, or the folder holding it.
        output_dir: created (or updated) atomically with ``config.json``,
            ``model.safetensors`` and the tokenizer files given.
        config: ``hparams.json`` or a config.json; default: see the module doc.
        vocab: OpenAI's ``encoder.json`` (or a ``vocab.json``), copied as ``vocab.json``.
        merges: OpenAI's ``vocab.bpe`` (or a ``merges.txt``), copied as ``merges.txt``.
        progress: ``progress(done, total, variable)`` once per param.
        strict: unknown variables raise (``False``: a warning, and they are left out).

    Returns:
        ``output_dir`` as a Path.

    Example:
        >>> convert_gpt2("models/117M/model.ckpt", "gpt2", vocab="models/117M/encoder.json",
        ...              merges="models/117M/vocab.bpe")  # doctest: +SKIP
    """
    files: dict[str, str | bytes] = {}
    if vocab is not None:
        files["vocab.json"] = read_file_bytes(vocab, "GPT-2 encoder.json (vocab.json)")
    if merges is not None:
        files["merges.txt"] = read_file_bytes(merges, "GPT-2 vocab.bpe (merges.txt)")
    ckpt = open_checkpoint(checkpoint)
    model = GPT2LMHeadModel(gpt2_config(config, ckpt, checkpoint))
    return convert_checkpoint(
        ckpt, model, gpt2_table(model.config), output_dir,
        files=files, progress=progress, strict=strict,
    )  # fmt: skip
