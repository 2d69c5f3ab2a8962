"""GLUE-format data for ``run_glue.py``: TSV readers, features and the metrics.

Readers (``--task``): ``mrpc`` (paraphrase, labels 0/1), ``sst-2`` (sentiment, 0/1),
``cola`` (acceptability, 0/1) and ``sts-b`` (similarity, a float score in [0, 5],
regression). Each reads ``train.tsv`` / ``dev.tsv`` of a GLUE task folder.

Metrics are written out here (no scikit-learn / SciPy): accuracy, binary F1,
Matthews correlation, Pearson and Spearman (ranks with ties averaged) correlations.

>>> round(f1_score([1, 0, 1, 1], [1, 1, 0, 1]), 4)  # tp=2, fp=1, fn=1
0.6667
>>> spearman([1.0, 2.0, 3.0], [10.0, 20.0, 15.0])
0.5
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "InputExample",
    "Layout",
    "LAYOUTS",
    "layout",
    "takes_token_types",
    "TASKS",
    "read_examples",
    "Features",
    "convert_examples_to_features",
    "accuracy",
    "f1_score",
    "matthews_corrcoef",
    "pearson",
    "spearman",
    "compute_metrics",
]


@dataclass(frozen=True)
class InputExample:
    """One sentence (``text_b`` None) or sentence pair, with its label (class or score)."""

    guid: str
    text_a: str
    text_b: str | None
    label: str


@dataclass(frozen=True)
class Layout:
    """How a model type lays out its inputs (transformers' old ``run_glue.py`` flags).

    ``sep_token_extra``: a second separator between two texts (RoBERTa's
    ``<s> A </s></s> B </s>``; ``<s> A </s>`` alone); ``cls_at_end`` / ``pad_on_left`` and
    the segment ids of the classification token and of padding: XLNet's
    ``A <sep> B <sep> <cls>``, padded on the left; ``token_types``: whether the model reads
    segment ids (DistilBERT has none; RoBERTa's single token type and XLM's languages take
    none either: the features hold zeros); a DeBERTa-v2 config with ``type_vocab_size`` 0
    also ignores them (see :func:`takes_token_types`)."""

    sep_token_extra: bool = False
    cls_at_end: bool = False
    pad_on_left: bool = False
    cls_token_segment_id: int = 0
    pad_token_segment_id: int = 0
    token_types: bool = True


LAYOUTS: dict[str, Layout] = {
    "bert": Layout(),
    "xlnet": Layout(cls_at_end=True, pad_on_left=True, cls_token_segment_id=2,
                    pad_token_segment_id=4),
    "xlm": Layout(token_types=False),
    "roberta": Layout(sep_token_extra=True, token_types=False),
    "distilbert": Layout(token_types=False),
    "electra": Layout(),
    "albert": Layout(),
    "deberta-v2": Layout(),
}  # fmt: skip
"""``{--model-type: its input layout}``."""


def layout(model_type: str) -> Layout:
    """The :class:`Layout` of ``model_type`` (BERT's for a type not listed)."""
    return LAYOUTS.get(model_type, Layout())


def takes_token_types(model_type: str, config: Any) -> bool:
    """Whether to pass ``token_type_ids`` to a ``model_type`` model of ``config``: not for
    the types whose :class:`Layout` has none, nor for a config with ``type_vocab_size`` 0
    (DeBERTa-v2's default: no token-type embedding)."""
    return layout(model_type).token_types and getattr(config, "type_vocab_size", 1) != 0


@dataclass(frozen=True)
class _Task:
    labels: tuple[str, ...] | None  # None: regression
    header: bool
    a: int  # column of text_a
    b: int | None  # column of text_b
    label: int  # column of the label (-1: last)


TASKS: dict[str, _Task] = {
    "mrpc": _Task(("0", "1"), True, 3, 4, 0),
    "sst-2": _Task(("0", "1"), True, 0, None, 1),
    "cola": _Task(("0", "1"), False, 3, None, 1),
    "sts-b": _Task(None, True, 7, 8, -1),
}
"""``{task: how its TSV is laid out}``; ``labels`` None means regression."""


def _task(name: str) -> _Task:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; expected one of {', '.join(TASKS)}")
    return TASKS[name]


def num_labels(task: str) -> int:
    """Classes of ``task`` (1 for the regression task STS-B)."""
    labels = _task(task).labels
    return 1 if labels is None else len(labels)


def read_examples(data_dir: Path, task: str, split: str) -> list[InputExample]:
    """Examples of ``data_dir/<split>.tsv`` (``split``: ``train`` or ``dev``).

    Raises:
        FileNotFoundError: no such file. ValueError: a row with too few columns.
    """
    spec = _task(task)
    path = Path(data_dir) / f"{split}.tsv"
    if not path.is_file():
        raise FileNotFoundError(f"expected the {task} {split} split at {path}")
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quotechar=None))
    if spec.header:
        rows = rows[1:]
    need = max(spec.a, spec.b or 0, spec.label) + 1
    examples = []
    for i, row in enumerate(rows):
        if not row:
            continue
        if len(row) < need:
            raise ValueError(f"{path}:{i + 1 + spec.header}: expected {need} columns, got {row}")
        text_b = row[spec.b] if spec.b is not None else None
        examples.append(InputExample(f"{split}-{i}", row[spec.a], text_b, row[spec.label]))
    return examples


@dataclass(frozen=True)
class Features:
    """Padded model inputs of ``n`` examples, all int64 (n, max_seq_length) but ``labels``:
    int64 (n,) class ids, or float32 (n,) scores for regression."""

    input_ids: Tensor
    attention_mask: Tensor
    token_type_ids: Tensor
    labels: Tensor


def _truncate_pair(a: list[str], b: list[str], max_length: int) -> None:
    """Drop tokens from the end of the longer sequence until both fit (in place)."""
    while len(a) + len(b) > max_length:
        (a if len(a) > len(b) else b).pop()


def convert_examples_to_features(
    examples: Sequence[InputExample],
    tokenizer: Any,
    task: str,
    max_seq_length: int,
    *,
    cls_at_end: bool = False,
    pad_on_left: bool = False,
    cls_token_segment_id: int = 0,
    pad_token_segment_id: int = 0,
    sep_token_extra: bool = False,
    token_types: bool = True,
) -> Features:
    """Tokenise and pad: ``[CLS] a [SEP] (b [SEP])`` for BERT / XLM, and with
    ``cls_at_end=True, pad_on_left=True`` (segment ids 2 for ``<cls>``, 4 for padding)
    ``a <sep> (b <sep>) <cls>`` for XLNet, as the seed's examples build them;
    ``sep_token_extra=True``: RoBERTa's ``<s> a </s></s> b </s>`` (one more ``</s>`` between
    the texts; a single text stays ``<s> a </s>``, the tokenizer's template);
    ``token_types=False``: all segment ids 0."""
    spec = _task(task)
    label_map = None if spec.labels is None else {lab: i for i, lab in enumerate(spec.labels)}
    cls, sep = tokenizer.cls_token, tokenizer.sep_token
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    rows: list[tuple[list[int], list[int], list[int]]] = []
    for ex in examples:
        a = tokenizer.tokenize(ex.text_a)
        b = tokenizer.tokenize(ex.text_b) if ex.text_b is not None else None
        extra = int(sep_token_extra and b is not None)  # RoBERTa's single text: <s> a </s>
        if b is not None:
            _truncate_pair(a, b, max_seq_length - 3 - extra)
        else:
            a = a[: max_seq_length - 2]
        tokens = a + [sep] * (1 + extra)
        segments = [0] * len(tokens)
        if b is not None:
            tokens += b + [sep]
            segments += [1] * (len(b) + 1)
        if cls_at_end:
            tokens, segments = tokens + [cls], segments + [cls_token_segment_id]
        else:
            tokens, segments = [cls] + tokens, [cls_token_segment_id] + segments
        ids = tokenizer.convert_tokens_to_ids(tokens)
        pad = max_seq_length - len(ids)
        mask = [1] * len(ids)
        if pad_on_left:
            ids, mask = [pad_id] * pad + ids, [0] * pad + mask
            segments = [pad_token_segment_id] * pad + segments
        else:
            ids, mask = ids + [pad_id] * pad, mask + [0] * pad
            segments = segments + [pad_token_segment_id] * pad
        if not token_types:
            segments = [0] * len(segments)
        rows.append((ids, mask, segments))
    if label_map is None:
        labels = torch.tensor([float(ex.label) for ex in examples], dtype=torch.float32)
    else:
        unknown = {ex.label for ex in examples} - set(label_map)
        if unknown:
            raise ValueError(f"{task}: labels {sorted(unknown)} not in {list(label_map)}")
        labels = torch.tensor([label_map[ex.label] for ex in examples], dtype=torch.int64)
    ids, mask, segments = (torch.tensor([r[i] for r in rows], dtype=torch.int64) for i in range(3))
    return Features(ids, mask, segments, labels)


# -- metrics ---------------------------------------------------------------------------------


def accuracy(preds: Sequence[int], labels: Sequence[int]) -> float:
    """Fraction of ``preds`` equal to ``labels``."""
    if len(preds) != len(labels) or not preds:
        raise ValueError(f"need equal, non-empty lists, got {len(preds)} and {len(labels)}")
    return sum(int(p == y) for p, y in zip(preds, labels)) / len(preds)


def _confusion(preds: Sequence[int], labels: Sequence[int]) -> tuple[int, int, int, int]:
    """(tp, fp, fn, tn) with 1 the positive class."""
    tp = sum(1 for p, y in zip(preds, labels) if p == 1 and y == 1)
    fp = sum(1 for p, y in zip(preds, labels) if p == 1 and y != 1)
    fn = sum(1 for p, y in zip(preds, labels) if p != 1 and y == 1)
    return tp, fp, fn, len(preds) - tp - fp - fn


def f1_score(labels: Sequence[int], preds: Sequence[int]) -> float:
    """Binary F1 of the positive class 1: ``2 tp / (2 tp + fp + fn)`` (0 when undefined)."""
    tp, fp, fn, _ = _confusion(preds, labels)
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def matthews_corrcoef(labels: Sequence[int], preds: Sequence[int]) -> float:
    """``(tp tn - fp fn) / sqrt((tp+fp)(tp+fn)(tn+fp)(tn+fn))`` (0 when a factor is 0)."""
    tp, fp, fn, tn = _confusion(preds, labels)
    denom = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return (tp * tn - fp * fn) / denom if denom else 0.0


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson correlation of two equal-length sequences (0 when one is constant)."""
    if len(x) != len(y) or len(x) < 2:
        raise ValueError(f"need two equal sequences of 2+ values, got {len(x)} and {len(y)}")
    mx, my = sum(x) / len(x), sum(y) / len(y)
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    return sxy / math.sqrt(sxx * syy) if sxx and syy else 0.0


def _ranks(x: Sequence[float]) -> list[float]:
    """1-based ranks; tied values share the mean of their ranks."""
    order = sorted(range(len(x)), key=lambda i: x[i])
    ranks = [0.0] * len(x)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and x[order[j + 1]] == x[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation: Pearson of the (tie-averaged) ranks."""
    return pearson(_ranks(x), _ranks(y))


def compute_metrics(task: str, preds: Sequence[Any], labels: Sequence[Any]) -> dict[str, float]:
    """The seed's metrics per task: MRPC accuracy, F1 and their mean; CoLA Matthews;
    SST-2 accuracy; STS-B Pearson, Spearman and their mean."""
    if task == "mrpc":
        acc, f1 = accuracy(preds, labels), f1_score(labels, preds)
        return {"acc": acc, "f1": f1, "acc_and_f1": (acc + f1) / 2}
    if task == "cola":
        return {"mcc": matthews_corrcoef(labels, preds)}
    if task == "sst-2":
        return {"acc": accuracy(preds, labels)}
    if task == "sts-b":
        p, s = pearson(preds, labels), spearman(preds, labels)
        return {"pearson": p, "spearmanr": s, "corr": (p + s) / 2}
    raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
