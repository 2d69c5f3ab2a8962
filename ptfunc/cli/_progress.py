"""Progress lines on stderr for long commands."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["StderrProgress"]


class StderrProgress:
    """A :data:`ptfunc.io.convert.Progress` callback that prints ``label: done/total what``.

    On a terminal one line is rewritten in place; otherwise (a log, a pipe) a line is
    printed at most every ``every_s`` seconds, plus the last one, so logs stay short.
    """

    def __init__(self, label: str, *, stream: TextIO | None = None, every_s: float = 0.5) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.every_s = every_s
        self._last = float("-inf")
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def __call__(self, done: int, total: int, what: str) -> None:
        now = time.monotonic()
        last = done >= total
        if not last and now - self._last < self.every_s:
            return
        self._last = now
        line = f"{self.label}: {done}/{total} {what}"
        if self._tty:
            self.stream.write("\r\x1b[K" + line + ("\n" if last else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
