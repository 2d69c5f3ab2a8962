"""Directories of pretrained models: read every layout users have, write today's.

Layouts read by :func:`from_pretrained`:

* pytorch-transformers 1.0: ``config.json`` + ``pytorch_model.bin`` (read with
  ``torch.load(weights_only=True)``, never full pickle), old ``gamma``/``beta``
  LayerNorm names included;
* today's ``transformers``: ``config.json`` + ``model.safetensors`` (or sharded
  with ``model.safetensors.index.json`` / ``pytorch_model.bin.index.json``),
  with or without the base-model prefix;
* ptfunc's own, which is today's layout: :func:`save_pretrained` writes
  ``config.json`` + ``model.safetensors`` that ``transformers`` loads.

Pruned heads: neither ``transformers`` 5 nor pytorch-transformers 1.0 can build pruned
attention layers, so a model with pruned heads is saved full-size, each pruned head's
tensors zero (:func:`ptfunc.archs.prune.unprune`: the same outputs there), with
``pruned_heads`` still in config.json. Reading a directory whose config records
``pruned_heads``, :func:`from_pretrained` tells the layouts apart by the attention
tensors' shapes: full-size ones are pruned again on load (the same small model, bit for
bit), and the pruned shapes older ptfunc saves wrote load as they are.

Names: instead of a directory, a pytorch-transformers 1.0 shortcut name
(``bert-base-uncased``) or a Hub repo id (``org/name``, with ``revision=``) fetches
config.json and the weights (nothing else) into the Hugging Face cache; see
:mod:`ptfunc.hub`. A local directory that exists always wins over a name.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .. import hub
from .._atomic import check_save_complete, save_directory
from ..errors import CheckpointError
from ..random import Key
from ..tree import Params
from ._torch_load import load_torch_object
from .safetensors_io import HeaderEntry, load_flat, read_header, to_safetensors_bytes
from .state_dict import (
    _expected,
    check_float_dtype,
    expected_shapes,
    load_into,
    param_names,
    to_torch_state_dict,
)

__all__ = [
    "from_pretrained",
    "save_pretrained",
    "load_state_dict_file",
    "load_torch_object",
    "weight_files",
    "read_weight_index",
    "fetch_model_files",
    "WEIGHT_CANDIDATES",
    "pretrained_files",
    "model_config_dict",
    "config_text",
    "full_size",
    "CONFIG_NAME",
    "SAFE_WEIGHTS_NAME",
    "WEIGHTS_NAME",
]

CONFIG_NAME = "config.json"
"""The config file of a model directory."""
SAFE_WEIGHTS_NAME = "model.safetensors"
"""The weights file of today's layout (tried first when loading)."""
WEIGHTS_NAME = "pytorch_model.bin"
"""The weights file of pytorch-transformers 1.0's layout (read with ``weights_only=True``)."""


def load_state_dict_file(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """Read ``.safetensors`` or a ``.bin``/``.pt`` (``torch.load(weights_only=True)``).

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: (a ``ValueError``) truncated, corrupt, or a pickle holding more
            than a ``{name: tensor}`` dict.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        return load_flat(path)
    state = load_torch_object(path)
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()
    ):
        raise CheckpointError(f"{path} does not hold a state dict of {{name: tensor}}")
    return state


WEIGHT_CANDIDATES: tuple[str, ...] = (
    SAFE_WEIGHTS_NAME + ".index.json",
    SAFE_WEIGHTS_NAME,
    WEIGHTS_NAME + ".index.json",
    WEIGHTS_NAME,
)
"""Weight files in the order they are preferred, in directories and on the Hub."""


def read_weight_index(index: str | os.PathLike[str]) -> list[Path]:
    """The shard files a sharded index (``*.index.json``) names, in order, each once.

    Shard names must be plain relative paths inside the index's directory.

    Raises:
        CheckpointError: the index is not JSON, has no ``weight_map`` object of
            ``{name: shard}`` strings, is empty, or names a shard outside the directory.
    """
    index = Path(index)
    try:
        data = json.loads(index.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise CheckpointError(f"{index}: not a JSON sharded-weights index ({error})") from None
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointError(f"{index}: expected a non-empty 'weight_map' object {{name: shard}}")
    shards: list[str] = []
    for name, shard in weight_map.items():
        if not isinstance(shard, str) or not shard.strip() or "\0" in shard:
            raise CheckpointError(f"{index}: weight_map[{name!r}] must be a shard file name")
        parts = Path(shard).parts
        if not parts:
            raise CheckpointError(f"{index}: weight_map[{name!r}] must be a shard file name")
        if Path(shard).is_absolute() or ".." in parts or "\\" in shard or ":" in parts[0]:
            raise CheckpointError(
                f"{index}: weight_map[{name!r}] = {shard!r} points outside the model directory"
            )
        if shard not in shards:
            shards.append(shard)
    return [index.parent / shard for shard in sorted(shards)]


def weight_files(directory: str | os.PathLike[str]) -> list[Path] | None:
    """The weight files of a model directory, shards in order, or None when it has none.

    A sharded ``model.safetensors.index.json`` / ``pytorch_model.bin.index.json`` names
    its shards; otherwise ``model.safetensors`` is preferred to ``pytorch_model.bin``.

    Raises:
        CheckpointError: a sharded index is malformed or names a shard that is missing.
    """
    directory = Path(directory)
    for name in WEIGHT_CANDIDATES:
        path = directory / name
        if not path.is_file():
            continue
        if not name.endswith(".index.json"):
            return [path]
        shards = read_weight_index(path)
        missing = [p.name for p in shards if not p.is_file()]
        if missing:
            raise CheckpointError(f"{path} names shards that are not there: {missing}")
        return shards
    return None


def fetch_model_files(
    name_or_path: str | os.PathLike[str], options: hub.HubOptions | None = None
) -> Path:
    """A directory with config.json and the weights: the local one, or a cache snapshot.

    For a name, fetches config.json and the first of :data:`WEIGHT_CANDIDATES` the repo
    has (with the shards a sharded index names), nothing else.
    """

    def shards(repo: Any, directory: Path) -> list[str]:
        for index_name in (WEIGHT_CANDIDATES[0], WEIGHT_CANDIDATES[2]):
            if (directory / index_name).is_file() and repo.has(index_name):
                return [p.name for p in read_weight_index(directory / index_name)]
        return []

    return hub.fetch(
        name_or_path, [CONFIG_NAME, list(WEIGHT_CANDIDATES)], options=options, then=shards
    )


def _read_weights(
    directory: Path,
    *,
    dtype: torch.dtype | str | None = None,
    device: torch.device | str | None = None,
) -> tuple[dict[str, Tensor], dict[str, Path], torch.dtype | None]:
    """``({name: tensor}, {name: the file it came from}, dtype)`` over all weight files.

    Floating-point tensors are cast to ``dtype`` one at a time as they are read;
    ``dtype="auto"`` is the dtype of the first file's first floating-point tensor (the
    third value returned: the dtype applied, None for none).
    """
    files = weight_files(directory)
    if files is None:
        raise FileNotFoundError(
            f"no weights in {directory}: expected {SAFE_WEIGHTS_NAME} or {WEIGHTS_NAME} "
            "(or a sharded .index.json)"
        )
    state: dict[str, Tensor] = {}
    origin: dict[str, Path] = {}
    auto = dtype == "auto"
    cast = None if isinstance(dtype, str) else dtype
    for file in files:
        if file.suffix == ".safetensors":  # cast or moved as read, views of the file else
            if auto:
                cast, auto = _stored_float_dtype(read_header(file)[0]), False
            shard = load_flat(file, dtype=cast, device=device or "cpu")
        else:
            shard = load_state_dict_file(file)
            if auto:
                floats = (t.dtype for t in shard.values() if t.is_floating_point())
                cast, auto = next(floats, None), False
        twice = sorted(set(shard) & set(state))
        if twice:
            raise CheckpointError(
                f"{file} holds {twice[:5]}, which {origin[twice[0]].name} holds too"
            )
        origin.update(dict.fromkeys(shard, file))
        for name in list(shard):  # cast one tensor at a time: no whole-model copy
            state[name] = _cast(shard.pop(name), cast, device)
    return state, origin, cast


def _stored_float_dtype(entries: list[HeaderEntry]) -> torch.dtype | None:
    """The dtype of the first floating-point tensor (by offset) of a safetensors header."""
    for entry in entries:
        if entry.torch_dtype is not None and entry.torch_dtype.is_floating_point:
            return entry.torch_dtype
    return None


_DTYPE_NAMES = ("float32", "float16", "bfloat16", "float64")


def _dtype_argument(dtype: Any) -> torch.dtype | str | None:
    """``dtype=`` of :func:`from_pretrained` checked: a float torch dtype, None, ``"auto"``,
    or a float dtype's name (``"bfloat16"``, ``"torch.bfloat16"``) as the dtype."""
    if isinstance(dtype, str) and dtype != "auto":
        name = dtype.removeprefix("torch.")
        if name not in _DTYPE_NAMES:
            raise TypeError(
                f"dtype must be a floating-point torch dtype, one of {list(_DTYPE_NAMES)}, "
                f"'auto' or None, got {dtype!r}"
            )
        return getattr(torch, name)
    if dtype != "auto":
        check_float_dtype(dtype)
    return dtype


def _config_dtype(directory: Path, config: Any) -> torch.dtype | None:
    """The dtype config.json records (``torch_dtype``, or ``dtype`` as ``transformers`` 5
    writes it), None when it records none.

    Raises:
        CheckpointError: the recorded dtype is not a floating-point dtype's name.
    """
    recorded = getattr(config, "torch_dtype", None)
    if recorded is None:  # a config class without the field keeps the keys in extra
        recorded = config.extra.get("dtype", config.extra.get("torch_dtype"))
    if recorded is None:
        return None
    name = recorded.removeprefix("torch.") if isinstance(recorded, str) else recorded
    if name not in _DTYPE_NAMES:
        raise CheckpointError(
            f"{directory / CONFIG_NAME}: dtype {recorded!r:.40} is not one of "
            f"{list(_DTYPE_NAMES)}, so dtype='auto' cannot use it"
        )
    return getattr(torch, name)


def _model_float_dtype(model: Any) -> torch.dtype | None:
    """The dtype of ``model``'s float params when they share one (float32 as a rule)."""
    kinds = {t.dtype for t in _expected(model).values() if t.is_floating_point()}
    return kinds.pop() if len(kinds) == 1 else None


def from_pretrained(
    name_or_path: str | os.PathLike[str],
    constructor: Any,
    *,
    key: Key | None = None,
    strict: bool = False,
    output_loading_info: bool = False,
    dtype: torch.dtype | str | None = None,
    device: torch.device | str | None = None,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    force_download: bool = False,
    local_files_only: bool = False,
    token: str | bool | None = None,
    **config_overrides: Any,
) -> tuple[Any, Params] | tuple[Any, Params, Any]:
    """Load ``(model, params)`` from a directory, a 1.0 shortcut name or a Hub repo id.

    Args:
        name_or_path: a directory (any layout above), a pytorch-transformers 1.0 shortcut
            name (``"bert-base-uncased"``) or a repo id (``"google-bert/bert-base-uncased"``).
        constructor: the model class, e.g. ``bert.BertForSequenceClassification``.
        key: initialises head params the checkpoint lacks (reported by name).
        strict: missing or unexpected names raise instead of warning.
        output_loading_info: also return the :class:`~ptfunc.io.state_dict.LoadingInfo`.
        dtype: floating-point dtype of the params: a torch dtype (``torch.bfloat16``) or
            its name (``"bfloat16"``), or ``"auto"``: the dtype config.json records
            (``torch_dtype``, or ``dtype`` as ``transformers`` 5 writes it), else that of
            the first file's first floating-point tensor, as ``transformers`` 5's
            ``dtype="auto"`` picks it. Each tensor is cast as it is read, so no copy of
            the whole model in another dtype is ever held: a bfloat16 checkpoint loaded
            as bfloat16 is never float32, and a float32 safetensors one loaded as
            bfloat16 holds at most 16 MiB of float32 at a time
            (:data:`ptfunc.io.safetensors_io.CHUNK_BYTES`; a ``.bin`` shard is read
            whole, then cast tensor by tensor). Integer and bool tensors keep their dtype.
            Default (None): the model's (float32), as ptfunc always did and as
            pytorch-transformers 1.0 and ``transformers`` 4 do: float16/bfloat16/float64
            weights are cast to it. (``transformers`` 5's default is ``"auto"``; pass
            ``dtype="auto"`` for its behaviour.)

            Memory: safetensors tensors kept in their stored dtype on the CPU are
            copy-on-write views of the files (:func:`ptfunc.io.load_flat`): the load
            reads nothing, a page costs memory once it is first read, so the params of
            a model take the checkpoint's size (the peak RSS of loading a sharded
            bfloat16 Llama stays below 1.1x the checkpoint, ``benchmarks/
            load_llm_memory.py``), and an in-place update writes a private copy of the
            page, never the file. Saving over the loaded directory with
            :func:`save_pretrained` is safe (files are replaced, not rewritten); never
            truncate or rewrite a loaded file in place while its params are in use.

            Weights that are not floats where the model has float params, or of
            another shape, are refused, all of them in one
            :class:`~ptfunc.errors.CheckpointError` naming each file, name and both
            shapes or dtypes.
            A config recording ``pruned_heads`` takes weights of either the pruned
            shapes or the full size (pruned again here); one tensor of neither shape, or
            both kinds in one directory, is a ``CheckpointError`` naming file and tensor.
        device: where the params go (each tensor is moved as it is read).
        revision, cache_dir, force_download, local_files_only, token: for names, as in
            ``transformers`` (see :class:`ptfunc.hub.HubOptions`).
        **config_overrides: config fields to change (e.g. ``num_labels=3``).

    Example:
        >>> model, params = from_pretrained("gpt2", gpt2.GPT2LMHeadModel)  # doctest: +SKIP
    """
    dtype = _dtype_argument(dtype)
    options = hub.HubOptions(revision, cache_dir, force_download, local_files_only, token)
    directory = fetch_model_files(name_or_path, options)
    if not directory.is_dir():
        raise FileNotFoundError(
            f"{directory} is not a directory: expected a folder with {CONFIG_NAME} and "
            f"{SAFE_WEIGHTS_NAME} or {WEIGHTS_NAME}, a 1.0 shortcut name or a Hub repo id"
        )
    check_save_complete(directory, CONFIG_NAME)  # a save killed mid-commit: CheckpointError
    config = constructor.config_class.from_json_file(directory / CONFIG_NAME, **config_overrides)
    model = constructor(config)
    if dtype == "auto":  # transformers 5: config.json's dtype, else the weights'
        dtype = _config_dtype(directory, config) or "auto"
    # With no dtype, float tensors are read straight into the model's float dtype too:
    # a bfloat16 file is never held beside its float32 params.
    read_as = dtype if dtype is not None else _model_float_dtype(model)
    state, origin, read_as = _read_weights(directory, dtype=read_as, device=device)
    dtype = read_as if dtype is not None else None
    full = _full_size_model(model, state, origin)
    params, info = load_into(
        model if full is None else full,
        state,
        key=key,
        strict=strict,
        dtype=dtype,
        info=True,
        origin=lambda name: str(origin[name]),
        consume=True,
    )
    if full is not None:  # today's save of a pruned model: prune it again
        params = full.prune_heads(params, config.pruned_heads)[1]
    if dtype is not None or device is not None:
        params = _cast_params(params, dtype, device)
    return (model, params, info) if output_loading_info else (model, params)


def _full_size_model(model: Any, state: Mapping[str, Tensor], origin: Mapping[str, Path]) -> Any:
    """The unpruned model when ``state`` holds ``model``'s pruned attention at full size (as
    :func:`save_pretrained` writes it), None when at the pruned shapes (older saves) or when
    nothing is pruned.

    Raises:
        CheckpointError: a tensor of neither shape, or full-size and pruned ones together
            (the message names the file and the tensor).
    """
    pruned = model.config.pruned_heads
    if not pruned or not hasattr(model, "unprune_heads"):
        return None
    full = type(model)(model.config.replace(pruned_heads={}))
    small, large = expected_shapes(model), expected_shapes(full)
    found: dict[str, str] = {}  # "pruned" / "full-size" -> the first tensor of that kind
    for ckpt_name, name in param_names(model, list(state)).items():
        if name not in small or small[name] == large.get(name):
            continue
        shape = state[ckpt_name].shape
        kind = "full-size" if shape == large[name] else "pruned" if shape == small[name] else None
        if kind is None:
            raise CheckpointError(
                f"{origin[ckpt_name]}: {ckpt_name} has shape {tuple(shape)}; with config.json's "
                f"pruned_heads={dict(pruned)} it must be {tuple(small[name])} (pruned) or "
                f"{tuple(large[name])} (full-size)"
            )
        found.setdefault(kind, ckpt_name)
    if len(found) == 2:
        a, b = found["full-size"], found["pruned"]
        raise CheckpointError(
            f"{origin[a]}: {a} is full-size ({tuple(state[a].shape)}) but {b} (in {origin[b]}) "
            f"has the pruned shape {tuple(state[b].shape)} of pruned_heads={dict(pruned)}; "
            "the attention weights must be all pruned or all full-size"
        )
    return full if "full-size" in found else None


def _cast(tensor: Tensor, dtype: torch.dtype | None, device: torch.device | str | None) -> Tensor:
    """``tensor`` on ``device``, floating kinds in ``dtype``; the same tensor when unchanged."""
    target = dtype if dtype is not None and tensor.is_floating_point() else tensor.dtype
    return tensor.to(device=device if device is not None else tensor.device, dtype=target)


def _cast_params(params: Params, dtype: torch.dtype | None, device: Any) -> Params:
    from ..tree import map as tree_map

    return tree_map(lambda t: _cast(t, dtype, device), params)


def model_config_dict(model: Any) -> dict[str, Any]:
    """``model.config.to_dict()`` with ``architectures`` naming the model's class, as today's
    ``transformers`` reads it: XLNet's ``ff_activation="gelu"`` (the seed's tanh form) is
    written ``"gelu_new"``, the name ``transformers`` gives that form (its ``"gelu"`` is
    the erf form), so ``transformers`` computes what ptfunc does."""
    config = model.config.to_dict()
    config["architectures"] = [type(model).__name__]
    if config.get("model_type") == "xlnet" and config.get("ff_activation") == "gelu":
        config["ff_activation"] = "gelu_new"
    return config


def config_text(config: Mapping[str, Any]) -> str:
    """config.json text as ptfunc and the seed write it: indent 2, sorted keys, newline."""
    return json.dumps(config, indent=2, sort_keys=True) + "\n"


def pretrained_files(model: Any, params: Params) -> dict[str, str | bytes]:
    """``{"config.json": text, "model.safetensors": bytes}``: what :func:`save_pretrained` writes.

    Converters add tokenizer files to this and write the lot in one atomic step.
    ``config.json`` comes first: the file every reader needs is the one an atomic
    save (:mod:`ptfunc._atomic`) puts in place last. A model with pruned heads is
    written full-size (:func:`full_size`), config.json recording its ``pruned_heads``.
    """
    flat = to_torch_state_dict(*full_size(model, params), include_tied=False)
    config = model_config_dict(model)
    if "torch_dtype" in config:  # configs with that field record the dtype saved
        kinds = {t.dtype for t in flat.values() if t.is_floating_point()}
        if len(kinds) == 1:
            config["torch_dtype"] = str(kinds.pop()).removeprefix("torch.")
    return {
        CONFIG_NAME: config_text(config),
        SAFE_WEIGHTS_NAME: to_safetensors_bytes(flat),
    }


def full_size(model: Any, params: Params) -> tuple[Any, Params]:
    """``(model, params)`` as loaders that cannot prune heads build them: a model with
    pruned heads becomes the unpruned model, each pruned head's tensors zero
    (``model.unprune_heads``, see :func:`ptfunc.archs.prune.unprune`); any other model is
    returned as is."""
    if model.config.pruned_heads and hasattr(model, "unprune_heads"):
        return model.unprune_heads(params)
    return model, params


def superseded_files(directory: str | os.PathLike[str], names: Any) -> list[str]:
    """Files of ``directory`` that writing ``names`` makes stale: they must go with the save.

    :func:`weight_files` reads the first of :data:`WEIGHT_CANDIDATES` present, so every
    weight file that outranks the one written would load instead of it (old weights with
    the new config): a ``model.safetensors.index.json`` with its shards over a new
    ``model.safetensors``, and any safetensors file over a new ``pytorch_model.bin``.
    They go, each index after its shards (so that a save killed half-way leaves the index
    for the next save to find them by).
    """
    directory = Path(directory)
    ranks = [WEIGHT_CANDIDATES.index(n) for n in names if n in WEIGHT_CANDIDATES]
    if not ranks:
        return []
    stale: list[str] = []
    for candidate in WEIGHT_CANDIDATES[: min(ranks)]:
        path = directory / candidate
        if candidate in names or not path.is_file():
            continue
        if candidate.endswith(".index.json"):
            try:
                shards = read_weight_index(path)
            except CheckpointError:
                shards = []
            for shard in shards:
                name = shard.relative_to(directory).as_posix()
                if "/" not in name and name not in names and name not in stale and shard.is_file():
                    stale.append(name)
        stale.append(candidate)
    return stale


def save_pretrained(
    directory: str | os.PathLike[str],
    model: Any,
    params: Params,
    *,
    format: str = "safetensors",
) -> None:
    """Write ``config.json`` and the weights as one atomic save.

    Args:
        directory: created, or updated in place.
        model, params: what to save.
        format: ``"safetensors"`` (default): today's layout, ``model.safetensors`` and a
            config that today's ``transformers`` reads. ``"pt1"`` (or
            ``"pytorch-transformers"``): pytorch-transformers 1.0's layout, which 1.0's
            ``from_pretrained`` reads (it cannot read safetensors): ``pytorch_model.bin``
            with the tied copies written out and 1.0's config field names (see
            :mod:`ptfunc.io.convert.export`). A weight file that would outrank the new
            one when loading (a safetensors file beside a new ``pytorch_model.bin``)
            goes with the save.

    A new directory is written under a staging name and renamed into place; into an
    existing one, the files are written to temporary names first and committed
    together (see :mod:`ptfunc._atomic`), its other files are kept, and weight files
    the new ones supersede are removed. A failure, or a kill at any point, leaves the
    previous model or the new one (or a directory that :func:`from_pretrained` refuses
    with ``CheckpointError``), never a mix of the two.

    The weights carry the seed's names; in the default format tied copies are left
    out, as ``transformers`` does, so ``transformers``' ``from_pretrained`` loads the
    directory to identical outputs.

    A model with pruned heads is written full-size in both formats: each pruned head's
    query/key/value rows and output columns are zero, so ``transformers`` 5 and 1.0
    (which cannot prune on load) build every head and compute the pruned model's
    outputs; config.json records ``pruned_heads`` (both libraries keep it and ignore it),
    and :func:`from_pretrained` prunes the heads again.

    Raises:
        ValueError: an unknown ``format``.
    """
    directory = Path(directory)
    if format == "safetensors":
        files = pretrained_files(model, params)
    elif format in ("pt1", "pytorch-transformers"):
        from .convert.export import layout_files

        files = layout_files(model, params, "pytorch-transformers")
    else:
        raise ValueError(
            f"format must be 'safetensors' or 'pt1' (pytorch-transformers 1.0), got {format!r}"
        )
    save_directory(directory, files, remove=superseded_files(directory, files))
