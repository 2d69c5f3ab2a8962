"""Checks of a model's inputs at the ``apply`` boundary, shared by every architecture.

Each architecture's forward (``bert.encode``, the ``transformer`` of OpenAI GPT, GPT-2,
Transformer-XL, XLNet and XLM) calls these once, before any arithmetic, so that every
model class of every architecture refuses bad input with the same words:

* **Shapes and dtypes**, always: ``input_ids`` an int64/int32 tensor of shape
  ``(batch, seq)`` with ``seq >= 1``; masks, token types and positions of the shapes
  documented by the model; ``head_mask`` ``(num_heads,)`` or ``(num_layers, num_heads)``;
  the sequence (plus a cache) no longer than learned positions allow. These read shapes
  only, so they cost nothing under ``torch.compile`` (no graph break: a static shape is a
  constant, a dynamic one a guard) and hold under ``vmap``, where a per-example input
  has lost its batch axis: add it back with ``ids[None]`` as the error says.
* **Values** (ids in the vocabulary, token types, positions, lengths), only with
  ``validate=True`` (the default of every ``apply``) and only on tensors whose values
  can be read: not while ``torch.compile``/``torch.export``/``torch.jit.trace`` trace,
  not on tensors wrapped by ``torch.func`` transforms (``vmap``...), not on meta or fake
  tensors. ``validate=False`` skips them (each costs a device sync); an id out of range
  then fails wherever the lookup fails, or not at all.

Errors are ``ValueError``; a wrong dtype is an :class:`InputDtypeError`, both a
``TypeError`` and a ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torch._C._functorch import is_functorch_wrapped_tensor
from torch._subclasses.fake_tensor import FakeTensor

__all__ = [
    "InputDtypeError",
    "INDEX_DTYPES",
    "check_input_ids",
    "check_positions",
    "check_index_tensor",
    "check_shape",
    "check_per_token",
    "check_range",
    "check_head_mask",
    "values_readable",
    "flatten_choices",
    "check_past",
    "PER_TOKEN_OPTIONS",
]

INDEX_DTYPES = (torch.int64, torch.int32)
"""The dtypes an id tensor may have (what ``F.embedding`` indexes with)."""


class InputDtypeError(TypeError, ValueError):
    """An input tensor of the wrong dtype (or not a tensor): a ``TypeError`` and a
    ``ValueError``."""


def values_readable(*tensors: Tensor | None) -> bool:
    """True when the values of ``tensors`` may be read in Python without tracing problems:
    eager mode, not under a ``torch.func`` transform's wrapper, not meta or fake."""
    if torch.compiler.is_compiling() or torch.jit.is_tracing():
        return False
    return all(
        t is None
        or not (
            is_functorch_wrapped_tensor(t) or isinstance(t, FakeTensor) or t.device.type == "meta"
        )
        for t in tensors
    )


def _shape(t: Any) -> Any:
    return tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__


def check_index_tensor(name: str, t: Any) -> None:
    """``t`` must be an int64/int32 tensor (not bool, uint8, int8/16 or floating).

    Raises:
        InputDtypeError: naming ``name`` and the dtype that came.
    """
    if not isinstance(t, Tensor):
        raise InputDtypeError(f"{name} must be an integer tensor, got {type(t).__name__}")
    if t.dtype not in INDEX_DTYPES:
        hint = (
            " (ids, not a mask: convert with .long())"
            if t.dtype in (torch.bool, torch.uint8)
            else ""
        )
        raise InputDtypeError(
            f"{name} must be an integer tensor (int64 or int32), got {t.dtype}{hint}"
        )


def check_input_ids(
    input_ids: Any,
    *,
    vocab_size: int,
    max_positions: int | None = None,
    positions_name: str = "",
    past_len: int = 0,
    validate: bool = True,
) -> tuple[int, int]:
    """Validate ``input_ids`` (batch, seq); returns ``(batch, seq)``.

    Args:
        vocab_size: ids must lie in ``[0, vocab_size)`` (a value check).
        max_positions: learned positions: ``past_len + seq`` must not exceed it (a shape
            check). None for models with relative or sinusoid positions.
        positions_name: the config field of ``max_positions``, for the message.
        past_len: cached positions (GPT-2's ``past``, XLM's ``cache``).
        validate: run the value check (when values are readable).

    Raises:
        ValueError: wrong rank, an empty sequence, too long, ids out of range.
        InputDtypeError: not an int64/int32 tensor.
    """
    if not isinstance(input_ids, Tensor) or input_ids.dim() != 2:
        if not isinstance(input_ids, Tensor):
            check_index_tensor("input_ids", input_ids)
        raise ValueError(
            f"input_ids must have shape (batch, seq); got {_shape(input_ids)}. "
            "Under vmap over examples, add the batch axis with input_ids[None]."
        )
    check_index_tensor("input_ids", input_ids)
    b, s = input_ids.shape
    if s == 0:
        raise ValueError(f"input_ids must hold at least one token per sequence; got shape {(b, s)}")
    if max_positions is not None:
        check_positions(s, past_len, max_positions, positions_name)
    check_range("input_ids", input_ids, vocab_size, "the vocabulary size", validate=validate)
    return b, s


def check_positions(seq_len: int, past_len: int, max_positions: int, positions_name: str) -> None:
    """``past_len + seq_len`` must not exceed the ``max_positions`` learned positions (a shape
    check: it runs under ``torch.compile`` too)."""
    if past_len + seq_len > max_positions:
        what = "past + sequence length" if past_len else "sequence length"
        raise ValueError(
            f"{what} {past_len + seq_len} exceeds {positions_name} ({max_positions}), the "
            "number of learned positions"
        )


def check_shape(
    name: str, t: Any, allowed: Sequence[tuple[int, ...]], described: Sequence[str]
) -> None:
    """``t`` must be a tensor of one of the ``allowed`` shapes.

    ``described[i]`` names the axes of ``allowed[i]`` (``"(batch, seq)"``), for the
    message ``attention_mask must have shape (batch, seq) = (2, 5), got (5,)``.
    """
    if isinstance(t, Tensor) and tuple(t.shape) in [tuple(a) for a in allowed]:
        return
    options = " or ".join(f"{d} = {tuple(a)}" for d, a in zip(described, allowed))
    raise ValueError(f"{name} must have shape {options}, got {_shape(t)}")


def check_per_token(
    name: str,
    t: Any,
    batch: int,
    length: int,
    *,
    length_name: str = "seq",
    broadcast_batch: bool = False,
    upper: int | None = None,
    what: str = "",
    validate: bool = True,
) -> None:
    """A per-token input (mask, token types, positions): None, or shape ``(batch, length)``
    (also ``(1, length)`` with ``broadcast_batch``: one row for the whole batch).

    With ``upper`` it holds ids: an int64/int32 tensor with values in ``[0, upper)``
    (``what`` names ``upper`` in the message; the value check follows ``validate``).
    """
    if t is None:
        return
    allowed, described = [(batch, length)], [f"(batch, {length_name})"]
    if broadcast_batch and batch != 1:
        allowed.append((1, length))
        described.append(f"(1, {length_name})")
    check_shape(name, t, allowed, described)
    if upper is not None:
        check_index_tensor(name, t)
        check_range(name, t, upper, what, validate=validate)


def check_range(
    name: str, t: Tensor, upper: int, what: str, *, validate: bool = True, lower: int = 0
) -> None:
    """Values of ``t`` must lie in ``[lower, upper)`` (only when ``validate`` and readable).

    ``what`` names ``upper`` in the message (``"the vocabulary size"``, ``"type_vocab_size"``).
    """
    if not validate or t.numel() == 0 or not values_readable(t):
        return
    lo, hi = torch.stack([t.min(), t.max()]).tolist()
    if lo < lower or hi >= upper:
        raise ValueError(
            f"{name} must lie in [{lower}, {upper}) ({what}), got values in [{lo}, {hi}]"
        )


def check_head_mask(
    head_mask: Any, num_layers: int, num_heads: int, *, pruned: bool = False
) -> None:
    """``head_mask`` (None, ``(num_heads,)`` or ``(num_layers, num_heads)``; 1 keeps a head).

    ``num_heads`` counts the unpruned model's heads: a pruned model (``pruned``) keeps the
    shape, and its pruned heads' entries are ignored.
    """
    if head_mask is None:
        return
    try:
        check_shape(
            "head_mask",
            head_mask,
            [(num_heads,), (num_layers, num_heads)],
            ["(num_heads,)", "(num_layers, num_heads)"],
        )
    except ValueError as error:
        if not pruned:
            raise
        raise ValueError(
            f"{error}: num_heads counts the unpruned model's {num_heads} heads per layer "
            "(pruned heads are dropped from it)"
        ) from None


PER_TOKEN_OPTIONS = ("attention_mask", "token_type_ids", "position_ids")
"""The options with a sequence axis, which multiple-choice inputs carry per choice."""


def flatten_choices(
    input_ids: Any, options: dict[str, Any], per_token: tuple[str, ...] = PER_TOKEN_OPTIONS
) -> tuple[Tensor, dict[str, Any]]:
    """Multiple-choice inputs to the encoder's: ``input_ids`` (b, num_choices, s) and the
    ``per_token`` options given, each checked to be (b, num_choices, s), -> (b * num_choices,
    s); the other options are passed on unchanged (a new dict).

    Raises:
        ValueError: ``input_ids`` or a per-token option of another shape.
    """
    if not isinstance(input_ids, Tensor) or input_ids.dim() != 3:
        got = tuple(input_ids.shape) if isinstance(input_ids, Tensor) else type(input_ids)
        raise ValueError(f"input_ids must have shape (batch, num_choices, seq), got {got}")
    shape = tuple(input_ids.shape)
    flat = dict(options)
    for name in per_token:
        if options.get(name) is not None:
            check_shape(name, options[name], [shape], ["(batch, num_choices, seq)"])
            flat[name] = options[name].flatten(0, 1)
    return input_ids.flatten(0, 1), flat


def check_past(past: Any, num_layers: int, cache_position: Tensor | None) -> None:
    """``past`` is None or one cache tensor per layer; ``cache_position`` needs it."""
    if cache_position is not None and past is None:
        raise ValueError("cache_position needs past: one static cache tensor per layer")
    if past is not None and (not isinstance(past, (tuple, list)) or len(past) != num_layers):
        got = f"{len(past)}" if isinstance(past, (tuple, list)) else type(past).__name__
        raise ValueError(f"past must hold one tensor per layer ({num_layers}), got {got}")
