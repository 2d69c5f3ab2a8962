"""Byte-pair encoding shared by the GPT-2 and OpenAI GPT tokenizers.

:class:`BPE` holds the merge ranks and applies them to one word at a time, lowest rank
first (ties: leftmost pair), caching the result per word. :func:`read_merges` and
:func:`read_vocab` load the ``merges.txt`` / ``vocab.bpe`` and ``vocab.json`` /
``encoder.json`` files.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ._files import read_json

__all__ = ["BPE", "merges_text", "read_merges", "read_vocab"]

MERGES_HEADER = "#version: 0.2"


def read_vocab(vocab: str | os.PathLike[str] | Mapping[str, int]) -> dict[str, int]:
    """Token -> id from a JSON file (raw or ``\\u``-escaped non-ASCII) or a mapping.

    Raises:
        ValueError: not a JSON object of str -> int, or two tokens share an id.
    """
    data: Any = dict(vocab) if isinstance(vocab, Mapping) else read_json(Path(vocab), "vocabulary")
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and type(v) is int and v >= 0 for k, v in data.items()
    ):
        raise ValueError("a BPE vocabulary must be a JSON object of token -> non-negative int")
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
        ValueError: a line does not hold two symbols.
    """
    if isinstance(merges, (str, os.PathLike)):
        with open(merges, encoding="utf-8") as handle:
            lines: Iterable[Any] = handle.read().split("\n")[1:]
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


class BPE:
    """Apply merges to words, lowest rank first, with a per-word cache.

    Args:
        merges: merge pairs in rank order.
        cache_size: words kept in the cache (it is cleared when full).
    """

    def __init__(self, merges: Iterable[tuple[str, str]], cache_size: int = 100_000) -> None:
        self.merges = list(merges)
        self.ranks: dict[tuple[str, str], int] = {}
        for rank, pair in enumerate(self.merges):
            self.ranks.setdefault(pair, rank)
        self.cache_size = cache_size
        self.cache: dict[Any, tuple[str, ...]] = {}

    def __call__(self, word: str, symbols: tuple[str, ...] | None = None) -> tuple[str, ...]:
        """BPE pieces of ``word``, starting from ``symbols`` (default: its characters).

        The cache is keyed by ``word``: give the same ``symbols`` for a word every time.
        """
        cache = self.cache
        pieces = cache.get(word)
        if pieces is None:
            pieces = self.merge(tuple(word) if symbols is None else symbols)
            if len(cache) >= self.cache_size:
                cache.clear()
            cache[word] = pieces
        return pieces

    def merge(self, symbols: tuple[str, ...]) -> tuple[str, ...]:
        """Merge ``symbols`` until no adjacent pair has a rank (no cache)."""
        ranks = self.ranks
        word = list(symbols)
        inf = len(ranks) + 1
        while len(word) > 1:
            best = min(zip(word, word[1:]), key=lambda p: ranks.get(p, inf))
            if best not in ranks:
                break
            first, second = best
            merged = first + second
            out: list[str] = []
            i, n = 0, len(word)
            while i < n:
                if i < n - 1 and word[i] == first and word[i + 1] == second:
                    out.append(merged)
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            word = out
        return tuple(word)

    def __getstate__(self) -> dict[str, Any]:
        return {"merges": self.merges, "cache_size": self.cache_size}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["merges"], state["cache_size"])  # type: ignore[misc]
