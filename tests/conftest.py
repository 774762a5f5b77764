"""Shared fixtures. Tests never touch the network (HF_HUB_OFFLINE) and read real data in place from ../shared/data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("TESSERA_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real-data folder (FIRST PNGs, FR-DEEP FITS, SKA SDC1 crop); tests using it skip where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (set TESSERA_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(autouse=True, scope="session")
def _few_threads():
    """Two CI cores are shared by two xdist workers: one torch thread each avoids oversubscription."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        return
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _tessera_cache(tmp_path_factory, monkeypatch):
    """Archive extraction (MiraBest .tar.gz) goes to a per-test cache, never to the user's ~/.cache/tessera."""
    monkeypatch.setenv("TESSERA_CACHE", str(tmp_path_factory.mktemp("tessera_cache")))
