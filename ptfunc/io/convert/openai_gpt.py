"""OpenAI GPT from the original NumPy release to a ptfunc directory.

The release of ``openai/finetune-transformer-lm`` (its ``model/`` folder) holds
every TensorFlow variable flattened, concatenated and cut into ten files:

* ``params_shapes.json``: the variables' shapes, in graph order;
* ``params_0.npy`` .. ``params_9.npy``: float32 vectors whose concatenation,
  split at the cumulative sizes, gives the variables;
* ``encoder_bpe_40000.json`` and ``vocab_40000.bpe``: the BPE vocabulary and merges;
* ``parameters_names.json`` (only in the copy Hugging Face hosted): the
  variables' names, ``"model/we:0"`` first for the two embeddings, then
  ``"model/h{i}/..."``, then the fine-tuning classifier ``"model/clf/w:0"``,
  ``"model/clf/b:0"``, which the release has no values for.

The variables are, in order (the original ``train.py`` builds the graph this way):
position embeddings ``(n_ctx, n_embd)``, token embeddings ``(n_vocab, n_embd)``,
then per layer ``attn/c_attn`` w, b; ``attn/c_proj`` w, b; ``ln_1`` g, b;
``mlp/c_fc`` w, b; ``mlp/c_proj`` w, b; ``ln_2`` g, b, where a ``w`` is a
one-wide convolution kernel ``(1, nx, nf)`` (the seed's ``Conv1D`` weight
``(nx, nf)`` with a leading axis) and ``g``/``b`` a LayerNorm's scale and shift.
With ``parameters_names.json`` the names place each tensor; without it, this
fixed order does, and the count and every shape are checked.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...archs.openai_gpt import OpenAIGPTConfig, OpenAIGPTLMHeadModel
from ...errors import CheckpointError
from ..pretrained import pretrained_files
from ..state_dict import from_torch_state_dict
from ._common import Progress, copied_files, report, write_directory

__all__ = [
    "convert_openai_gpt",
    "read_openai_gpt_params",
    "read_release_layout",
    "LAYER_VARIABLES",
]

SHAPES_FILE = "params_shapes.json"
NAMES_FILE = "parameters_names.json"
VOCAB_FILE = "encoder_bpe_40000.json"
MERGES_FILE = "vocab_40000.bpe"

LAYER_VARIABLES: tuple[tuple[str, str], ...] = (
    ("attn/c_attn/w", "attn.c_attn.weight"),
    ("attn/c_attn/b", "attn.c_attn.bias"),
    ("attn/c_proj/w", "attn.c_proj.weight"),
    ("attn/c_proj/b", "attn.c_proj.bias"),
    ("ln_1/g", "ln_1.weight"),
    ("ln_1/b", "ln_1.bias"),
    ("mlp/c_fc/w", "mlp.c_fc.weight"),
    ("mlp/c_fc/b", "mlp.c_fc.bias"),
    ("mlp/c_proj/w", "mlp.c_proj.weight"),
    ("mlp/c_proj/b", "mlp.c_proj.bias"),
    ("ln_2/g", "ln_2.weight"),
    ("ln_2/b", "ln_2.bias"),
)
"""One layer's variables in the original graph order: ``(TF name under model/h{i}/, seed name)``."""

_LAYER_NAME = dict(LAYER_VARIABLES)
_TF_NAME = re.compile(r"model/h(\d+)/(.+):0")
_EMBEDDINGS = "model/we:0"


def convert_openai_gpt(
    checkpoint_folder: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    config: str | os.PathLike[str] | OpenAIGPTConfig | None = None,
    vocab: str | os.PathLike[str] | None = None,
    merges: str | os.PathLike[str] | None = None,
    n_head: int | None = None,
    progress: Progress | None = None,
) -> Path:
    """Convert the original NumPy release into ``output_dir`` (``OpenAIGPTLMHeadModel``).

    Args:
        checkpoint_folder: the release's ``model/`` folder (a file inside it, such as
            the seed's ``.../model.ckpt`` argument, names its folder).
        output_dir: created or updated atomically: ``config.json``, ``model.safetensors``
            and, when there are any, ``vocab.json`` and ``merges.txt``.
        config: a config.json (1.0's or today's keys) or an ``OpenAIGPTConfig``. Without
            one, the shapes give ``n_positions = n_ctx``, ``n_embd``, ``vocab_size`` and
            ``n_layer``; every other field keeps its default (those of the 1.0 config:
            ``n_head=12``, gelu, dropouts 0.1, epsilon 1e-5). The files do not record
            the number of heads; the release has 12.
        vocab: ``encoder_bpe_40000.json``, copied as ``vocab.json``; by default the
            one in ``checkpoint_folder`` when it is there.
        merges: ``vocab_40000.bpe``, copied as ``merges.txt``; same default.
        n_head: overrides the number of attention heads (of ``config`` too).
        progress: called as ``progress(done, total, name)`` per tensor.

    Returns:
        ``output_dir`` as a ``Path``.

    Raises:
        FileNotFoundError: ``params_shapes.json``, ``params_0.npy``, a named vocab file
            or ``config`` is missing.
        ValueError: the files disagree (sizes, names, shapes), or with ``config``.

    Example:
        >>> convert_openai_gpt("finetune-transformer-lm/model", "openai-gpt")  # doctest: +SKIP
    """
    folder = _folder_of(checkpoint_folder)
    tensors = read_openai_gpt_params(folder, progress=progress)
    model_config = _config(config, tensors, n_head)
    model = OpenAIGPTLMHeadModel(model_config)
    try:
        params = from_torch_state_dict(model, tensors, strict=True)
    except ValueError as e:
        raise ValueError(f"{folder} does not fit the config: {e}") from None
    files = pretrained_files(model, params)
    files.update(
        copied_files(
            {
                "vocab.json": vocab if vocab is not None else _beside(folder, VOCAB_FILE),
                "merges.txt": merges if merges is not None else _beside(folder, MERGES_FILE),
            }
        )
    )
    return write_directory(output_dir, files)


def read_openai_gpt_params(
    folder: str | os.PathLike[str], *, progress: Progress | None = None
) -> dict[str, torch.Tensor]:
    """The release's variables as ``{seed name: float tensor}``.

    Names are the seed's (``transformer.h.0.attn.c_attn.weight``...).

    Convolution kernels ``(1, nx, nf)`` become the seed's ``Conv1D`` weights ``(nx, nf)``.
    The ``.npy`` files are read with ``allow_pickle=False``.
    """
    folder = Path(folder)
    shapes = _read_shapes(folder / SHAPES_FILE)
    flat = _read_vectors(folder, sum(math.prod(s) for s in shapes))
    arrays: list[np.ndarray] = []
    offset = 0
    for shape in shapes:
        size = math.prod(shape)
        arrays.append(flat[offset : offset + size].reshape(shape))
        offset += size
    names = _read_names(folder / NAMES_FILE, len(shapes))
    what = f"{folder}: {NAMES_FILE}" if names is not None else f"{folder} (fixed graph order)"
    if len(shapes) < 2:
        raise CheckpointError(f"{folder / SHAPES_FILE}: expected at least the two embeddings")
    seed_names = _seed_names(names, len(shapes) - 2, what)
    out: dict[str, torch.Tensor] = {
        "transformer.positions_embed.weight": _matrix(arrays[0], "positions (model/we:0)", what),
        "transformer.tokens_embed.weight": _matrix(arrays[1], "tokens (model/we:0)", what),
    }
    total = len(shapes)
    report(progress, 2, total, "transformer.tokens_embed.weight")
    for i, (array, (tf_name, name)) in enumerate(zip(arrays[2:], seed_names), start=3):
        out[name] = _variable(array, tf_name, what)
        report(progress, i, total, name)
    return out


# -- files -------------------------------------------------------------------------------------


def _folder_of(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    if path.is_dir():
        return path
    if path.parent.is_dir() and (path.is_file() or ".ckpt" in path.name):
        return path.parent
    raise FileNotFoundError(
        f"expected the OpenAI GPT release folder (with {SHAPES_FILE} and params_0.npy ..) at {path}"
    )


def _beside(folder: Path, name: str) -> Path | None:
    return folder / name if (folder / name).is_file() else None


def _read_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"expected {what} at {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise CheckpointError(f"{path} is not valid JSON: {e}") from None


def _read_shapes(path: Path) -> list[tuple[int, ...]]:
    shapes = _read_json(path, "the variables' shapes (params_shapes.json)")
    ok = isinstance(shapes, list) and all(
        isinstance(s, list) and all(type(d) is int and d >= 0 for d in s) for s in shapes
    )
    if not ok:
        raise CheckpointError(
            f"{path}: expected a JSON list of shapes (lists of non-negative ints)"
        )
    return [tuple(s) for s in shapes]


def _npy_header(path: Path) -> np.dtype:
    """The dtype of a ``.npy`` file whose header is checked against the file: a 1-d array of
    a plain float kind whose data the file holds (read before anything is allocated)."""
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
            elif version in ((2, 0), (3, 0)):
                shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
            else:
                raise ValueError(f"unknown .npy format version {version}")
            start = handle.tell()
        size = path.stat().st_size
    except Exception as e:  # noqa: BLE001 - numpy's header parser raises many kinds
        raise CheckpointError(
            f"{path} is not a readable .npy array (truncated?): {type(e).__name__}: {e}"
        ) from None
    if len(shape) != 1 or dtype.kind != "f" or dtype.hasobject:
        raise CheckpointError(
            f"{path}: expected a 1-d float array, got shape {shape} dtype {dtype}"
        )
    if start + shape[0] * dtype.itemsize != size:
        raise CheckpointError(
            f"{path}: the header declares {shape[0]} {dtype} numbers ({shape[0] * dtype.itemsize} "
            f"bytes), the file holds {size - start} (truncated?)"
        )
    return dtype


def _read_vectors(folder: Path, expected: int) -> np.ndarray:
    """Concatenate ``params_0.npy``, ``params_1.npy``, ... (as many as there are)."""
    paths: list[Path] = []
    while (folder / f"params_{len(paths)}.npy").is_file():
        paths.append(folder / f"params_{len(paths)}.npy")
    if not paths:
        raise FileNotFoundError(f"expected the weights at {folder / 'params_0.npy'} (.. params_9)")
    parts = []
    for path in paths:
        _npy_header(path)  # sizes checked before numpy allocates the array
        try:
            part = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise CheckpointError(
                f"{path} is not a readable .npy array (truncated?): {e}"
            ) from None
        parts.append(part)
    flat = np.concatenate(parts)
    if flat.size != expected:
        raise CheckpointError(
            f"{folder}: params_*.npy hold {flat.size} numbers in {len(paths)} files, "
            f"{SHAPES_FILE} describes {expected}"
        )
    return flat


def read_release_layout(
    folder: str | os.PathLike[str],
) -> tuple[list[str], list[tuple[int, ...]], np.dtype]:
    """What the release's files declare, without reading the weights: the names (as
    ``parameters_names.json`` lists them, else ``params[i]``), the shapes, and the dtype
    of ``params_0.npy`` (float32 when it is absent). Every file read is checked."""
    folder = Path(folder)
    shapes = _read_shapes(folder / SHAPES_FILE)
    names_file = folder / NAMES_FILE
    if names_file.is_file():
        names = _read_json(names_file, NAMES_FILE)
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise CheckpointError(f"{names_file}: expected a JSON list of variable names")
    else:
        names = [f"params[{i}]" for i in range(len(shapes))]
    first = folder / "params_0.npy"
    dtype = _npy_header(first) if first.is_file() else np.dtype(np.float32)
    return names, shapes, dtype


def _read_names(path: Path, n_shapes: int) -> list[str] | None:
    """Names from ``parameters_names.json``, or ``None`` when the file is absent."""
    if not path.is_file():
        return None
    names = _read_json(path, NAMES_FILE)
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise CheckpointError(f"{path}: expected a JSON list of variable names")
    if not names or names[0] != _EMBEDDINGS:
        raise CheckpointError(f"{path}: expected {_EMBEDDINGS!r} first (the two embeddings)")
    names = names[1:]
    # The fine-tuning graph's classifier is named but has no values in the release.
    extra = names[n_shapes - 2 :]
    if len(names) < n_shapes - 2 or not all(n.startswith("model/clf/") for n in extra):
        raise ValueError(
            f"{path} names {len(names) + 1} variables ({_EMBEDDINGS} for two), "
            f"{SHAPES_FILE} has {n_shapes}; expected the same variables"
        )
    return names[: n_shapes - 2]


# -- names and shapes ---------------------------------------------------------------------------


def _seed_names(names: list[str] | None, count: int, what: str) -> list[tuple[str, str]]:
    """``(TF name, seed name)`` of the ``count`` layer variables."""
    if names is None:
        if count % len(LAYER_VARIABLES):
            raise ValueError(
                f"{what}: {count} variables after the embeddings is not a whole number of "
                f"layers of {len(LAYER_VARIABLES)}; pass a release with {NAMES_FILE}"
            )
        names = [
            f"model/h{i}/{tf}:0"
            for i in range(count // len(LAYER_VARIABLES))
            for tf, _ in LAYER_VARIABLES
        ]
    out = []
    for tf_name in names:
        match = _TF_NAME.fullmatch(tf_name)
        if match is None or match.group(2) not in _LAYER_NAME:
            raise ValueError(
                f"{what}: unexpected variable {tf_name!r}; expected model/h<i>/<one of "
                f"{', '.join(tf for tf, _ in LAYER_VARIABLES)}>:0"
            )
        out.append((tf_name, f"transformer.h.{match.group(1)}.{_LAYER_NAME[match.group(2)]}"))
    if len({name for _, name in out}) != len(out):
        raise ValueError(f"{what}: a variable is named twice")
    return out


def _matrix(array: np.ndarray, what_var: str, what: str) -> torch.Tensor:
    if array.ndim != 2:
        raise ValueError(f"{what}: {what_var} should be a matrix, got shape {array.shape}")
    return torch.from_numpy(array)


def _variable(array: np.ndarray, tf_name: str, what: str) -> torch.Tensor:
    kind = tf_name.rsplit("/", 1)[1][:-2]
    if kind == "w":
        if array.ndim != 3 or array.shape[0] != 1:
            raise ValueError(
                f"{what}: {tf_name} should be a one-wide kernel (1, nx, nf), got {array.shape}"
            )
        array = array[0]
    elif array.ndim != 1:
        raise ValueError(f"{what}: {tf_name} should be a vector, got shape {array.shape}")
    return torch.from_numpy(array)


def _config(
    config: str | os.PathLike[str] | OpenAIGPTConfig | None,
    tensors: Mapping[str, torch.Tensor],
    n_head: int | None,
) -> OpenAIGPTConfig:
    overrides = {} if n_head is None else {"n_head": n_head}
    if isinstance(config, OpenAIGPTConfig):
        return config.replace(**overrides)
    if config is not None:
        return OpenAIGPTConfig.from_json_file(config, **overrides)
    positions, n_embd = tensors["transformer.positions_embed.weight"].shape
    layers = [int(name.split(".")[2]) for name in tensors if name.startswith("transformer.h.")]
    try:
        return OpenAIGPTConfig(
            vocab_size=tensors["transformer.tokens_embed.weight"].shape[0],
            n_positions=positions,
            n_ctx=positions,
            n_embd=n_embd,
            n_layer=max(layers, default=-1) + 1,
            **overrides,
        )
    except ValueError as e:
        raise ValueError(
            f"{e}; the release's files do not record the number of attention heads "
            "(default 12): pass n_head or a config"
        ) from None
