"""benchmarks/feature_spread.py: the spread measures on planted features, and the script on real FIRST images."""

from __future__ import annotations

import numpy as np
import pytest

from tests._benchmarks import benchmark_module


def test_spread_measures_on_planted_features():
    with benchmark_module("feature_spread") as fs:
        rng = np.random.default_rng(0)
        labels = np.repeat([0, 1], 200)
        isotropic = rng.normal(size=(400, 16))
        assert fs.effective_rank(isotropic) > 13  # near full rank
        one_direction = np.outer(rng.normal(size=400), rng.normal(size=16)) + 1e-3 * isotropic
        assert fs.effective_rank(one_direction) < 1.5
        separated = isotropic + 3.0 * labels[:, None]
        assert fs.class_variance_ratio(separated, labels) > 10 * fs.class_variance_ratio(isotropic, labels)
        offset = fs.spread(isotropic + 50.0, labels)  # a common offset: one dominant uncentred direction
        assert offset["top_direction_energy_share"] > 0.95 and offset["mean_pairwise_cosine"] > 0.95
        assert fs.spread(isotropic, labels)["mean_pairwise_cosine"] == pytest.approx(0.0, abs=0.05)


def test_script_on_first_images(shared_data, capsys):
    with benchmark_module("feature_spread") as fs:
        out = fs.main(["--data", f"first:{shared_data / 'first_radio_galaxies'}", "--center-crop", "128",
                       "--model", "random:resnet_micro_32"])
    row = out["models"]["random:resnet_micro_32"]  # 1335: one of the 1336 PNGs is blank and excluded
    assert out["images"] == 1335 and out["center_crop"] == 128 and row["dim"] == 16
    assert 1.0 <= row["effective_rank_standardized"] <= 16.0 and row["class_variance_ratio"] > 0
    assert '"effective_rank_standardized"' in capsys.readouterr().out
