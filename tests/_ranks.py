"""Spawn ``n`` ranks of a Python script the way ``torchrun`` starts its workers.

Each rank gets torchrun's environment (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``,
``LOCAL_WORLD_SIZE``, ``MASTER_ADDR``/``MASTER_PORT`` on a free local port), one OpenMP
thread and the repository on ``PYTHONPATH``; the launcher's own start-up is saved.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def rank_env() -> dict[str, str]:
    """The environment of a spawned process: one OpenMP thread, the repository importable."""
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ranks(n: int, args: list[str], *, timeout: float) -> list[tuple[int, str, str]]:
    """Run ``python ARGS`` as ranks 0..n-1 from the repository root and wait for them all
    (at most ``timeout`` seconds each; stragglers are killed).

    Returns:
        ``(returncode, stdout, stderr)`` of each rank, in rank order.
    """
    env = rank_env() | {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()),
                        "WORLD_SIZE": str(n), "LOCAL_WORLD_SIZE": str(n)}  # fmt: skip
    procs = [
        subprocess.Popen(
            [sys.executable, *args],
            cwd=REPO,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env | {"RANK": str(r), "LOCAL_RANK": str(r)},
        )  # fmt: skip
        for r in range(n)
    ]
    try:
        outputs = [p.communicate(timeout=timeout) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return [(p.returncode, out, err) for p, (out, err) in zip(procs, outputs)]
