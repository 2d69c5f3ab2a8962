"""What the converters from TensorFlow checkpoints share: a name table, its checks, the output.

A converter describes a checkpoint by a **table** ``{param name: Source}``: the
TensorFlow variable(s) a param is made of and the layout change between them
(a dense kernel ``(in, out)`` is transposed to PyTorch's ``(out, in)``, a
GPT-2 conv weight ``(1, nx, nf)`` loses its leading axis, a per-layer stack
``(n_layer, ...)`` gives one layer, cluster biases are concatenated...).
:func:`convert_checkpoint` then

1. checks that every variable the table names is in the checkpoint (the
   missing ones are an error naming them: the config does not fit),
2. checks that every variable of the checkpoint is used, or is optimizer or
   bookkeeping state (Adam slots, ``global_step``...; see :func:`is_training_state`):
   other variables are an error naming them (``strict=False`` turns it into a
   warning), because a variable nobody reads means the table and the
   checkpoint disagree and the converted model would silently differ,
3. reads each variable once, applies the layout change, checks the shape against
   what the model expects (an error names the variable, the param and both shapes),
4. builds the params with ``from_torch_state_dict(strict=True)`` and writes
   ``config.json`` + ``model.safetensors`` (what ``save_pretrained`` writes) and the
   tokenizer files in one atomic step: a failure leaves no output directory behind.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..pretrained import pretrained_files
from ..state_dict import expected_shapes, from_torch_state_dict
from ..tf_checkpoint import TFCheckpoint
from ._common import Progress, read_file_bytes, report, write_directory

__all__ = [
    "Source",
    "var",
    "kernel",
    "dense",
    "layer_norm",
    "per_layer",
    "squeeze_leading",
    "concat",
    "is_training_state",
    "open_checkpoint",
    "checkpoint_folder",
    "read_json",
    "build_params",
    "convert_checkpoint",
]

Table = Mapping[str, "Source"]


def _same(t: Tensor) -> Tensor:
    return t


@dataclass(frozen=True)
class Source:
    """How one param is made: TensorFlow variable names and a function of their tensors.

    Attributes:
        names: the variables, in the order ``fn`` takes them.
        fn: ``fn(*tensors) -> tensor`` in PyTorch layout.
        what: the layout change in words, for error messages ("transposed"...).
    """

    names: tuple[str, ...]
    fn: Callable[..., Tensor] = _same
    what: str = ""


def var(name: str) -> Source:
    """The variable as it is (embedding tables, biases, LayerNorm gamma/beta...)."""
    return Source((name,))


def _transpose(t: Tensor) -> Tensor:
    if t.dim() != 2:
        raise ValueError(f"expected a 2-D dense kernel (in, out), got shape {tuple(t.shape)}")
    return t.t().contiguous()


def kernel(name: str) -> Source:
    """A dense kernel ``(in, out)`` as PyTorch's Linear weight ``(out, in)``."""
    return Source((name,), _transpose, "transposed")


def dense(tf_scope: str, param: str, *, bias: bool = True) -> dict[str, Source]:
    """``{param}.weight`` from ``{tf_scope}/kernel`` (transposed), ``.bias`` from ``/bias``."""
    table = {f"{param}.weight": kernel(f"{tf_scope}/kernel")}
    if bias:
        table[f"{param}.bias"] = var(f"{tf_scope}/bias")
    return table


def layer_norm(tf_scope: str, param: str) -> dict[str, Source]:
    """``{param}.weight``/``.bias`` from ``{tf_scope}/gamma``/``beta`` (TF's LayerNorm names)."""
    return {f"{param}.weight": var(f"{tf_scope}/gamma"), f"{param}.bias": var(f"{tf_scope}/beta")}


def per_layer(name: str, index: int, count: int) -> Source:
    """Entry ``index`` of a variable stacked over ``count`` layers (``(count, ...)`` -> ``...``)."""

    def pick(t: Tensor) -> Tensor:
        if t.dim() == 0 or t.shape[0] != count:
            raise ValueError(
                f"expected one entry per layer along the first axis ({count} layers), "
                f"got shape {tuple(t.shape)}"
            )
        return t[index].clone()

    return Source((name,), pick, f"entry {index} of the stack over layers")


def squeeze_leading(name: str) -> Source:
    """A ``(1, ...)`` variable without its leading axis (GPT-2's conv1d weights ``(1, nx, nf)``)."""

    def squeeze(t: Tensor) -> Tensor:
        if t.dim() == 0 or t.shape[0] != 1:
            raise ValueError(f"expected a leading axis of size 1, got shape {tuple(t.shape)}")
        return t[0].clone()

    return Source((name,), squeeze, "leading axis dropped")


def concat(names: Iterable[str]) -> Source:
    """Several 1-D variables joined end to end (Transformer-XL's per-cluster softmax biases)."""

    def join(*ts: Tensor) -> Tensor:
        if any(t.dim() != 1 for t in ts):
            raise ValueError(f"expected 1-D tensors, got shapes {[tuple(t.shape) for t in ts]}")
        return torch.cat(ts)

    return Source(tuple(names), join, "concatenated")


# Optimizer slots (a path component) and bookkeeping variables (the whole name) written by
# the original training code: google-research BERT and XLNet (AdamWeightDecayOptimizer:
# adam_m/adam_v, older releases named the slots after the optimizer), tf.train.AdamOptimizer
# (Adam, Adam_1, beta1_power, beta2_power: Transformer-XL), other TF1 optimizers, loss scaling.
_SLOT = re.compile(
    r"(adam_m|adam_v|Adam|AdamWeightDecayOptimizer|LAMB|Momentum|Adagrad|AdagradDA|RMSProp|"
    r"Adadelta|Ftrl|ExponentialMovingAverage)(_\d+)?"
)
_BOOKKEEPING = re.compile(
    r"(global_step|beta1_power|beta2_power|loss_scale|current_loss_scale|good_steps|bad_steps)"
    r"(_\d+)?"
)


def is_training_state(name: str) -> bool:
    """Whether a checkpoint variable is optimizer or bookkeeping state, not a weight.

    Example:
        >>> is_training_state("bert/pooler/dense/kernel/adam_m"), is_training_state("global_step")
        (True, True)
        >>> is_training_state("bert/pooler/dense/kernel")
        False
    """
    parts = name.split("/")
    return bool(_BOOKKEEPING.fullmatch(parts[-1]) and len(parts) == 1) or any(
        _SLOT.fullmatch(part) for part in parts[1:]
    )


def open_checkpoint(path: str | os.PathLike[str]) -> TFCheckpoint:
    """Open a TF checkpoint (prefix, ``.index`` file or directory); errors name the path."""
    return TFCheckpoint(path)


def checkpoint_folder(path: str | os.PathLike[str]) -> Path:
    """The folder a checkpoint argument points into (the folder itself, or the prefix's parent)."""
    path = Path(path)
    return path if path.is_dir() else path.parent


def read_json(path: str | os.PathLike[str], what: str) -> dict[str, Any]:
    """A JSON object from a file the user named; errors say which file and what was expected."""
    data = read_file_bytes(path, what)
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON (expected {what}): {e}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path} holds a JSON {type(value).__name__}, expected {what} (an object)")
    return value


def _short(names: Iterable[str], limit: int = 12) -> str:
    names = sorted(names)
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def build_params(
    ckpt: TFCheckpoint,
    model: Any,
    table: Table,
    *,
    progress: Progress | None = None,
    strict: bool = True,
    hint: str = "",
) -> Any:
    """Params for ``model`` read from ``ckpt`` through ``table`` (the checks of the module doc).

    Args:
        ckpt: the open checkpoint.
        model: the ptfunc model the params are for.
        table: ``{param name: Source}`` covering every param the model stores.
        progress: called once per param as ``progress(done, total, variable names)``.
        strict: unused variables that are not training state raise (else: a warning).
        hint: appended to the missing/unused errors (e.g. "pass finetuning_task=...").

    Raises:
        ValueError: variables missing or unused, or a shape that does not fit, named.
    """
    available = set(ckpt.names)
    needed = {name for source in table.values() for name in source.names}
    missing = needed - available
    if missing:
        raise ValueError(
            f"the checkpoint {_label(ckpt)} lacks variables that {type(model).__name__} "
            f"with this config needs: {_short(missing)}. Does the config match the "
            f"checkpoint?{hint}"
        )
    unused = {n for n in available - needed if not is_training_state(n)}
    if unused:
        message = (
            f"the checkpoint {_label(ckpt)} has variables that {type(model).__name__} "
            f"with this config does not use: {_short(unused)}"
        )
        if strict:
            raise ValueError(
                message + f". Does the config match the checkpoint?{hint} "
                "(strict=False converts anyway, leaving them out)"
            )
        warnings.warn(message + "; they are left out", stacklevel=3)
    shapes = expected_shapes(model)
    uses: dict[str, int] = {}
    for source in table.values():
        for name in source.names:
            uses[name] = uses.get(name, 0) + 1
    cache: dict[str, Tensor] = {}
    state: dict[str, Tensor] = {}
    total = len(table)
    for done, (param, source) in enumerate(table.items(), 1):
        tensors = []
        for name in source.names:
            if name not in cache:
                cache[name] = ckpt.read(name)
            tensors.append(cache[name])
            uses[name] -= 1
            if not uses[name]:
                del cache[name]
        label = " + ".join(source.names)
        try:
            value = source.fn(*tensors)
        except (ValueError, IndexError, RuntimeError) as e:
            raise ValueError(f"checkpoint variable {label} cannot become {param}: {e}") from None
        if any(value.data_ptr() == t.data_ptr() for t in tensors) and any(
            uses.get(n, 0) for n in source.names
        ):
            value = value.clone()  # the variable feeds another param too: store them apart
        expected = shapes.get(param)
        if expected is None:
            raise ValueError(f"internal: {type(model).__name__} has no param {param}")
        if tuple(value.shape) != tuple(expected):
            shown = ", ".join(f"{n} {tuple(t.shape)}" for n, t in zip(source.names, tensors))
            how = f" ({source.what})" if source.what else ""
            raise ValueError(
                f"shape mismatch: checkpoint variable {shown} gives {param} of shape "
                f"{tuple(value.shape)}{how}, but {type(model).__name__} with this config expects "
                f"{tuple(expected)}. Does the config match the checkpoint?"
            )
        state[param] = value
        report(progress, done, total, label)
    return from_torch_state_dict(model, state, strict=True)


def _label(ckpt: TFCheckpoint) -> str:
    """How errors name a checkpoint (its path when the reader tells it)."""
    for attribute in ("prefix", "path"):
        value = getattr(ckpt, attribute, None)
        if value is not None:
            return f"at {value}"
    return ""


def convert_checkpoint(
    ckpt: TFCheckpoint,
    model: Any,
    table: Table,
    output_dir: str | os.PathLike[str],
    *,
    files: Mapping[str, str | bytes] | None = None,
    progress: Progress | None = None,
    strict: bool = True,
    hint: str = "",
) -> Path:
    """Build the params (:func:`build_params`) and write the whole directory in one atomic step.

    Args:
        files: tokenizer files to add, ``{file name: content}`` (read before the checkpoint,
            so a missing vocabulary fails fast).

    Returns:
        ``output_dir`` as a Path.
    """
    params = build_params(ckpt, model, table, progress=progress, strict=strict, hint=hint)
    return write_directory(output_dir, {**pretrained_files(model, params), **(files or {})})
