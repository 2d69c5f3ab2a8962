"""Map between flat checkpoint state dicts and a model's params tree, by name.

A param's dotted path is its checkpoint name, so the mapping is a table, not
code: old LayerNorm names (``gamma``/``beta``) are renamed, the base-model
prefix is added or stripped (a head model loads a base checkpoint and vice
versa), tied copies (``cls.predictions.decoder.weight``) and buffers
(``position_ids``) are dropped, and what is left must match the model's names
and shapes. Missing params are initialised fresh and reported by name;
unexpected names are reported; a shape mismatch is an error naming both shapes.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor

from ..random import Key
from ..random import key as make_key
from ..tree import Params, from_flat_dict, to_flat_dict

__all__ = ["LoadingInfo", "expected_shapes", "from_torch_state_dict", "to_torch_state_dict"]

_OLD_NAMES = {"gamma": "weight", "beta": "bias"}


class LoadingInfo(NamedTuple):
    """What a load found: names missing (freshly initialised) and names not used."""

    missing_keys: list[str]
    unexpected_keys: list[str]


def expected_shapes(model: Any) -> dict[str, torch.Size]:
    """``{dotted name: shape}`` of the params ``model.init`` builds (no memory used)."""
    with torch.device("meta"):
        params = model.init(make_key(0, device="cpu"))
    return {name: t.shape for name, t in to_flat_dict(params).items()}


def _rename_old(name: str) -> str:
    parts = name.split(".")
    return ".".join(parts[:-1] + [_OLD_NAMES.get(parts[-1], parts[-1])])


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


def _check_tie(
    model: Any, name: str, value: Tensor, renamed: dict[str, Tensor], mapping: dict[str, str]
) -> None:
    """Warn when a checkpoint's copy of a tied weight differs from the weight it is tied to."""
    source = model.tied[name]
    for ckpt_name, param_name in mapping.items():
        if param_name == source:
            other = renamed[ckpt_name]
            if other.shape == value.shape and not torch.equal(other, value):
                warnings.warn(
                    f"{type(model).__name__}: the checkpoint's {name} differs from {source}; "
                    f"ptfunc ties them and uses {source}",
                    stacklevel=3,
                )
            return


def from_torch_state_dict(
    model: Any,
    state_dict: Mapping[str, Tensor],
    *,
    key: Key | None = None,
    strict: bool = False,
    output_loading_info: bool = False,
) -> Params | tuple[Params, LoadingInfo]:
    """Params for ``model`` from a state dict (pytorch-transformers 1.0 or ``transformers``).

    Args:
        model: a ptfunc model (e.g. ``bert.BertForMaskedLM(config)``).
        state_dict: ``{name: tensor}``, e.g. a torch module's ``state_dict()``.
        key: initialises params the checkpoint lacks (default ``key(0)``).
        strict: raise instead of warning on missing or unexpected names.
        output_loading_info: also return a :class:`LoadingInfo`.

    Raises:
        ValueError: a shape differs from the model's (both shapes named), or no
            name matches at all (a checkpoint of another architecture).
    """
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"state_dict must be a mapping of names to tensors, got {type(state_dict)}")
    shapes = expected_shapes(model)
    expected = set(shapes)
    renamed: dict[str, Tensor] = {}
    for name, value in state_dict.items():
        if not isinstance(value, Tensor):
            raise TypeError(f"state_dict[{name!r}] is a {type(value).__name__}, expected a tensor")
        renamed[_rename_old(name)] = value
    mapping = _align_prefix(model, list(renamed), expected)
    loaded: dict[str, Tensor] = {}
    unexpected: list[str] = []
    for ckpt_name, name in mapping.items():
        if name in model.tied:
            _check_tie(model, name, renamed[ckpt_name], renamed, mapping)
            continue
        if _is_ignored(model, name):
            continue
        if name not in expected:
            unexpected.append(ckpt_name)
            continue
        value = renamed[ckpt_name]
        if value.shape != shapes[name]:
            raise ValueError(
                f"shape mismatch for {name}: checkpoint has {tuple(value.shape)}, "
                f"{type(model).__name__} with this config expects {tuple(shapes[name])}"
            )
        loaded[name] = value
    if not loaded:
        some = sorted(renamed)[:3]
        raise ValueError(
            f"the checkpoint does not fit {type(model).__name__}: none of its {len(renamed)} names "
            f"match (it has e.g. {some}; expected e.g. {sorted(expected)[:3]}). "
            "Is it a checkpoint of another architecture?"
        )
    missing = sorted(expected - set(loaded))
    if (missing or unexpected) and strict:
        raise ValueError(f"missing keys {missing}; unexpected keys {sorted(unexpected)}")
    if missing:
        dtype = next(iter(loaded.values())).dtype
        fresh = to_flat_dict(model.init(key if key is not None else make_key(0)))
        for name in missing:
            loaded[name] = fresh[name].to(dtype)
        warnings.warn(
            f"{type(model).__name__}: initialised params missing from the checkpoint: {missing}",
            stacklevel=2,
        )
    if unexpected:
        warnings.warn(
            f"{type(model).__name__}: checkpoint names not used: {sorted(unexpected)}", stacklevel=2
        )
    params = from_flat_dict({name: loaded[name] for name in sorted(shapes)})
    info = LoadingInfo(missing, sorted(unexpected))
    return (params, info) if output_loading_info else params


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
