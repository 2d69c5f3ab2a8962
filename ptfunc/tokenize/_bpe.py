"""Byte-pair encoding shared by the GPT-2, OpenAI GPT and XLM tokenizers.

:class:`BPE` holds the merge ranks and applies them to one word at a time, lowest rank
first (ties: leftmost pair), caching the result per word; :func:`merge_symbols` is the
merge loop, O(n log n) in the word's length (a heap over a linked list of symbols).
:func:`read_merges` and :func:`read_vocab` load the ``merges.txt`` / ``vocab.bpe`` and
``vocab.json`` / ``encoder.json`` files.
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import chain
from pathlib import Path
from typing import Any

from ._files import read_json, read_text
from ._unicode import text_input

__all__ = [
    "BPE",
    "END_OF_WORD",
    "end_of_word_symbols",
    "merge_symbols",
    "merges_text",
    "read_merges",
    "read_vocab",
]

MERGES_HEADER = "#version: 0.2"
END_OF_WORD = "</w>"  # OpenAI GPT's and XLM's mark on a word's last symbol


def read_vocab(vocab: str | os.PathLike[str] | Mapping[str, int]) -> dict[str, int]:
    """Token -> id from a JSON file (raw or ``\\u``-escaped non-ASCII) or a mapping.

    Raises:
        ValueError: not a JSON object of str -> int, two tokens share an id, a token holds
            a lone surrogate (a ``\\ud800`` escape: no text can match it, and it cannot be
            decoded), or the file is not valid UTF-8.
    """
    data: Any = dict(vocab) if isinstance(vocab, Mapping) else read_json(Path(vocab), "vocabulary")
    where = "a BPE vocabulary" if isinstance(vocab, Mapping) else f"vocabulary {vocab}"
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and type(v) is int and v >= 0 for k, v in data.items()
    ):
        raise ValueError(f"{where} must be a JSON object of token -> non-negative int")
    bad = next((k for k in data if not k.isascii() and text_input(k) is not k), None)
    if bad is not None:
        raise ValueError(f"{where} holds the token {bad!r}, with a lone surrogate")
    if len(set(data.values())) != len(data):
        raise ValueError("a BPE vocabulary must not give two tokens the same id")
    return data


def read_merges(
    merges: str | os.PathLike[str] | Iterable[tuple[str, str] | str],
) -> list[tuple[str, str]]:
    """Merge pairs, by rank, from a merges file or an iterable of pairs / ``"a b"`` strings.

    The first line of a file is a header (``#version: ...``) and is skipped whatever it
    says; empty lines (the trailing one) are skipped too. Unlike 1.0, which dropped the
    last line blindly, a file without a final newline keeps its last merge.

    Raises:
        ValueError: a line does not hold two symbols, or the file is not valid UTF-8.
    """
    if isinstance(merges, (str, os.PathLike)):
        lines: Iterable[Any] = read_text(merges, "merges file").split("\n")[1:]
    else:
        lines = merges
    pairs: list[tuple[str, str]] = []
    for line in lines:
        parts = tuple(line.split()) if isinstance(line, str) else tuple(line)
        if not parts:
            continue
        if len(parts) != 2:
            raise ValueError(f"a merge must hold two symbols; got {line!r}")
        pairs.append(parts)  # type: ignore[arg-type]
    return pairs


def merges_text(pairs: Iterable[tuple[str, str]]) -> str:
    """The ``merges.txt`` content for ``pairs`` (header, one merge per line)."""
    return MERGES_HEADER + "\n" + "".join(f"{a} {b}\n" for a, b in pairs)


def end_of_word_symbols(word: str) -> tuple[str, ...]:
    """The initial symbols of OpenAI GPT's and XLM's BPE: characters, the last with ``</w>``."""
    return (*word[:-1], word[-1] + END_OF_WORD)


class _PieceCache(dict):
    """word -> pieces; a missing word is merged on lookup, so cache hits stay in C."""

    def __init__(self, owner: BPE) -> None:
        super().__init__()
        self._owner = owner

    def __missing__(self, word: str) -> tuple[str, ...]:
        owner = self._owner
        pieces = merge_symbols(owner.ranks, owner.prepare(word))
        if len(word) < owner.max_cached_length:
            if len(self) >= owner.cache_size:
                self.clear()
            self[word] = pieces
        return pieces


class BPE:
    """Apply merges to words, lowest rank first, with a per-word cache.

    Args:
        merges: merge pairs in rank order.
        cache_size: words kept in the cache (it is cleared when full).
        max_cached_length: words of this many characters or more are not cached (as in
            the Rust ``tokenizers``: a long word is rarely seen twice, and caching
            adversarial megabyte words would hold their pieces in memory).
        prepare: word -> its initial symbols (default: its characters; see
            :func:`end_of_word_symbols`, and GPT-2's byte mapping). Must be picklable.
    """

    def __init__(
        self,
        merges: Iterable[tuple[str, str]],
        cache_size: int = 100_000,
        max_cached_length: int = 256,
        prepare: Callable[[str], Sequence[str]] = tuple,
    ) -> None:
        self.merges = list(merges)
        self.ranks: dict[tuple[str, str], int] = {}
        for rank, pair in enumerate(self.merges):
            self.ranks.setdefault(pair, rank)
        self.cache_size = cache_size
        self.max_cached_length = max_cached_length
        self.prepare = prepare
        self.cache: dict[str, tuple[str, ...]] = _PieceCache(self)

    def __call__(self, word: str, symbols: Sequence[str] | None = None) -> tuple[str, ...]:
        """BPE pieces of ``word``, starting from ``symbols`` (default: ``prepare(word)``).

        The cache is keyed by ``word``: give the same ``symbols`` for a word every time.
        """
        if symbols is None:
            return self.cache[word]
        pieces = self.cache.get(word)
        if pieces is None:
            pieces = merge_symbols(self.ranks, symbols)
            if len(word) < self.max_cached_length:
                if len(self.cache) >= self.cache_size:
                    self.cache.clear()
                self.cache[word] = pieces
        return pieces

    def pieces(self, words: Iterable[str]) -> list[str]:
        """The pieces of every word (non-empty), concatenated."""
        return list(chain.from_iterable(map(self.cache.__getitem__, words)))

    def merge(self, symbols: Sequence[str]) -> tuple[str, ...]:
        """Merge ``symbols`` until no adjacent pair has a rank (no cache); see
        :func:`merge_symbols`."""
        return merge_symbols(self.ranks, symbols)

    def __getstate__(self) -> dict[str, Any]:
        return {
            "merges": self.merges,
            "cache_size": self.cache_size,
            "max_cached_length": self.max_cached_length,
            "prepare": self.prepare,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["merges"],
            state["cache_size"],
            state.get("max_cached_length", 256),
            state.get("prepare", tuple),
        )


def merge_symbols(ranks: Mapping[tuple[str, str], int], symbols: Sequence[str]) -> tuple[str, ...]:
    """BPE of one word: merge adjacent symbols by rank until no pair has one.

    The result is that of the classic loop of GPT-2's ``encoder.py`` and
    pytorch-transformers 1.0: find the adjacent pair of lowest rank, merge all its
    occurrences left to right (``a a a`` -> ``aa a``), repeat. That loop rescans the
    whole word per merge, O(n^2) for a word of n symbols (100,000 letters without a
    space took a minute). Here the symbols form a linked list (``nxt``/``prv`` over their
    first positions), each rank present keeps the list of positions where its pair
    starts, and a heap of those ranks yields the lowest; its positions, sorted, are the
    pass of the classic loop, i.e. merges come in (rank, position) order: O(n log n).
    A position goes stale when a neighbour merges; it is skipped when its turn comes (the
    pair there no longer has that rank; ranks are unique per pair).

    A merge can make a pair whose rank is *lower* than the one being applied (in a
    table where ``"ab"`` is also made by a later merge): it goes to its rank's list and
    waits until the current pass is done, as in the classic loop (the Rust
    ``tokenizers`` would merge it at once; trained tables never tell the difference).
    One heap operation per rank rather than per pair: a megabyte of letters in about a
    second and a half.

    Args:
        ranks: pair -> rank (lower merges first); a pair's rank identifies it.
        symbols: the word's initial symbols (characters or bytes, maybe with ``</w>``).

    Returns:
        The merged symbols.

    Example:
        >>> merge_symbols({("a", "b"): 0, ("ab", "c"): 1, ("a", "a"): 2}, "aaabc")
        ('aa', 'abc')
    """
    n = len(symbols)
    if n < 2:
        return tuple(symbols)
    get = ranks.get
    sym: list[str | None] = list(symbols)
    at: dict[int, list[int]] = {}  # rank -> positions where its pair starts (some stale)
    i = -1
    for rank in map(get, zip(sym, sym[1:])):  # type: ignore[arg-type]
        i += 1
        if rank is not None:
            found = at.get(rank)
            if found is None:
                at[rank] = [i]
            else:
                found.append(i)
    if not at:
        return tuple(symbols)
    if n == 2:
        return (symbols[0] + symbols[1],)
    order = list(at)
    heapq.heapify(order)
    pop, push = heapq.heappop, heapq.heappush
    nxt = list(range(1, n + 1))  # n: no next symbol
    prv = list(range(-1, n - 1))  # -1: no previous symbol
    while order:
        rank = pop(order)
        positions = at.pop(rank)
        if len(positions) > 1:
            positions.sort()
        for i in positions:
            first = sym[i]
            if first is None:  # merged into its left neighbour
                continue
            j = nxt[i]
            if j == n:
                continue
            second = sym[j]
            if get((first, second)) != rank:  # type: ignore[arg-type]
                continue  # stale: a neighbour changed since
            merged = first + second  # type: ignore[operator]
            sym[i] = merged
            sym[j] = None
            k = nxt[j]
            nxt[i] = k
            if k != n:
                prv[k] = i
                new = get((merged, sym[k]))  # type: ignore[arg-type]
                if new is not None:
                    found = at.get(new)
                    if found is None:
                        at[new] = [i]
                        push(order, new)
                    else:
                        found.append(i)
            p = prv[i]
            if p >= 0:
                new = get((sym[p], merged))  # type: ignore[arg-type]
                if new is not None:
                    found = at.get(new)
                    if found is None:
                        at[new] = [p]
                        push(order, new)
                    else:
                        found.append(p)
    return tuple(s for s in sym if s is not None)  # type: ignore[misc]
