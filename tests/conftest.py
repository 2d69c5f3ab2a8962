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


@pytest.fixture(autouse=True)
def _hub_offline_with_an_empty_cache(tmp_path_factory, monkeypatch):
    """No test reaches the internet or reads the user's cache: offline, a fresh HF_HOME.

    Hub tests undo this with ``monkeypatch.delenv("HF_HUB_OFFLINE")`` and point
    ``HF_ENDPOINT`` at a local server (``tests/_hub_server.py``).
    """
    home = tmp_path_factory.mktemp("hf_home")
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)


@pytest.fixture
def seed_txl_bool_masks(monkeypatch):
    """Hand pytorch-transformers 1.0's Transformer-XL attention a bool mask: it builds a
    uint8 mask with ``.byte()``, which ``masked_fill`` refuses on torch 2.x. Test-only
    shim; nothing else in the seed is touched."""
    from pytorch_transformers import modeling_transfo_xl as pt_txl

    original = pt_txl.RelPartialLearnableMultiHeadAttn.forward

    def forward(self, w, r, attn_mask=None, mems=None, head_mask=None):
        mask = None if attn_mask is None else attn_mask.bool()
        return original(self, w, r, attn_mask=mask, mems=mems, head_mask=head_mask)

    monkeypatch.setattr(pt_txl.RelPartialLearnableMultiHeadAttn, "forward", forward)
