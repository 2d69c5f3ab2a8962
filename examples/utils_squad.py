"""SQuAD v1.1 / v2.0 data for ``run_squad.py``: examples, doc-stride features, and the
n-best post-processing that turns start/end logits back into answer text.

1. :func:`read_squad_examples`: a paragraph is split on whitespace into words; each
   character maps to its word, so an answer's character offset gives its first and last
   word. Training answers whose words do not contain the answer text are skipped.
2. :func:`convert_examples_to_features`: words are WordPiece-tokenised (keeping
   token -> word maps); a document longer than the room left by the question is cut into
   windows that start ``doc_stride`` tokens apart; each window is
   ``[CLS] question [SEP] window [SEP]`` padded to ``max_seq_length``. A token seen in
   several windows is *max context* in the window where it has the most context on its
   shorter side. Training targets are the answer's token span, or ``0, 0`` (``[CLS]``)
   when the window does not hold it or the question has no answer.
3. :func:`postprocess`: for each example, the ``n_best_size`` best starts and ends of each
   of its windows form candidate spans (inside the document, max context, at most
   ``max_answer_length`` tokens); the best become text again through the original words
   (:func:`get_final_text` maps the normalised WordPiece text back onto the original
   characters). v2.0 predicts ``""`` when the best ``[CLS]`` score beats the best span by
   more than ``null_score_diff_threshold``.
"""

from __future__ import annotations

import collections
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ptfunc.tokenize.bert import BasicTokenizer

__all__ = [
    "SquadExample",
    "read_squad_examples",
    "Feature",
    "convert_examples_to_features",
    "stack_features",
    "postprocess",
    "get_final_text",
]


@dataclass
class SquadExample:
    """A question on a paragraph; positions are word indices (-1 when there is none)."""

    qas_id: str
    question_text: str
    doc_tokens: list[str]
    orig_answer_text: str = ""
    start_position: int = -1
    end_position: int = -1
    is_impossible: bool = False


def _words_with_char_map(text: str) -> tuple[list[str], list[int]]:
    """Whitespace words of ``text`` and, for each character, the index of its word."""
    words: list[str] = []
    char_to_word: list[int] = []
    previous_space = True
    for ch in text:
        if ch.isspace() or ord(ch) == 0x202F:
            previous_space = True
        else:
            if previous_space:
                words.append(ch)
            else:
                words[-1] += ch
            previous_space = False
        char_to_word.append(len(words) - 1)
    return words, char_to_word


def read_squad_examples(
    path: str | Path, *, is_training: bool, version_2_with_negative: bool
) -> list[SquadExample]:
    """Examples of a SQuAD JSON file (``{"data": [{"paragraphs": [{"context", "qas"}]}]}``).

    Raises:
        ValueError: a training question (answerable) without exactly one answer.
    """
    data = json.loads(Path(path).read_text(encoding="utf-8"))["data"]
    examples = []
    for article in data:
        for paragraph in article["paragraphs"]:
            words, char_to_word = _words_with_char_map(paragraph["context"])
            for qa in paragraph["qas"]:
                ex = SquadExample(qa["id"], qa["question"], words)
                if is_training:
                    ex.is_impossible = version_2_with_negative and bool(qa.get("is_impossible"))
                    if not ex.is_impossible:
                        if len(qa["answers"]) != 1:
                            raise ValueError(f"{qa['id']}: training needs exactly one answer")
                        answer = qa["answers"][0]
                        start = answer["answer_start"]
                        ex.orig_answer_text = answer["text"]
                        ex.start_position = char_to_word[start]
                        ex.end_position = char_to_word[start + len(answer["text"]) - 1]
                        found = " ".join(words[ex.start_position : ex.end_position + 1])
                        if " ".join(answer["text"].split()) not in found:
                            print(f"skipping {qa['id']}: {found!r} lacks {answer['text']!r}")
                            continue
                examples.append(ex)
    return examples


@dataclass
class Feature:
    """One window of one example: token lists of length ``max_seq_length``."""

    example_index: int
    tokens: list[str]
    input_ids: list[int]
    attention_mask: list[int]
    token_type_ids: list[int]
    token_to_orig_map: dict[int, int] = field(default_factory=dict)  # token -> word
    token_is_max_context: dict[int, bool] = field(default_factory=dict)
    start_position: int = 0
    end_position: int = 0
    doc_start: int = 0  # the window's first token in the document's token list


def _improve_answer_span(
    doc_tokens: list[str], start: int, end: int, tokenizer: Any, answer: str
) -> tuple[int, int]:
    """The tightest token span inside ``[start, end]`` whose text is the tokenised answer
    (an answer "1895" inside the word "(1895)" becomes its inner token)."""
    target = " ".join(tokenizer.tokenize(answer))
    for s in range(start, end + 1):
        for e in range(end, s - 1, -1):
            if " ".join(doc_tokens[s : e + 1]) == target:
                return s, e
    return start, end


def _is_max_context(spans: list[tuple[int, int]], current: int, position: int) -> bool:
    """Whether window ``current`` gives token ``position`` the most context: the score of a
    window is min(left, right context) + 0.01 * window length; the first best wins."""
    best_score, best = -1.0, -1
    for i, (start, length) in enumerate(spans):
        end = start + length - 1
        if not start <= position <= end:
            continue
        score = min(position - start, end - position) + 0.01 * length
        if score > best_score:
            best_score, best = score, i
    return best == current


def convert_examples_to_features(
    examples: list[SquadExample],
    tokenizer: Any,
    *,
    max_seq_length: int,
    doc_stride: int,
    max_query_length: int,
    is_training: bool,
    sep_token_extra: bool = False,
    token_types: bool = True,
) -> list[Feature]:
    """Windows of every example (see the module docstring), for BERT's input layout;
    ``sep_token_extra=True``: RoBERTa's ``<s> question </s></s> window </s>``;
    ``token_types=False``: segment ids all 0."""
    cls, sep = tokenizer.cls_token, tokenizer.sep_token
    extra = int(sep_token_extra)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    features = []
    for ex_index, ex in enumerate(examples):
        query = tokenizer.tokenize(ex.question_text)[:max_query_length]
        tok_to_word: list[int] = []
        word_to_tok: list[int] = []
        doc: list[str] = []
        for i, word in enumerate(ex.doc_tokens):
            word_to_tok.append(len(doc))
            for piece in tokenizer.tokenize(word):
                tok_to_word.append(i)
                doc.append(piece)
        tok_start = tok_end = -1
        if is_training and not ex.is_impossible:
            tok_start = word_to_tok[ex.start_position]
            last = ex.end_position + 1
            tok_end = (word_to_tok[last] if last < len(ex.doc_tokens) else len(doc)) - 1
            tok_start, tok_end = _improve_answer_span(
                doc, tok_start, tok_end, tokenizer, ex.orig_answer_text
            )
        room = max_seq_length - len(query) - 3 - extra
        if room <= 0:
            raise ValueError(
                f"max_seq_length {max_seq_length} leaves no room for the document after a "
                f"question of {len(query)} tokens; raise it or lower max_query_length"
            )
        spans: list[tuple[int, int]] = []
        start = 0
        while start < len(doc):
            length = min(room, len(doc) - start)
            spans.append((start, length))
            if start + length == len(doc):
                break
            start += min(length, doc_stride)
        for span_index, (start, length) in enumerate(spans):
            tokens = [cls] + query + [sep] * (1 + extra)
            segments = [0] * len(tokens)
            f = Feature(ex_index, [], [], [], [], doc_start=start)
            for i in range(length):
                f.token_to_orig_map[len(tokens)] = tok_to_word[start + i]
                f.token_is_max_context[len(tokens)] = _is_max_context(spans, span_index, start + i)
                tokens.append(doc[start + i])
            tokens.append(sep)
            segments += [int(token_types)] * (length + 1)
            ids = tokenizer.convert_tokens_to_ids(tokens)
            pad = max_seq_length - len(ids)
            f.tokens = tokens
            f.input_ids = ids + [pad_id] * pad
            f.attention_mask = [1] * len(ids) + [0] * pad
            f.token_type_ids = segments + [0] * pad
            inside = start <= tok_start and tok_end < start + length  # -1 when impossible
            if is_training and not ex.is_impossible and inside:
                offset = len(query) + 2 + extra
                f.start_position = tok_start - start + offset
                f.end_position = tok_end - start + offset
            features.append(f)
    return features


def stack_features(features: list[Feature]) -> dict[str, Tensor]:
    """int64 tensors: input_ids, attention_mask, token_type_ids (n, s); start/end_positions (n,)."""
    return {
        "input_ids": torch.tensor([f.input_ids for f in features], dtype=torch.int64),
        "attention_mask": torch.tensor([f.attention_mask for f in features], dtype=torch.int64),
        "token_type_ids": torch.tensor([f.token_type_ids for f in features], dtype=torch.int64),
        "start_positions": torch.tensor([f.start_position for f in features], dtype=torch.int64),
        "end_positions": torch.tensor([f.end_position for f in features], dtype=torch.int64),
    }


# -- post-processing -------------------------------------------------------------------------


def _strip_spaces(text: str) -> tuple[str, list[int]]:
    """``text`` without spaces, and for each kept character its index in ``text``."""
    kept, where = [], []
    for i, ch in enumerate(text):
        if ch != " ":
            kept.append(ch)
            where.append(i)
    return "".join(kept), where


def get_final_text(pred_text: str, orig_text: str, do_lower_case: bool) -> str:
    """The part of ``orig_text`` (original words, original case and punctuation) that
    ``pred_text`` (detokenised WordPiece text, normalised) stands for.

    ``orig_text`` is normalised as the tokenizer did, ``pred_text`` found in it, and the
    positions carried back through space-free versions of both texts; when that fails
    (the normalisation changed the length), ``orig_text`` is returned whole.

    >>> get_final_text("steve smith", "Steve Smith's", True)
    'Steve Smith'
    """
    tok_text = " ".join(BasicTokenizer(do_lower_case=do_lower_case).tokenize(orig_text))
    start = tok_text.find(pred_text)
    if start == -1:
        return orig_text
    end = start + len(pred_text) - 1
    orig_stripped, orig_where = _strip_spaces(orig_text)
    tok_stripped, tok_where = _strip_spaces(tok_text)
    if len(orig_stripped) != len(tok_stripped):
        return orig_text
    tok_to_stripped = {pos: i for i, pos in enumerate(tok_where)}
    if start not in tok_to_stripped or end not in tok_to_stripped:
        return orig_text
    return orig_text[orig_where[tok_to_stripped[start]] : orig_where[tok_to_stripped[end]] + 1]


NO_SPAN_ODDS = 1e9
"""``null_odds`` of a question with no valid span (JSON has no infinity)."""


def _top_indexes(logits: list[float], n: int) -> list[int]:
    return sorted(range(len(logits)), key=lambda i: logits[i], reverse=True)[:n]


def _softmax(scores: list[float]) -> list[float]:
    if not scores:
        return []
    top = max(scores)
    exps = [math.exp(s - top) for s in scores]
    total = sum(exps)
    return [e / total for e in exps]


def postprocess(
    examples: list[SquadExample],
    features: list[Feature],
    start_logits: Tensor,
    end_logits: Tensor,
    *,
    n_best_size: int,
    max_answer_length: int,
    do_lower_case: bool,
    version_2_with_negative: bool,
    null_score_diff_threshold: float = 0.0,
    tokens_to_text: Callable[[list[str]], str] | None = None,
) -> tuple[dict[str, str], dict[str, list[dict[str, Any]]], dict[str, float]]:
    """``(predictions, nbest, null_odds)`` from the (n_features, s) logits.

    ``predictions``: ``{qas_id: text}`` (``""`` = no answer, v2.0 only); ``nbest``: the
    ``n_best_size`` best ``{"text", "probability", "start_logit", "end_logit"}`` per
    question; ``null_odds``: ``{qas_id: null score - best span score}`` (v2.0).
    ``tokens_to_text``: how a span's tokens become text (default: WordPiece's, joining
    ``##`` pieces; the tokenizer's ``convert_tokens_to_string`` for byte-level BPE or
    SentencePiece).
    """
    by_example: dict[int, list[int]] = collections.defaultdict(list)
    for i, f in enumerate(features):
        by_example[f.example_index].append(i)
    starts, ends = start_logits.tolist(), end_logits.tolist()
    predictions: dict[str, str] = {}
    nbest_json: dict[str, list[dict[str, Any]]] = {}
    null_odds: dict[str, float] = {}
    for ex_index, ex in enumerate(examples):
        candidates = []  # (score, feature, start, end, start logit, end logit)
        null = None  # (score, start logit, end logit) of the best [CLS] span
        for fi in by_example[ex_index]:
            f, s_log, e_log = features[fi], starts[fi], ends[fi]
            if version_2_with_negative and (null is None or s_log[0] + e_log[0] < null[0]):
                null = (s_log[0] + e_log[0], s_log[0], e_log[0])
            for s in _top_indexes(s_log, n_best_size):
                for e in _top_indexes(e_log, n_best_size):
                    if s not in f.token_to_orig_map or e not in f.token_to_orig_map:
                        continue
                    if not f.token_is_max_context.get(s, False):
                        continue
                    if e < s or e - s + 1 > max_answer_length:
                        continue
                    candidates.append((s_log[s] + e_log[e], fi, s, e, s_log[s], e_log[e]))
        candidates.sort(key=lambda c: c[0], reverse=True)
        nbest: list[dict[str, Any]] = []
        seen: set[str] = set()
        for score, fi, s, e, sl, el in candidates:
            if len(nbest) >= n_best_size:
                break
            f = features[fi]
            pieces = f.tokens[s : e + 1]
            if tokens_to_text is None:
                tok_text = " ".join(pieces).replace(" ##", "").replace("##", "")
            else:
                tok_text = tokens_to_text(pieces)
            tok_text = " ".join(tok_text.strip().split())
            words = ex.doc_tokens[f.token_to_orig_map[s] : f.token_to_orig_map[e] + 1]
            text = get_final_text(tok_text, " ".join(words), do_lower_case)
            if text in seen:
                continue
            seen.add(text)
            nbest.append({"text": text, "start_logit": sl, "end_logit": el, "score": score})
        if null is not None and "" not in seen:
            nbest.append({"text": "", "start_logit": null[1], "end_logit": null[2],
                          "score": null[0]})  # fmt: skip
            nbest.sort(key=lambda x: x["score"], reverse=True)
        if not nbest:
            nbest = [{"text": "empty", "start_logit": 0.0, "end_logit": 0.0, "score": 0.0}]
        for entry, p in zip(nbest, _softmax([x["score"] for x in nbest])):
            entry["probability"] = p
            del entry["score"]
        nbest_json[ex.qas_id] = nbest
        best_span = next((x for x in nbest if x["text"]), None)
        if not version_2_with_negative:
            predictions[ex.qas_id] = nbest[0]["text"]
            continue
        if best_span is None:  # no span at all: "no answer", by a wide margin
            diff = NO_SPAN_ODDS
        else:
            diff = null[0] - best_span["start_logit"] - best_span["end_logit"]
        null_odds[ex.qas_id] = diff
        predictions[ex.qas_id] = (
            "" if best_span is None or diff > null_score_diff_threshold else best_span["text"]
        )
    return predictions, nbest_json, null_odds
