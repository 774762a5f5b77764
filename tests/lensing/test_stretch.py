"""The min-max stretch for strong lenses (issue 16's calibration): ZScale saturates an Einstein ring, so the
lensing workflow ingests and evaluates with ``stretch=minmax``, which keeps the ring's brightness profile."""

from __future__ import annotations

import numpy as np
import pytest

from tessera.corpus.normalize import minmax_normalize, normalize, zscale_normalize
from tessera.errors import ConfigError


def _ring(size: int = 32, sigma: float = 0.02, seed: int = 0) -> np.ndarray:
    """A noisy ring whose brightness varies along it (peak ~1, noise sigma): (size, size)."""
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    r, phi = np.hypot(xx, yy), np.arctan2(yy, xx)
    ring = np.exp(-((r - size / 4) ** 2) / 2.0) * (0.6 + 0.4 * np.cos(phi))
    return (ring + np.random.default_rng(seed).normal(0, sigma, ring.shape)).astype(np.float32)


def test_minmax_is_the_linear_map_of_the_finite_range():
    a = np.array([[-1.0, 0.0], [1.0, 3.0]], dtype=np.float32)
    np.testing.assert_allclose(minmax_normalize(a), [[0.0, 0.25], [0.5, 1.0]])
    np.testing.assert_allclose(minmax_normalize(a[None]), [[[0.0, 0.25], [0.5, 1.0]]])  # (C, H, W) too
    b = a.copy()
    b[0, 0] = np.nan
    np.testing.assert_allclose(minmax_normalize(b), [[0.0, 0.0], [1 / 3, 1.0]])  # NaN -> 0, range of the finite
    assert not minmax_normalize(np.full((3, 3), 5.0)).any()  # constant -> zeros
    np.testing.assert_array_equal(normalize(a, "zscale"), zscale_normalize(a))
    with pytest.raises(ValueError, match="stretch"):
        normalize(a, "asinh")


def test_zscale_saturates_a_ring_and_minmax_keeps_its_profile():
    img = _ring()
    ring = img > 0.3
    z, m = zscale_normalize(img), minmax_normalize(img)
    assert (z[ring] > 0.99).mean() > 0.9  # ZScale: the ring is flat at 1, its brightness variation erased
    # min-max: the bright and faint halves of the ring stay apart (cos(phi) modulation)
    yy, xx = np.mgrid[:32, :32] - 15.5
    bright, faint = ring & (xx > 4), ring & (xx < -4)
    assert m[bright].mean() > m[faint].mean() + 0.2
    assert np.corrcoef(m[ring], img[ring])[0, 1] > 0.999  # a linear map of the raw values


def test_labeled_set_and_ingest_use_the_configured_stretch(tmp_path):
    from tessera.cli import main
    from tessera.corpus.store import CutoutStore
    from tessera.evaluate.datasets import load_labeled

    folder = tmp_path / "set"
    for label in ("a", "b"):
        (folder / label).mkdir(parents=True)
        for i in range(2):
            np.save(folder / label / f"{i}.npy", _ring(seed=i + (label == "b") * 10))
    zs, mm = load_labeled(folder), load_labeled(folder, stretch="minmax")
    raw = _ring(seed=0)
    np.testing.assert_allclose(mm.images[0][0].astype(np.float32), minmax_normalize(raw), atol=1e-3)
    np.testing.assert_allclose(zs.images[0][0].astype(np.float32), zscale_normalize(raw), atol=1e-3)
    assert zs.data_key != mm.data_key  # cached features of one stretch are never reused for the other

    store = tmp_path / "store"
    assert main(["ingest", str(folder / "a"), "--out", str(store), "--tile", "32", "--quiet", "stretch=minmax"]) == 0
    cutouts = CutoutStore(store)
    assert len(cutouts) == 2
    got = sorted(float(cutouts.get_array(i).astype(np.float32).mean()) for i in range(len(cutouts)))
    want = sorted(float(minmax_normalize(_ring(seed=i)).mean()) for i in range(2))
    np.testing.assert_allclose(got, want, atol=1e-3)


def test_bad_stretch_is_one_line_naming_the_key():
    from tessera.corpus.config import IngestConfig
    from tessera.evaluate.config import EvalConfig
    from tessera.evaluate.benchmarks import load_eval_data

    for cfg in (EvalConfig(stretch="asinh"), IngestConfig(stretch="asinh")):
        with pytest.raises(ConfigError, match="'stretch'") as err:
            cfg.validate()
        assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="stretch.*CSV/folder"):
        load_eval_data("first:/nowhere", stretch="minmax")
