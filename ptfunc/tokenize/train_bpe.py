"""Train a GPT-2-style byte-level BPE vocabulary on your own texts.

:func:`train_bpe` learns an encoder (token -> id) and a merge list in GPT-2's byte-level
alphabet (:func:`~ptfunc.tokenize.gpt2.bytes_to_unicode`); :func:`train_gpt2_tokenizer`
wraps the result in a :class:`~ptfunc.tokenize.gpt2.GPT2Tokenizer` and optionally writes
``vocab.json`` / ``merges.txt``.

Algorithm: each text is cut at the special tokens, then by GPT-2's pre-split pattern; the
chunks are counted as words of byte symbols. Starting from the 256 byte symbols, the most
frequent adjacent pair (counted over every adjacent position, weighted by word
frequency) is merged, again and again, until the vocabulary holds ``vocab_size`` tokens
or no pair occurs ``min_frequency`` times. Pair counts are updated incrementally: the
words are linked lists of symbols, each pair knows the positions where it occurs, a
merge touches only those positions and their neighbours (not the whole words, so a long
word without spaces costs no more than many short ones), and a lazy max-heap picks the
next pair.

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

from ._unicode import text_input
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
    for index, text in enumerate(texts):
        text = text_input(text, f"texts[{index}]")  # lone surrogates become U+FFFD
        parts = cutter.split(text) if cutter is not None else [text]
        for part in parts:
            counts.update(PRE_SPLIT.findall(part))
    return counts


def _merge_everywhere(
    pair: tuple[int, int],
    new_id: int,
    positions: list[int],
    sym: list[int],
    nxt: list[int],
    prv: list[int],
    freq: list[int],
    pair_counts: dict[tuple[int, int], int],
    where: dict[tuple[int, int], list[int]],
    heap: list[tuple[int, int, int]],
) -> None:
    """Merge ``pair`` into ``new_id`` at ``positions`` (sorted: left to right in each word,
    so ``a a a`` gives ``aa a``), updating the counts of the neighbouring pairs.

    Only the merged occurrences and their two neighbours are touched, so a merge costs
    O(occurrences), not O(length of the words holding them): a word of a million bytes
    without a space trains like many small ones. Positions that no longer hold the pair
    (a neighbour merged first) are skipped. Pairs whose count grew are queued again.
    """
    a, b = pair
    grown: set[tuple[int, int]] = set()
    for i in positions:
        j = nxt[i]
        if sym[i] != a or j < 0 or sym[j] != b:
            continue  # stale: merged away, or a neighbour changed
        count = freq[i]
        p, k = prv[i], nxt[j]
        if p >= 0:
            left = sym[p]
            pair_counts[(left, a)] -= count
            new = (left, new_id)
            pair_counts[new] = pair_counts.get(new, 0) + count
            where.setdefault(new, []).append(p)
            grown.add(new)
        if k >= 0:
            right = sym[k]
            pair_counts[(b, right)] -= count
            new = (new_id, right)
            pair_counts[new] = pair_counts.get(new, 0) + count
            where.setdefault(new, []).append(i)
            grown.add(new)
            prv[k] = i
        sym[i] = new_id
        sym[j] = -1
        nxt[i] = k
    pair_counts.pop(pair, None)
    for new in grown:
        count = pair_counts[new]
        if count > 0 and new != pair:
            heapq.heappush(heap, (-count, *new))


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
        TypeError: a text is not a str (lone surrogates in a text become U+FFFD, as in
            the tokenizers).
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

    # every occurrence of every word is one node of a linked list over all the words:
    # sym (token id; -1 once merged into its left neighbour), nxt / prv (-1 at word ends),
    # freq (the word's count); where[pair] lists the positions where the pair started
    sym: list[int] = []
    nxt: list[int] = []
    prv: list[int] = []
    freq: list[int] = []
    byte_ids = [token_to_id[byte_table[b]] for b in range(256)]
    for chunk, count in _count_words(texts, specials).items():
        data = chunk.encode("utf-8")  # never empty: every pre-split chunk has a character
        start, length = len(sym), len(data)
        sym.extend(byte_ids[b] for b in data)
        freq.extend([count] * length)
        nxt.extend(range(start + 1, start + length))
        nxt.append(-1)
        prv.append(-1)
        prv.extend(range(start, start + length - 1))

    pair_counts: dict[tuple[int, int], int] = {}
    where: dict[tuple[int, int], list[int]] = {}
    for i, j in enumerate(nxt):
        if j >= 0:
            pair = (sym[i], sym[j])
            pair_counts[pair] = pair_counts.get(pair, 0) + freq[i]
            found = where.get(pair)
            if found is None:
                where[pair] = [i]
            else:
                found.append(i)
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
        positions = sorted(where.pop(pair, ()))
        _merge_everywhere(pair, new_id, positions, sym, nxt, prv, freq, pair_counts, where, heap)

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
