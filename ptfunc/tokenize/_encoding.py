"""Truncation, padding and tensor conversion for batch encoding (pure functions on id lists).

The semantics follow today's Hugging Face ``tokenizer(texts, pairs, padding=...,
truncation=..., max_length=...)`` as implemented by the Rust ``tokenizers`` backend
that ``transformers.BertTokenizer`` uses; where that backend silently ignores an
impossible request, these functions raise a ``ValueError`` instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch

__all__ = [
    "PaddingStrategy",
    "TruncationStrategy",
    "check_batch_arguments",
    "pad_batch",
    "padding_strategy",
    "pad_rows",
    "to_tensor",
    "truncate",
    "truncation_strategy",
]

PaddingStrategy = Literal["do_not_pad", "longest", "max_length"]
TruncationStrategy = Literal["do_not_truncate", "longest_first", "only_first", "only_second"]

_PADDING = {
    False: "do_not_pad",
    "do_not_pad": "do_not_pad",
    True: "longest",
    "longest": "longest",
    "max_length": "max_length",
}
_TRUNCATION = {
    False: "do_not_truncate",
    "do_not_truncate": "do_not_truncate",
    True: "longest_first",
    "longest_first": "longest_first",
    "only_first": "only_first",
    "only_second": "only_second",
}


def padding_strategy(padding: bool | str) -> PaddingStrategy:
    """Normalise a ``padding`` argument (False/True/'longest'/'max_length'/'do_not_pad')."""
    if isinstance(padding, (bool, str)) and padding in _PADDING:
        return _PADDING[padding]  # type: ignore[return-value]
    raise ValueError(
        f"padding must be False, True, 'longest', 'max_length' or 'do_not_pad'; got {padding!r}"
    )


def truncation_strategy(
    truncation: bool | str | None, max_length: int | None
) -> TruncationStrategy:
    """Normalise a ``truncation`` argument.

    ``None`` (the default) means 'longest_first' when ``max_length`` is given and no
    truncation otherwise, as in Hugging Face ``transformers`` (callers that pad pass
    False instead of None: with padding, ``max_length`` alone does not truncate).
    """
    if truncation is None:
        return "longest_first" if max_length is not None else "do_not_truncate"
    if isinstance(truncation, (bool, str)) and truncation in _TRUNCATION:
        return _TRUNCATION[truncation]  # type: ignore[return-value]
    raise ValueError(
        "truncation must be None, False, True, 'longest_first', 'only_first', 'only_second' "
        f"or 'do_not_truncate'; got {truncation!r}"
    )


def truncate(
    ids_a: list[int],
    ids_b: list[int] | None,
    budget: int,
    strategy: TruncationStrategy,
) -> tuple[list[int], list[int] | None]:
    """Cut one sequence or a pair so that together they hold at most ``budget`` ids.

    Args:
        ids_a: ids of the first sequence, without special tokens.
        ids_b: ids of the second sequence, or None.
        budget: ids left for the sequences once the special tokens are counted.
        strategy: 'longest_first' shares the cut as the Rust ``tokenizers`` backend
            does (the shorter sequence keeps what it can, the rest is split evenly,
            the odd id going to the second sequence); 'only_first' / 'only_second'
            cut one side only. A budget of 0 empties both sequences, as in the
            Rust backend.

    Returns:
        ``(ids_a, ids_b)`` truncated from the right.

    Raises:
        ValueError: the budget is negative, the side to cut is too short to reach the
            budget, or 'only_second' is asked for a single sequence.
    """
    if budget < 0:
        raise ValueError(
            f"max_length is too small: it leaves {budget} ids for the text once the special "
            "tokens are added"
        )
    len_b = 0 if ids_b is None else len(ids_b)
    to_remove = len(ids_a) + len_b - budget
    if strategy == "do_not_truncate" or to_remove <= 0:
        return ids_a, ids_b
    if budget == 0:  # the Rust backend empties both sequences, whatever the strategy
        return [], None if ids_b is None else []
    if strategy == "longest_first":
        if ids_b is None:
            return ids_a[:budget], None
        n_a, n_b = _longest_first_lengths(len(ids_a), len_b, budget)
        return ids_a[:n_a], ids_b[:n_b]
    if strategy == "only_second" and ids_b is None:
        raise ValueError("truncation='only_second' needs a second sequence (text_pair)")
    target = ids_a if strategy == "only_first" else ids_b
    assert target is not None
    if len(target) <= to_remove:
        which = "first" if strategy == "only_first" else "second"
        raise ValueError(
            f"truncation={strategy!r}: the {which} sequence has {len(target)} ids, too few to "
            f"remove the {to_remove} needed to fit max_length; use 'longest_first'"
        )
    cut = target[: len(target) - to_remove]
    return (cut, ids_b) if strategy == "only_first" else (ids_a, cut)


def _longest_first_lengths(len_a: int, len_b: int, budget: int) -> tuple[int, int]:
    """Kept lengths of a pair under 'longest_first' (the Rust ``tokenizers`` rule)."""
    short, long_ = sorted((len_a, len_b))
    long_ = short if short > budget else max(short, budget - short)
    if short + long_ > budget:
        short = budget // 2
        long_ = short + budget % 2
    return (long_, short) if len_a > len_b else (short, long_)


def pad_rows(
    rows: list[list[int]],
    length: int,
    value: int,
    side: Literal["right", "left"],
) -> list[list[int]]:
    """Pad every row to ``length`` with ``value`` on ``side``; longer rows are left as they are."""
    if side == "right":
        return [row + [value] * (length - len(row)) for row in rows]
    return [[value] * (length - len(row)) + row for row in rows]


def pad_batch(
    batch: dict[str, list[list[int]]],
    length: int | None,
    pad_id: int | None,
    side: Literal["right", "left"],
) -> None:
    """Pad every field of a batch in place: ids with ``pad_id``, token types with 0,
    attention with 0, special-token masks with 1.

    Args:
        batch: field name -> rows; ``input_ids`` must be present.
        length: target length; None pads to the longest row.
        pad_id: id of the pad token (needed only when some row is short).
        side: 'right' or 'left'.

    Raises:
        ValueError: a row needs padding and there is no pad token.
    """
    rows = batch["input_ids"]
    if length is None:
        length = max((len(row) for row in rows), default=0)
    if all(len(row) >= length for row in rows):
        return
    if pad_id is None:
        raise ValueError(
            "padding needs a pad token, but pad_token is not set; set tokenizer.pad_token "
            "or call add_special_tokens({'pad_token': ...})"
        )
    values = {
        "input_ids": pad_id,
        "token_type_ids": 0,
        "attention_mask": 0,
        "special_tokens_mask": 1,
    }
    for key in batch:
        batch[key] = pad_rows(batch[key], length, values[key], side)


def check_batch_arguments(texts: Any, text_pairs: Any, return_tensors: Any, side: Any) -> None:
    """Raise a clear ``TypeError``/``ValueError`` for malformed batch-encoding arguments."""
    for name, value in (("texts", texts), ("text_pairs", text_pairs)):
        if isinstance(value, (bytes, bytearray, memoryview)):
            raise TypeError(
                f"{name} must be a list of str; got {type(value).__name__}: decode it first, "
                f'e.g. [{name}.decode("utf-8", errors="replace")]'
            )
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise TypeError(
            f"texts must be a list of str; got {type(texts).__name__} (wrap a single text "
            "in a list, or use encode_plus)"
        )
    if text_pairs is not None:
        if isinstance(text_pairs, str) or not isinstance(text_pairs, Sequence):
            raise TypeError(f"text_pairs must be a list of str; got {type(text_pairs).__name__}")
        if len(text_pairs) != len(texts):
            raise ValueError(f"text_pairs has {len(text_pairs)} entries for {len(texts)} texts")
    if return_tensors not in (None, "pt"):
        raise ValueError(f"return_tensors must be None or 'pt'; got {return_tensors!r}")
    if side not in ("right", "left"):
        raise ValueError(f"padding_side must be 'right' or 'left'; got {side!r}")


def to_tensor(rows: list[list[int]], name: str) -> torch.Tensor:
    """Stack equal-length rows into an int64 tensor of shape (batch, length).

    Raises:
        ValueError: the rows differ in length (pass ``padding=True``).
    """
    lengths = sorted({len(row) for row in rows})
    if len(lengths) > 1:
        raise ValueError(
            f"return_tensors='pt' needs sequences of equal length, but {name} has lengths "
            f"{lengths[0]}..{lengths[-1]}; pass padding=True (or 'max_length') to pad them"
        )
    if not rows:
        return torch.zeros((0, 0), dtype=torch.int64)
    return torch.tensor(rows, dtype=torch.int64)
