"""Tiling geometry and the seed 000 §3.1 filters."""

from __future__ import annotations

import numpy as np
import pytest

from tessera.corpus.filters import drop_reason, pixel_stats
from tessera.corpus.tiling import plan_tiles, tile_origins


def test_non_overlapping_tiles_drop_partial_edges():
    assert tile_origins(1030, 512, 512) == [0, 512]
    boxes = plan_tiles(1030, 700, 512, 512, 64)
    assert boxes == [(0, 0, 512, 512), (512, 0, 512, 512)]


def test_stride_gives_overlap():
    assert tile_origins(1024, 512, 256) == [0, 256, 512]
    assert len(plan_tiles(1024, 1024, 512, 256, 64)) == 9


def test_small_planes_kept_whole_or_skipped():
    assert plan_tiles(300, 300, 512, 512, 64) == [(0, 0, 300, 300)]
    assert plan_tiles(600, 300, 512, 512, 64) == [(0, 0, 600, 300)]
    assert plan_tiles(40, 300, 512, 512, 64) == "too_small"


@pytest.mark.parametrize(
    "tile, reason",
    [
        (np.array([[[1.0, np.nan], [0.0, 2.0]]]), "nan_or_inf"),
        (np.array([[[1.0, np.inf], [0.0, 2.0]]]), "nan_or_inf"),
        (np.array([[[0.0, np.nan], [0.0, 0.0]]]), "nan_or_inf"),
        (np.zeros((1, 4, 4)), "all_zero"),
        (np.full((2, 4, 4), -3.0), "constant"),
        (np.arange(16.0).reshape(1, 4, 4), None),
    ],
)
def test_drop_reasons(tile, reason):
    assert drop_reason(tile) == reason


def test_pixel_stats_are_raw_values(rng):
    tile = rng.normal(5.0, 2.0, size=(1, 32, 32)).astype(np.float32)
    stats = pixel_stats(tile)
    assert stats["raw_min"] == pytest.approx(float(tile.min()))
    assert stats["raw_max"] == pytest.approx(float(tile.max()))
    assert stats["raw_mean"] == pytest.approx(float(tile.mean()), rel=1e-6)
    assert stats["raw_std"] == pytest.approx(float(tile.std()), rel=1e-5)
    assert stats["raw_median"] == pytest.approx(float(np.median(tile)))
