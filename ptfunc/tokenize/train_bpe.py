"""Train a GPT-2-style byte-level BPE vocabulary on your own texts.

:func:`train_bpe` learns an encoder (token -> id) and a merge list in GPT-2's byte-level
alphabet (:func:`~ptfunc.tokenize.gpt2.bytes_to_unicode`); :func:`train_gpt2_tokenizer`
wraps the result in a :class:`~ptfunc.tokenize.gpt2.GPT2Tokenizer` and optionally writes
``vocab.json`` / ``merges.txt``.

Algorithm: each text is cut at the special tokens, then by GPT-2's pre-split pattern; the
chunks are counted as words of byte symbols. Starting from the 256 byte symbols, the most
frequent adjacent pair (counted over every adjacent position, weighted by word
frequency) is merged, again and again, until the vocabulary holds ``vocab_size`` tokens
or no pair occurs ``min_frequency`` times. Pair counts are updated incrementally: a merge
only revisits the words that contain the merged pair, and a lazy max-heap picks the next
pair.

Ties between equally frequent pairs go to the pair whose (left id, right id) is smallest,
ids being vocabulary ids (bytes in code-point order of their printable characters, then
merged tokens in creation order). This is the Hugging Face ``tokenizers`` ``BpeTrainer``
rule, so with the same settings the merges match it (see the tests).

Vocabulary layout: ids ``0..255`` are the byte symbols in GPT-2's order, then merged
tokens in merge order, then the special tokens (GPT-2 puts ``<|endoftext|>`` last too;
``tokenizers`` puts specials first, at id 0). A merge whose result is already a token
(``"ab"+"c"`` after ``"a"+"bc"``) is recorded but adds no token, as in ``tokenizers``.
"""

from __future__ import annotations

import heapq
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import regex

from .gpt2 import PRE_SPLIT, GPT2Tokenizer, bytes_to_unicode

__all__ = ["train_bpe", "train_gpt2_tokenizer"]


def _count_words(texts: Iterable[str], specials: Sequence[str]) -> Counter[str]:
    """Pre-split chunk -> count, with special-token text cut out first."""
    counts: Counter[str] = Counter()
    cutter = (
        regex.compile("|".join(regex.escape(s) for s in sorted(specials, key=len, reverse=True)))
        if specials
        else None
    )
    for text in texts:
        if not isinstance(text, str):
            raise TypeError(f"texts must be str; got {type(text).__name__}")
        parts = cutter.split(text) if cutter is not None else [text]
        for part in parts:
            counts.update(PRE_SPLIT.findall(part))
    return counts


def train_bpe(
    texts: Iterable[str],
    vocab_size: int,
    *,
    min_frequency: int = 2,
    special_tokens: Sequence[str] = ("<|endoftext|>",),
) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Learn a byte-level BPE encoder and merge list from ``texts``.

    Args:
        texts: training texts (any iterable of str, read once).
        vocab_size: size of the vocabulary wanted, byte symbols and special tokens
            included; training may stop earlier (see ``min_frequency``).
        min_frequency: a pair is merged only if it occurs at least this often.
        special_tokens: tokens appended at the end of the vocabulary (in order, duplicates
            dropped); their text in ``texts`` is cut out before counting.

    Returns:
        ``(encoder, merges)``: token -> id, and the merge pairs in rank order, both in
        GPT-2's byte-level unicode alphabet.

    Raises:
        ValueError: ``vocab_size`` is below 256 + the number of special tokens, or a
            special token is empty.
    """
    specials = list(dict.fromkeys(special_tokens))
    if any(not isinstance(s, str) or not s for s in specials):
        raise ValueError("special tokens must be non-empty strings")
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int):
        raise TypeError(f"vocab_size must be an int; got {type(vocab_size).__name__}")
    byte_table = bytes_to_unicode()
    alphabet = sorted(byte_table.values())
    extra_specials = [s for s in specials if s not in alphabet]
    minimum = len(alphabet) + len(extra_specials)
    if vocab_size < minimum:
        raise ValueError(
            f"vocab_size must be at least {minimum} (256 byte symbols + "
            f"{len(extra_specials)} special tokens); got {vocab_size}"
        )
    min_count = max(int(min_frequency), 1)

    # tokens, ids and words ---------------------------------------------------------------
    id_to_token: list[str] = list(alphabet)
    token_to_id: dict[str, int] = {t: i for i, t in enumerate(alphabet)}
    # specials that a merge could produce take their id at the end; track them so a merge
    # producing one does not count twice against vocab_size
    pending_specials = set(extra_specials)

    word_counts = _count_words(texts, specials)
    words: list[list[int]] = []
    freqs: list[int] = []
    for chunk, count in word_counts.items():
        words.append([token_to_id[byte_table[b]] for b in chunk.encode("utf-8")])
        freqs.append(count)

    pair_counts: dict[tuple[int, int], int] = {}
    where: dict[tuple[int, int], set[int]] = {}
    for index, word in enumerate(words):
        count = freqs[index]
        for pair in zip(word, word[1:]):
            pair_counts[pair] = pair_counts.get(pair, 0) + count
            bucket = where.get(pair)
            if bucket is None:
                where[pair] = {index}
            else:
                bucket.add(index)
    heap = [(-count, a, b) for (a, b), count in pair_counts.items()]
    heapq.heapify(heap)

    merges: list[tuple[str, str]] = []
    while len(id_to_token) + len(pending_specials) < vocab_size and heap:
        neg, a, b = heapq.heappop(heap)
        pair = (a, b)
        actual = pair_counts.get(pair, 0)
        if actual != -neg:  # stale entry: counts only drop lazily, so re-queue
            if actual > 0:
                heapq.heappush(heap, (-actual, a, b))
            continue
        if actual < min_count:
            break
        left, right = id_to_token[a], id_to_token[b]
        merged = left + right
        new_id = token_to_id.get(merged)
        if new_id is None:
            new_id = len(id_to_token)
            id_to_token.append(merged)
            token_to_id[merged] = new_id
            pending_specials.discard(merged)
        merges.append((left, right))

        changed: set[tuple[int, int]] = set()
        for index in where.pop(pair, ()):
            word = words[index]
            count = freqs[index]
            # the pair may be gone from this word (stale index entry)
            n = len(word)
            if not any(word[i] == a and word[i + 1] == b for i in range(n - 1)):
                continue
            for old in zip(word, word[1:]):
                pair_counts[old] -= count
            out: list[int] = []
            i = 0
            while i < n:
                if i < n - 1 and word[i] == a and word[i + 1] == b:
                    out.append(new_id)
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            words[index] = out
            for new in zip(out, out[1:]):
                pair_counts[new] = pair_counts.get(new, 0) + count
                changed.add(new)
                bucket = where.get(new)
                if bucket is None:
                    where[new] = {index}
                else:
                    bucket.add(index)
        pair_counts.pop(pair, None)
        for new in changed:
            count = pair_counts[new]
            if count > 0 and new != pair:
                heapq.heappush(heap, (-count, *new))

    encoder = dict(token_to_id)
    for special in specials:
        if special not in encoder:
            encoder[special] = len(encoder)
    return encoder, merges


def train_gpt2_tokenizer(
    texts: Iterable[str],
    vocab_size: int,
    directory: str | os.PathLike[str] | None = None,
    *,
    min_frequency: int = 2,
    special_tokens: Sequence[str] = ("<|endoftext|>",),
    **kwargs: Any,
) -> GPT2Tokenizer:
    """Train a byte-level BPE (:func:`train_bpe`) and return it as a :class:`GPT2Tokenizer`.

    Args:
        texts, vocab_size, min_frequency, special_tokens: as :func:`train_bpe`.
        directory: if given, ``vocab.json`` and ``merges.txt`` are written there
            (created if missing).
        **kwargs: passed to :class:`GPT2Tokenizer`. Special tokens other than
            ``<|endoftext|>`` (GPT-2's unk/bos/eos default) are registered as
            ``additional_special_tokens`` unless that is given.

    Returns:
        The trained tokenizer.
    """
    encoder, merges = train_bpe(
        texts, vocab_size, min_frequency=min_frequency, special_tokens=special_tokens
    )
    extra = [s for s in dict.fromkeys(special_tokens) if s != "<|endoftext|>"]
    if extra:
        kwargs.setdefault("additional_special_tokens", extra)
    tokenizer = GPT2Tokenizer(encoder, merges, **kwargs)
    if directory is not None:
        tokenizer.save_vocabulary(directory)
    return tokenizer
