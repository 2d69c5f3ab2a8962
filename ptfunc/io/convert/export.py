"""Export a model directory to today's ``transformers`` layout or to pytorch-transformers 1.0's.

The source is any directory :func:`ptfunc.io.from_pretrained` reads (ptfunc's,
``transformers``', 1.0's). The weights keep their names: the seed's state-dict
names are today's ``transformers`` names for every architecture ptfunc has
(checked by the tests), so an export changes files, not tensors, and is lossless:
loading the output back with ptfunc gives bitwise the same params.

``to="transformers"``
    ``config.json`` as ``transformers`` reads it (``model_type``, ``architectures``,
    today's field names) and ``model.safetensors`` without the tied copies (as
    ``transformers`` saves). XLNet's ``ff_activation="gelu"`` is written
    ``"gelu_new"``: the seed's gelu is the tanh form, which today's ``transformers``
    calls ``gelu_new`` (its ``"gelu"`` is the erf form). Transformer-XL is no longer
    in ``transformers`` 5: the directory is the 4.x layout (read by 4.46).

``to="pytorch-transformers"``
    ``config.json`` as 1.0's ``save_pretrained`` writes it (its field names:
    ``n_token`` for XLNet and Transformer-XL, ``n_words`` for XLM; indent 2, sorted
    keys) plus the fields 1.0 did not have (1.0 keeps unknown keys as attributes and
    ignores them) and ``architectures``, which lets ptfunc reload the same head class.
    ``pytorch_model.bin`` is ``torch.save`` of the state dict with the tied copies
    written out, as 1.0 saves it; causal-mask buffers (``attn.bias``) are left out
    (1.0 rebuilds them and loads without them).

Both: a sinusoidal XLM gets its fixed position table written out (both libraries
hold it as a weight), Transformer-XL its ``pos_emb.inv_freq`` buffer (both save it;
ptfunc computes it); tokenizer files found in the source are copied. A model with
pruned heads is written full-size: 1.0 has no ``pruned_heads`` and ``transformers`` 5
no longer prunes on load, so neither could build its smaller attention layers; each
pruned head's query/key/value rows and output-projection columns are written as zeros
instead (:func:`ptfunc.archs.prune.unprune`), which computes the same outputs in both.
config.json still records ``pruned_heads`` (both keep the key and ignore it), so
:func:`ptfunc.io.from_pretrained` of the output prunes the heads again: the export
stays lossless for ptfunc.
"""

from __future__ import annotations

import dataclasses
import io
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from ...archs.config import read_config_file
from ...archs.registry import MODEL_CLASSES, architecture_of, model_class, model_type_of
from ...layers.positions import interleaved_sinusoids
from ..inspect import inspect_checkpoint
from ..pretrained import (
    CONFIG_NAME,
    SAFE_WEIGHTS_NAME,
    WEIGHTS_NAME,
    config_text,
    from_pretrained,
    full_size,
    model_config_dict,
)
from ..safetensors_io import to_safetensors_bytes
from ..state_dict import expected_shapes, to_torch_state_dict
from ._common import Progress, report, write_directory

__all__ = [
    "export_directory",
    "layout_files",
    "TOKENIZER_FILES",
    "transformers_config",
    "pytorch_transformers_config",
]

Target = Literal["transformers", "pytorch-transformers"]

TOKENIZER_FILES: tuple[str, ...] = (
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
    "vocab.bin",
    "vocab.pkl",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
)
"""Files copied from the source directory when present (every family's vocabulary files,
1.0's and today's; Transformer-XL's ``vocab.bin``/``vocab.pkl`` are copied as bytes,
never unpickled)."""

# 1.0's name of a field where it differs from ptfunc's (ptfunc reads both).
_SEED_FIELD_NAMES: Mapping[str, Mapping[str, str]] = {
    "xlnet": {"vocab_size": "n_token"},
    "transfo-xl": {"vocab_size": "n_token"},
    "xlm": {"vocab_size": "n_words"},
}
# Activation field -> {ptfunc name: 1.0 name} of the activations 1.0 had (its "gelu" is
# BERT's erf form and XLNet's and OpenAI GPT's tanh form, as in ptfunc).
_SEED_ACTIVATIONS: Mapping[str, tuple[str, Mapping[str, str]]] = {
    "bert": ("hidden_act", {"gelu": "gelu", "relu": "relu", "swish": "swish", "silu": "swish"}),
    "xlnet": (
        "ff_activation",
        {"gelu": "gelu", "gelu_new": "gelu", "relu": "relu", "swish": "swish", "silu": "swish"},
    ),
    "openai-gpt": ("afn", {"gelu": "gelu", "relu": "relu", "swish": "swish", "silu": "swish"}),
}
# Fields 1.0 stored that ptfunc derives (its to_dict writes them).
_SEED_DERIVED_FIELDS: Mapping[str, tuple[str, ...]] = {"xlnet": ("d_head",)}
_WEIGHT_FILES = (
    SAFE_WEIGHTS_NAME,
    WEIGHTS_NAME,
    SAFE_WEIGHTS_NAME + ".index.json",
    WEIGHTS_NAME + ".index.json",
)


def export_directory(
    src_dir: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    to: Target = "transformers",
    model_class: str | type | None = None,
    progress: Progress | None = None,
) -> Path:
    """Write the model in ``src_dir`` to ``output_dir`` in the layout ``to`` names.

    Args:
        src_dir: a directory with config.json and weights (ptfunc, ``transformers``
            or 1.0 layout).
        output_dir: created, or updated atomically; it must not be ``src_dir`` nor
            hold weights in the other layout (a loader would read those instead).
        to: ``"transformers"`` or ``"pytorch-transformers"`` (see the module docstring).
        model_class: the class to load (name or ptfunc class). By default the
            config's ``architectures``; a 1.0 config has none, and then the class
            whose parameter names and shapes are exactly the weights' is used.
        progress: called as ``progress(done, total, name)`` per tensor written.

    Returns:
        ``output_dir`` as a ``Path``.

    Raises:
        FileNotFoundError: no config.json or weights in ``src_dir``.
        ValueError: an unknown target, weights the class lacks (they would be made
            up), or an output directory that would mislead.

    Example:
        >>> export_directory("my-bert", "my-bert-hf", to="transformers")  # doctest: +SKIP
    """
    if to not in ("transformers", "pytorch-transformers"):
        raise ValueError(f"to must be 'transformers' or 'pytorch-transformers', got {to!r}")
    src = Path(src_dir)
    out = Path(output_dir)
    config_path = src / CONFIG_NAME
    if not config_path.is_file():
        raise FileNotFoundError(f"expected a model directory with {CONFIG_NAME} at {src}")
    _check_output(src, out, to)
    config = read_config_file(config_path)
    cls = _resolve_class(src, config, model_class)
    model, params, info = from_pretrained(src, cls, output_loading_info=True)
    if info.missing_keys:
        raise ValueError(
            f"{src} lacks weights of {cls.__name__}: {info.missing_keys}; pass the "
            "model_class the directory holds"
        )
    files = layout_files(model, params, to, progress=progress)
    for name in TOKENIZER_FILES:
        if (src / name).is_file():
            files[name] = (src / name).read_bytes()
    return write_directory(out, files)


def layout_files(
    model: Any,
    params: Any,
    to: Target,
    *,
    progress: Progress | None = None,
) -> dict[str, str | bytes]:
    """``{"config.json": text, weights file: bytes}`` of ``model`` and ``params`` in the
    layout ``to`` names (see the module docstring); ``progress`` as in
    :func:`export_directory`.

    A model with pruned heads is written full-size, the pruned heads' tensors zero
    (:func:`ptfunc.io.pretrained.full_size`), config.json recording ``pruned_heads``.
    """
    state = to_torch_state_dict(
        *full_size(model, params), include_tied=to == "pytorch-transformers"
    )
    state.update(_fixed_tables(model, state))
    total = len(state)
    for i, name in enumerate(state, start=1):
        report(progress, i, total, name)
    if to == "transformers":
        return {
            CONFIG_NAME: config_text(transformers_config(model)),
            SAFE_WEIGHTS_NAME: to_safetensors_bytes(state),
        }
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return {
        CONFIG_NAME: config_text(pytorch_transformers_config(model)),
        WEIGHTS_NAME: buffer.getvalue(),
    }


# -- configs --------------------------------------------------------------------------------------


def transformers_config(model: Any) -> dict[str, Any]:
    """config.json dict for today's ``transformers`` (4.x for Transformer-XL)."""
    return model_config_dict(model)  # (XLNet's tanh gelu written gelu_new there)


def pytorch_transformers_config(model: Any) -> dict[str, Any]:
    """config.json dict as pytorch-transformers 1.0 writes it, plus ptfunc-only fields.

    Every field of the ptfunc config (those ``to_dict`` writes) under 1.0's name, the
    derived fields 1.0 stored (XLNet's ``d_head``), ``architectures``, and
    ``pruned_heads`` when heads are pruned (1.0 keeps the key as an attribute and writes
    it back; the weights are full-size, see the module docstring). Activations
    take 1.0's names (XLNet's ``gelu_new`` is 1.0's ``gelu``, ``silu`` its ``swish``);
    one 1.0 did not have is a ``ValueError``.
    """
    config = model.config
    today = config.to_dict()
    kind = type(config).model_type
    renames = _SEED_FIELD_NAMES.get(kind, {})
    keep = {f.name for f in dataclasses.fields(config)} - {"extra", "pruned_heads"}
    if config.pruned_heads:
        keep.add("pruned_heads")
    keep |= set(_SEED_DERIVED_FIELDS.get(kind, ()))
    out = {renames.get(key, key): value for key, value in today.items() if key in keep}
    if kind == "xlm" and config.n_langs > 1 and not config.use_lang_emb:
        raise ValueError(
            "pytorch-transformers 1.0 always has language embeddings when n_langs > 1; "
            "this XLM has use_lang_emb=False"
        )
    if kind in _SEED_ACTIVATIONS:
        field, names = _SEED_ACTIVATIONS[kind]
        if out[field] not in names:
            raise ValueError(
                f"pytorch-transformers 1.0 has no {field}={out[field]!r} for {kind}; "
                f"it knows {sorted(set(names.values()))}"
            )
        out[field] = names[out[field]]
    out["architectures"] = [type(model).__name__]
    return out


# -- what to load and what to write ------------------------------------------------------------


def _check_output(src: Path, out: Path, to: Target) -> None:
    if out.exists() and out.resolve() == src.resolve():
        raise ValueError(f"output_dir {out} is the source directory; choose another one")
    ours = SAFE_WEIGHTS_NAME if to == "transformers" else WEIGHTS_NAME
    stale = [name for name in _WEIGHT_FILES if name != ours and (out / name).exists()]
    if stale:
        raise ValueError(
            f"{out} already holds {stale}, which loaders would read instead of the exported "
            f"{ours}; choose an empty directory"
        )


def _resolve_class(src: Path, config: Mapping[str, Any], requested: str | type | None) -> Any:
    if requested is not None:
        return model_class(requested) if isinstance(requested, str) else requested
    if any(name in MODEL_CLASSES for name in config.get("architectures") or ()):
        return architecture_of(config)
    return _class_from_weights(src, config)


def _class_from_weights(src: Path, config: Mapping[str, Any]) -> Any:
    """The one class of the config's architecture whose params are exactly the weights'."""
    kind = model_type_of(config)
    found = {t.name.replace(".gamma", ".weight").replace(".beta", ".bias"): t.shape
             for t in inspect_checkpoint(src).tensors}  # fmt: skip
    fits = []
    for _, cls in sorted(MODEL_CLASSES.items()):
        if cls.config_class.model_type != kind:
            continue
        try:
            model = cls(cls.config_class.from_dict(config))
        except (TypeError, ValueError):
            continue
        want = {n: tuple(s) for n, s in expected_shapes(model).items()}
        have = {
            n: s
            for n, s in found.items()
            if n not in model.tied
            and not any(n == k or n.endswith("." + k) for k in model.ignored_checkpoint_keys)
        }
        if have == want:
            fits.append(cls)
    if len(fits) == 1:
        return fits[0]
    if len(fits) > 1:
        raise ValueError(
            f"{src}: the weights fit {sorted(c.__name__ for c in fits)} equally; pass model_class"
        )
    fallback = architecture_of(config)
    warnings.warn(
        f"{src}: no {kind} class has exactly these weights; loading {fallback.__name__}",
        stacklevel=3,
    )
    return fallback


def _fixed_tables(model: Any, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Tensors the references keep in their state dicts that ptfunc computes instead:
    a sinusoidal XLM's position table and Transformer-XL's ``pos_emb.inv_freq``."""
    config = model.config
    prefix = "" if model.is_base_model else model.base_model_prefix + "."
    dtype = next(iter(state.values())).dtype
    if config.model_type == "xlm" and config.sinusoidal_embeddings:
        positions = torch.arange(config.max_position_embeddings)
        table = interleaved_sinusoids(positions, config.emb_dim, dtype=dtype)
        return {prefix + "position_embeddings.weight": table}
    if config.model_type == "transfo-xl":
        # the references' own expression, evaluated in float32 as they do
        inv_freq = 1 / (10000 ** (torch.arange(0.0, config.d_model, 2.0) / config.d_model))
        return {prefix + "pos_emb.inv_freq": inv_freq.to(dtype)}
    return {}
