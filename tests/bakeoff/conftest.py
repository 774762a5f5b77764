"""A tiny synthetic cutout store for the bake-off tests (the engine tests' blob store)."""

from __future__ import annotations

import pytest

from tests.train.conftest import build_store, make_blob_arrays


@pytest.fixture(scope="session")
def blob_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("bakeoff_store")
    return build_store(make_blob_arrays(root, 8), root / "store", tile=64)
