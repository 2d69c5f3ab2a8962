"""Data for BERT pre-training / LM fine-tuning (``run_lm_finetuning.py``): a corpus of
documents, next-sentence pairs and masked-LM examples, each a pure function of a seed.

Corpus format (the seed's ``simple_lm_finetuning.py``): one sentence per line, a blank
line between documents.

An example starts at a sentence that has a successor in its document. With probability
1/2 its second segment is that successor (``is_next`` label 0, the seed's ``IsNext``);
otherwise a random sentence of another document (label 1, ``NotNext``). The pair is
truncated longest-first to ``max_seq_length - 3`` tokens and written
``[CLS] a [SEP] b [SEP]`` with segment ids 0 then 1.

Masking (the seed's ``random_word``): every token that is not ``[CLS]``/``[SEP]`` is chosen
with probability 0.15; a chosen token becomes ``[MASK]`` 80% of the time, a random id of the
vocabulary 10%, and stays itself 10%; its label is the original id. Every other position is
labelled -1 (ignored by the loss). Unlike the seed, an example in which no token was
chosen gets one chosen position (drawn uniformly), so that no example carries no MLM
signal (and a batch never has an empty, NaN loss).

Randomness: each example draws from ``random.Random(f"{tag}:{seed}:{epoch}:{index}")``, so
an example is a function of (seed, epoch, index) alone: a run's batches depend on the step
only (dynamic masking: each epoch re-pairs and re-masks), and resume is exact.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

MASK_PROB = 0.15
IGNORE = -1


@dataclass(frozen=True)
class Corpus:
    """Documents as lists of sentences, each sentence a list of token ids."""

    documents: list[list[list[int]]]

    @cached_property
    def starts(self) -> list[tuple[int, int]]:
        """``(document, sentence)`` of every sentence with a successor in its document."""
        return [(d, s) for d, doc in enumerate(self.documents) for s in range(len(doc) - 1)]


def read_documents(path: Path) -> list[list[str]]:
    """Documents of a corpus file: lists of non-empty lines, split at blank lines."""
    documents: list[list[str]] = [[]]
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if line:
                documents[-1].append(line)
            elif documents[-1]:
                documents.append([])
    return [doc for doc in documents if doc]


def tokenize_documents(documents: Sequence[Sequence[str]], tokenizer: Any) -> Corpus:
    """Token ids of every sentence (sentences that tokenize to nothing are dropped)."""
    out = []
    for doc in documents:
        ids = [tokenizer.convert_tokens_to_ids(tokenizer.tokenize(s)) for s in doc]
        out.append([s for s in ids if s])
    return Corpus([doc for doc in out if doc])


def split_corpus(corpus: Corpus, eval_fraction: float) -> tuple[Corpus, Corpus]:
    """(train, held-out): the last ``eval_fraction`` of the documents (at least one when
    there are two or more documents and the fraction is positive) are held out."""
    n = len(corpus.documents)
    held = 0 if eval_fraction <= 0 or n < 2 else min(n - 1, max(1, round(n * eval_fraction)))
    return Corpus(corpus.documents[: n - held]), Corpus(corpus.documents[n - held :])


def truncate_pair(a: list[int], b: list[int], limit: int) -> tuple[list[int], list[int]]:
    """Drop tokens from the end of the longer segment until ``len(a) + len(b) <= limit``."""
    a, b = list(a), list(b)
    while len(a) + len(b) > limit:
        if len(a) > len(b):
            a.pop()
        else:
            b.pop()
    return a, b


def mask_tokens(
    ids: Sequence[int],
    maskable: Sequence[bool],
    rng: random.Random,
    *,
    vocab_size: int,
    mask_id: int,
) -> tuple[list[int], list[int]]:
    """The seed's 15% / 80-10-10 masking; returns (input ids, labels with -1 = ignored).

    Args:
        ids: the token ids of one example (special tokens included).
        maskable: False at special tokens and padding (never chosen).
        rng: the example's random source.
        vocab_size: random replacements are drawn from ``range(vocab_size)``.
        mask_id: the id of ``[MASK]``.
    """
    inputs, labels = list(ids), [IGNORE] * len(ids)

    def corrupt(i: int, r: float) -> None:
        labels[i] = ids[i]
        if r < 0.8:
            inputs[i] = mask_id
        elif r < 0.9:
            inputs[i] = rng.randrange(vocab_size)

    for i, ok in enumerate(maskable):
        if not ok:
            continue
        p = rng.random()
        if p < MASK_PROB:
            corrupt(i, p / MASK_PROB)
    candidates = [i for i, ok in enumerate(maskable) if ok]
    if candidates and all(label == IGNORE for label in labels):
        corrupt(rng.choice(candidates), rng.random())
    return inputs, labels


@dataclass(frozen=True)
class Example:
    """One pre-training example, unpadded: ``input_ids``, ``token_type_ids``, ``labels``
    (MLM, -1 = ignored) of equal length, and ``is_next`` (0 = next, 1 = random)."""

    input_ids: list[int]
    token_type_ids: list[int]
    labels: list[int]
    is_next: int


def make_example(
    corpus: Corpus,
    index: int,
    rng: random.Random,
    *,
    max_seq_length: int,
    tokenizer: Any,
) -> Example:
    """The example starting at ``corpus.starts[index]`` (pairing and masking from ``rng``)."""
    d, s = corpus.starts[index]
    a = corpus.documents[d][s]
    if rng.random() < 0.5:
        b, is_next = corpus.documents[d][s + 1], 0
    else:
        others = [i for i in range(len(corpus.documents)) if i != d] or [d]
        doc = corpus.documents[rng.choice(others)]
        b, is_next = doc[rng.randrange(len(doc))], 1
    a, b = truncate_pair(a, b, max_seq_length - 3)
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    ids = [cls, *a, sep, *b, sep]
    types = [0] * (len(a) + 2) + [1] * (len(b) + 1)
    maskable = [i not in (0, len(a) + 1, len(ids) - 1) for i in range(len(ids))]
    inputs, labels = mask_tokens(
        ids, maskable, rng, vocab_size=tokenizer.vocab_size, mask_id=tokenizer.mask_token_id
    )
    return Example(inputs, types, labels, is_next)


def example_rng(tag: str, seed: int, epoch: int, index: int) -> random.Random:
    """The random source of one example (string seeds hash the same in every process)."""
    return random.Random(f"{tag}:{seed}:{epoch}:{index}")


def collate(examples: Sequence[Example], max_seq_length: int) -> dict[str, Tensor]:
    """Pad to ``max_seq_length``: ``input_ids``, ``token_type_ids``, ``attention_mask``,
    ``masked_lm_labels`` (b, L) and ``next_sentence_label`` (b,), all int64."""
    b = len(examples)
    ids = torch.zeros(b, max_seq_length, dtype=torch.long)
    types, mask = torch.zeros_like(ids), torch.zeros_like(ids)
    labels = torch.full_like(ids, IGNORE)
    for r, ex in enumerate(examples):
        n = len(ex.input_ids)
        ids[r, :n] = torch.tensor(ex.input_ids)
        types[r, :n] = torch.tensor(ex.token_type_ids)
        mask[r, :n] = 1
        labels[r, :n] = torch.tensor(ex.labels)
    return {
        "input_ids": ids,
        "token_type_ids": types,
        "attention_mask": mask,
        "masked_lm_labels": labels,
        "next_sentence_label": torch.tensor([ex.is_next for ex in examples], dtype=torch.long),
    }
