"""Tiny cutout stores for the engine tests: synthetic radio-like blobs (always available) and real FIRST images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def make_blob_arrays(folder: Path, count: int, size: int = 128, seed: int = 0) -> list[Path]:
    """``count`` .npy images (size, size): a few Gaussian sources of random width on faint noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    paths = []
    for i in range(count):
        img = rng.normal(0, 0.01, (size, size)).astype(np.float32)
        for _ in range(rng.integers(3, 7)):
            cy, cx = rng.uniform(8, size - 8, 2)
            sy, sx = rng.uniform(1.5, 6.0, 2)
            img += rng.uniform(0.3, 1.0) * np.exp(-((yy - cy) ** 2 / (2 * sy**2) + (xx - cx) ** 2 / (2 * sx**2)))
        path = folder / f"blobs_{i:03d}.npy"
        np.save(path, img)
        paths.append(path)
    return paths


def build_store(inputs: list[Path], out: Path, tile: int) -> Path:
    from tessera.corpus.config import IngestConfig
    from tessera.corpus.ingest import run_ingest

    run_ingest([str(p) for p in inputs], out, IngestConfig(tile=tile, min_tile=min(tile, 64)), progress=False)
    return out


@pytest.fixture(scope="session")
def blob_store(tmp_path_factory) -> Path:
    """A synthetic CutoutStore of 32 single-channel 64x64 cutouts (8 arrays of 128x128, tiled)."""
    root = tmp_path_factory.mktemp("blob_store")
    arrays = make_blob_arrays(root, 8)
    return build_store(arrays, root / "store", tile=64)


@pytest.fixture(scope="session")
def first_store(shared_data, tmp_path_factory) -> Path:
    """A real CutoutStore: 24 FIRST radio-galaxy images (300x300 PNG, kept whole)."""
    pngs = sorted((shared_data / "first_radio_galaxies").rglob("*.png"))[:24]
    root = tmp_path_factory.mktemp("first_store")
    return build_store(pngs, root / "store", tile=512)
