"""Map between flat checkpoint state dicts and a model's params tree, by name.

A param's dotted path is its checkpoint name, so the mapping is a table, not
code: old LayerNorm names (``gamma``/``beta``) are renamed, the base-model
prefix is added or stripped (a head model loads a base checkpoint and vice
versa), tied copies (``cls.predictions.decoder.weight``) and buffers
(``position_ids``) are dropped, and what is left must match the model's names
and shapes. Missing params are initialised fresh (only those: see
:mod:`._init_only`) and reported by name; unexpected names are reported.

Every tensor is checked against the param it fills: a shape that differs, or an
integer, bool or complex tensor where the model has a float param (or any other
dtype where it has an integer one) is an error, and all of them are reported at once
in one :class:`~ptfunc.errors.CheckpointError`. Floating-point tensors of another
float kind (float16, bfloat16, float64) are cast to the model's dtype, as
``transformers`` does, or to ``dtype=`` when one is given.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor

from ..errors import CheckpointError
from ..random import Key
from ..random import key as make_key
from ..tree import Params, from_flat_dict, to_flat_dict
from ._init_only import init_only

__all__ = [
    "LoadingInfo",
    "expected_shapes",
    "param_names",
    "from_torch_state_dict",
    "to_torch_state_dict",
]

_OLD_NAMES = {"gamma": "weight", "beta": "bias"}


class LoadingInfo(NamedTuple):
    """What a load found: names missing (freshly initialised) and names not used."""

    missing_keys: list[str]
    unexpected_keys: list[str]


def _expected(model: Any) -> dict[str, Tensor]:
    """``{dotted name: meta tensor}`` of the params ``model.init`` builds (no memory used)."""
    with torch.device("meta"):
        params = model.init(make_key(0, device="cpu"))
    return to_flat_dict(params)


def expected_shapes(model: Any) -> dict[str, torch.Size]:
    """``{dotted name: shape}`` of the params ``model.init`` builds (no memory used)."""
    return {name: t.shape for name, t in _expected(model).items()}


def _rename_old(name: str) -> str:
    parts = name.split(".")
    return ".".join(parts[:-1] + [_OLD_NAMES.get(parts[-1], parts[-1])])


def _rename(model: Any, name: str) -> str:
    """A checkpoint name as ``model`` calls it: old LayerNorm names renamed, then the
    model's ``checkpoint_aliases`` (another library's name for one of its params: GPT-NeoX's
    ``lm_head.weight`` in transformers 5 files is ``embed_out.weight`` in Pythia's)."""
    name = _rename_old(name)
    return getattr(model, "checkpoint_aliases", {}).get(name, name)


def _is_ignored(model: Any, name: str) -> bool:
    return any(name == s or name.endswith("." + s) for s in model.ignored_checkpoint_keys)


def _align_prefix(model: Any, names: list[str], expected: set[str]) -> dict[str, str]:
    """``{checkpoint name: param name}``, adding or stripping the base-model prefix."""
    prefix = model.base_model_prefix
    if not prefix:
        return {n: n for n in names}
    dotted = prefix + "."
    has_prefix = any(n.startswith(dotted) for n in names)
    if model.is_base_model and has_prefix:
        # A head checkpoint into the bare model: keep the base, drop the head.
        return {n: n[len(dotted) :] if n.startswith(dotted) else n for n in names}
    if not model.is_base_model and not has_prefix:
        # A bare-model checkpoint into a head model.
        return {n: dotted + n if dotted + n in expected else n for n in names}
    return {n: n for n in names}


def param_names(model: Any, names: list[str]) -> dict[str, str]:
    """``{checkpoint name: the param name it loads into}`` for ``model``: old LayerNorm names
    renamed, the base-model prefix added or stripped (as :func:`load_into` maps them; a name
    that is no param of ``model`` maps to itself, renamed)."""
    renamed = {name: _rename(model, name) for name in names}
    aligned = _align_prefix(model, list(renamed.values()), set(_expected(model)))
    return {name: aligned[new] for name, new in renamed.items()}


def _check_tie(
    model: Any, name: str, value: Tensor, renamed: dict[str, Tensor], mapping: dict[str, str]
) -> None:
    """Warn when a checkpoint's copy of a tied weight differs from the weight it is tied to."""
    source = model.tied[name]
    for ckpt_name, param_name in mapping.items():
        if param_name == source:
            other = renamed[ckpt_name]
            if other.shape == value.shape and not torch.equal(other, value.to(other.dtype)):
                warnings.warn(
                    f"{type(model).__name__}: the checkpoint's {name} differs from {source}; "
                    f"ptfunc ties them and uses {source}",
                    stacklevel=3,
                )
            return


def _dtype(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def check_float_dtype(dtype: Any) -> None:
    """``dtype=`` is None or a floating-point torch dtype (it applies to float params)."""
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"dtype must be a floating-point torch dtype or None, got {dtype!r}")


def _mismatch(name: str, value: Tensor, want: Tensor, cls: str, where: str) -> str | None:
    """What is wrong with ``value`` as the param ``name`` (``want``: its meta tensor), or None."""
    if value.shape != want.shape:
        return (
            f"shape mismatch for {name}{where}: checkpoint has {tuple(value.shape)}, "
            f"{cls} with this config expects {tuple(want.shape)}"
        )
    if want.is_floating_point() and not value.is_floating_point():
        return (
            f"dtype mismatch for {name}{where}: checkpoint has {_dtype(value.dtype)}, {cls} "
            f"expects a floating-point tensor ({_dtype(want.dtype)})"
        )
    if not want.is_floating_point() and value.dtype != want.dtype:
        return (
            f"dtype mismatch for {name}{where}: checkpoint has {_dtype(value.dtype)}, {cls} "
            f"expects {_dtype(want.dtype)}"
        )
    return None


def from_torch_state_dict(
    model: Any,
    state_dict: Mapping[str, Tensor],
    *,
    key: Key | None = None,
    strict: bool = False,
    output_loading_info: bool = False,
    dtype: torch.dtype | None = None,
) -> Params | tuple[Params, LoadingInfo]:
    """Params for ``model`` from a state dict (pytorch-transformers 1.0 or ``transformers``).

    Args:
        model: a ptfunc model (e.g. ``bert.BertForMaskedLM(config)``).
        state_dict: ``{name: tensor}``, e.g. a torch module's ``state_dict()``.
        key: initialises params the checkpoint lacks (default ``key(0)``); only those
            are initialised, to the values a full ``model.init(key)`` gives them.
        strict: raise instead of warning on missing or unexpected names.
        output_loading_info: also return a :class:`LoadingInfo`.
        dtype: the floating-point dtype of the params; default: the model's (float32).
            Float tensors of another kind are cast to it; integer and bool params keep
            theirs.

    Raises:
        CheckpointError: (a ``ValueError``) tensors whose shape or dtype do not fit
            the model's params (all of them listed, both shapes or dtypes named), no name
            matching at all (a checkpoint of another architecture), or with ``strict``
            missing or unexpected names.
        TypeError: a value is not a tensor.
    """
    return load_into(
        model, state_dict, key=key, strict=strict, dtype=dtype, info=output_loading_info
    )


def load_into(
    model: Any,
    state_dict: Mapping[str, Tensor],
    *,
    key: Key | None = None,
    strict: bool = False,
    dtype: torch.dtype | None = None,
    info: bool = False,
    origin: Callable[[str], str] | None = None,
    consume: bool = False,
) -> Any:
    """:func:`from_torch_state_dict`, where ``origin(name)`` names the file a checkpoint
    name came from (for the messages) and ``consume=True`` lets it empty ``state_dict``
    as it goes (so that a cast copy does not live beside its source)."""
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"state_dict must be a mapping of names to tensors, got {type(state_dict)}")
    check_float_dtype(dtype)
    cls = type(model).__name__
    expected = _expected(model)
    renamed: dict[str, Tensor] = {}
    original: dict[str, str] = {}
    for name, value in state_dict.items():
        if not isinstance(value, Tensor):
            raise TypeError(f"state_dict[{name!r}] is a {type(value).__name__}, expected a tensor")
        renamed[_rename(model, name)] = value
        original[_rename(model, name)] = name
    if consume and isinstance(state_dict, dict):
        state_dict.clear()
    mapping = _align_prefix(model, list(renamed), set(expected))
    used: dict[str, str] = {}  # param name -> checkpoint name
    unexpected: list[str] = []
    problems: list[str] = []
    for ckpt_name, name in mapping.items():
        if name in model.tied:
            _check_tie(model, name, renamed[ckpt_name], renamed, mapping)
            continue
        if _is_ignored(model, name):
            continue
        if name not in expected:
            unexpected.append(ckpt_name)
            continue
        where = f" (in {origin(original[ckpt_name])})" if origin is not None else ""
        problem = _mismatch(name, renamed[ckpt_name], expected[name], cls, where)
        if problem is not None:
            problems.append(problem)
        used[name] = ckpt_name
    if problems:
        head = "1 tensor does not" if len(problems) == 1 else f"{len(problems)} tensors do not"
        raise CheckpointError(
            f"{head} fit {cls}: " + problems[0]
            if len(problems) == 1
            else f"{head} fit {cls}:\n  " + "\n  ".join(problems)
        )
    if not used:
        some = sorted(renamed)[:3]
        raise CheckpointError(
            f"the checkpoint does not fit {cls}: none of its {len(renamed)} names "
            f"match (it has e.g. {some}; expected e.g. {sorted(expected)[:3]}). "
            "Is it a checkpoint of another architecture?"
        )
    missing = sorted(set(expected) - set(used))
    if (missing or unexpected) and strict:
        raise CheckpointError(f"missing keys {missing}; unexpected keys {sorted(unexpected)}")
    loaded: dict[str, Tensor] = {}
    for name, ckpt_name in used.items():
        value = renamed.pop(ckpt_name) if consume else renamed[ckpt_name]
        loaded[name] = _to_param_dtype(value, expected[name], dtype)
    del renamed
    if missing:
        fresh = init_only(model.init, key if key is not None else make_key(0), missing)
        for name in missing:
            loaded[name] = _to_param_dtype(fresh.pop(name), expected[name], dtype)
        warnings.warn(
            f"{cls}: initialised params missing from the checkpoint: {missing}", stacklevel=3
        )
    if unexpected:
        warnings.warn(f"{cls}: checkpoint names not used: {sorted(unexpected)}", stacklevel=3)
    params = from_flat_dict({name: loaded.pop(name) for name in sorted(expected)})
    return (params, LoadingInfo(missing, sorted(unexpected))) if info else params


def _to_param_dtype(value: Tensor, want: Tensor, dtype: torch.dtype | None) -> Tensor:
    """``value`` in the param's dtype: float kinds cast to ``dtype`` or the model's."""
    if not want.is_floating_point():
        return value
    target = dtype if dtype is not None else want.dtype
    return value if value.dtype == target else value.to(target)


def to_torch_state_dict(
    model: Any, params: Params, *, include_tied: bool = True
) -> dict[str, Tensor]:
    """A flat state dict with the seed's names; tied weights written out under both names.

    ``include_tied=False`` leaves the tied copies out (as safetensors files do).
    """
    flat = to_flat_dict(params)
    if include_tied:
        for name, source in model.tied.items():
            if source in flat:
                flat[name] = flat[source]
    return flat
