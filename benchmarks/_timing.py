"""Interleaved wall-clock timing of competing implementations, printed as ratios.

Every benchmark in this folder compares ptfunc with a peer *in the same run*:
the candidates of one case run alternately (A, B, B, A, A, B, ...) after a
warm-up, so that drift of the machine (frequency scaling, a neighbour's load,
page-cache effects) hits both sides alike. A case reports the median of its
repeats for each side and the ratio of the medians; an absolute time is never
reported without its peer.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

__all__ = ["Stats", "Row", "time_interleaved", "format_table"]


@dataclass
class Stats:
    """Seconds per call of one candidate, over the timed repeats."""

    times: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def min(self) -> float:
        return min(self.times)

    @property
    def spread(self) -> float:
        """(max - min) / median: how noisy the repeats were."""
        return (max(self.times) - min(self.times)) / self.median


@dataclass
class Row:
    """One line of the result table: ptfunc against its peer for one case."""

    case: str
    ours: Stats
    peer: Stats
    check: str = ""

    @property
    def ratio(self) -> float:
        return self.ours.median / self.peer.median


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def time_interleaved(
    fns: Sequence[Callable[[], object]], *, repeats: int, warmup: int = 1
) -> list[Stats]:
    """Time each of ``fns`` ``repeats`` times, alternating their order.

    Each function is called ``warmup`` times first (untimed). The garbage
    collector is run between calls and disabled during one, so that a
    collection triggered by one candidate is not billed to the other; objects
    alive before timing are frozen (``gc.freeze``) so those collections stay cheap.

    Returns:
        one :class:`Stats` per function, in the order given.
    """
    for _ in range(warmup):
        for fn in fns:
            fn()
    stats = [Stats() for _ in fns]
    order = list(range(len(fns)))
    was_enabled = gc.isenabled()
    gc.collect()
    gc.freeze()
    try:
        for _ in range(repeats):
            for i in order:
                gc.collect()
                gc.disable()
                try:
                    stats[i].times.append(_timed(fns[i]))
                finally:
                    gc.enable()
            order.reverse()
    finally:
        gc.unfreeze()
        if not was_enabled:
            gc.disable()
    return stats


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.1f}"


def format_table(rows: Sequence[Row], *, ours: str = "ptfunc", peer: str = "peer") -> str:
    """A fixed-width table: case, both medians (ms), ratio, spread and the output check."""
    headers = ["case", f"{ours} ms", f"{peer} ms", "ratio", "spread", "outputs"]
    lines = [
        [
            r.case,
            _ms(r.ours.median),
            _ms(r.peer.median),
            f"{r.ratio:.3f}",
            f"{max(r.ours.spread, r.peer.spread):.0%}",
            r.check,
        ]
        for r in rows
    ]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(headers)]
    right = {1, 2, 3, 4}

    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(headers), rule, *(fmt(line) for line in lines)])
