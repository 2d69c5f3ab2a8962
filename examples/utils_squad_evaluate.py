"""SQuAD evaluation: the logic of the official v1.1 and v2.0 scripts, written anew.

An answer is normalised (lower case, punctuation and the articles a/an/the removed,
whitespace collapsed); *exact match* is 1 when a prediction's normal form equals one of
the gold answers'; *F1* is the token-overlap F1 of the normal forms, the best over the
gold answers. An unanswerable question (v2.0: no gold answers) has the single gold answer
``""``: predicting ``""`` scores 1 on both, anything else 0. With ``na_probs`` (the
model's no-answer scores), a prediction whose score is above ``threshold`` counts as
``""``. Scores are percentages over all questions, with ``HasAns_*`` / ``NoAns_*``
subsets, and for v2.0 the best threshold found on the data (``best_exact``,
``best_f1`` and their thresholds), as the official script reports them.

>>> normalize_answer("The  Cat's hat!")
'cats hat'
>>> round(compute_f1("the big red dog", "a red dog"), 4)  # common 2, precision 1, recall 2/3
0.8
"""

from __future__ import annotations

import collections
import re
import string
from collections.abc import Mapping
from typing import Any

__all__ = [
    "normalize_answer",
    "get_tokens",
    "compute_exact",
    "compute_f1",
    "evaluate",
]

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCT = frozenset(string.punctuation)


def normalize_answer(s: str) -> str:
    """Lower case; drop punctuation (ASCII), then the articles a/an/the; collapse spaces."""
    s = "".join(ch for ch in s.lower() if ch not in _PUNCT)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def get_tokens(s: str) -> list[str]:
    """Tokens of the normal form (``[]`` for an empty answer)."""
    return normalize_answer(s).split() if s else []


def compute_exact(gold: str, pred: str) -> int:
    """1 when the normal forms are equal, else 0."""
    return int(normalize_answer(gold) == normalize_answer(pred))


def compute_f1(gold: str, pred: str) -> float:
    """Token-overlap F1 of the normal forms; when either is empty, 1 if both are, else 0."""
    gold_toks, pred_toks = get_tokens(gold), get_tokens(pred)
    if not gold_toks or not pred_toks:
        return float(gold_toks == pred_toks)
    common = collections.Counter(gold_toks) & collections.Counter(pred_toks)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_toks), same / len(gold_toks)
    return 2 * precision * recall / (precision + recall)


def _questions(dataset: list[dict[str, Any]]) -> dict[str, list[str]]:
    """``{question id: gold answers}``; an unanswerable question gets ``[""]``."""
    golds: dict[str, list[str]] = {}
    for article in dataset:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                answers = [a["text"] for a in qa.get("answers", []) if normalize_answer(a["text"])]
                golds[qa["id"]] = answers or [""]
    return golds


def _mean(values: list[float]) -> float:
    return 100.0 * sum(values) / len(values) if values else 0.0


def _best_threshold(
    preds: Mapping[str, str],
    scores: dict[str, float],
    na_probs: Mapping[str, float],
    has_ans: dict[str, bool],
) -> tuple[float, float]:
    """The no-answer threshold that maximises the total score, and that score (percent).

    Questions are taken in order of rising ``na_probs``; below the threshold a question
    keeps its prediction's score, above it scores 1 when it has no answer.
    """
    score = float(sum(1 for q in scores if not has_ans[q]))  # every question answered ""
    best, best_thresh = score, 0.0
    for qid in sorted(scores, key=lambda q: na_probs[q]):
        if has_ans[qid]:
            score += scores[qid]
        elif preds[qid]:  # (an empty prediction scores 1 on either side)
            score -= 1
        if score > best:
            best, best_thresh = score, na_probs[qid]
    return 100.0 * best / len(scores), best_thresh


def evaluate(
    dataset: list[dict[str, Any]],
    preds: Mapping[str, str],
    na_probs: Mapping[str, float] | None = None,
    *,
    threshold: float = 1.0,
) -> dict[str, float]:
    """Scores of ``preds`` (``{question id: answer text}``) on a SQuAD ``dataset``
    (the JSON file's ``"data"`` list).

    Returns ``exact``, ``f1``, ``total`` and, when the subsets are non-empty, ``HasAns_*``
    and ``NoAns_*``; with ``na_probs``, also ``best_exact``/``best_f1`` and their thresholds.

    Raises:
        KeyError: a question of the dataset has no prediction.
    """
    golds = _questions(dataset)
    missing = [q for q in golds if q not in preds]
    if missing:
        raise KeyError(f"no prediction for {len(missing)} questions, e.g. {missing[:3]}")
    exact = {q: max(compute_exact(g, preds[q]) for g in gs) for q, gs in golds.items()}
    f1 = {q: max(compute_f1(g, preds[q]) for g in gs) for q, gs in golds.items()}
    has_ans = {q: gs != [""] for q, gs in golds.items()}
    if na_probs is not None:
        for q in golds:
            if na_probs[q] > threshold:  # counted as predicting "no answer"
                exact[q] = f1[q] = float(not has_ans[q])
    out: dict[str, float] = {
        "exact": _mean(list(exact.values())),
        "f1": _mean(list(f1.values())),
        "total": len(golds),
    }
    for name, keep in (("HasAns", True), ("NoAns", False)):
        ids = [q for q in golds if has_ans[q] == keep]
        if ids:
            out[f"{name}_exact"] = _mean([exact[q] for q in ids])
            out[f"{name}_f1"] = _mean([f1[q] for q in ids])
            out[f"{name}_total"] = len(ids)
    if na_probs is not None:
        raw_exact = {q: max(compute_exact(g, preds[q]) for g in gs) for q, gs in golds.items()}
        raw_f1 = {q: max(compute_f1(g, preds[q]) for g in gs) for q, gs in golds.items()}
        out["best_exact"], out["best_exact_thresh"] = _best_threshold(
            preds, raw_exact, na_probs, has_ans
        )
        out["best_f1"], out["best_f1_thresh"] = _best_threshold(preds, raw_f1, na_probs, has_ans)
    return out
