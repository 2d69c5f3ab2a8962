"""Shared test fixtures.

Real vocabularies and corpora live outside the repository, in ``../shared/fixtures``
(or wherever ``PTFUNC_FIXTURES`` points). Tests that need them take the
``shared_fixtures`` fixture and are skipped cleanly when the folder is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _fixtures_dir() -> Path:
    env = os.environ.get("PTFUNC_FIXTURES")
    return Path(env) if env else REPO.parent / "shared" / "fixtures"


@pytest.fixture(scope="session")
def shared_fixtures() -> Path:
    """Path of the shared fixtures folder; skips the test when it is absent."""
    path = _fixtures_dir()
    if not path.is_dir():
        pytest.skip(f"shared fixtures not found at {path}")
    return path
