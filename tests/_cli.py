"""Running ``ptfunc`` as a user does, for the command-line tests."""

from __future__ import annotations

import os
import subprocess
import sys


def ptfunc_cli(*args: object, stdin: str | None = None, timeout: int = 180):
    """Run ``python -m ptfunc ARGS`` (each turned into a string); the finished process."""
    return subprocess.run(
        [sys.executable, "-m", "ptfunc", *map(str, args)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )


def assert_fails_with(result, needle: str, status: int = 1) -> None:
    """Exit ``status``, no traceback, ``needle`` in stderr; for status 1 the reason is one
    ``ptfunc: ...`` line (``convert: ...`` progress lines may come before it)."""
    assert result.returncode == status, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    if status == 1:
        reasons = [x for x in result.stderr.splitlines() if not x.startswith("convert: ")]
        assert len(reasons) == 1 and reasons[0].startswith("ptfunc: "), result.stderr
    assert needle in result.stderr, result.stderr
