"""ZScale normalization (seed 000 §3.2) against astropy's ZScaleInterval applied directly."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.visualization import ZScaleInterval

from tessera.corpus.normalize import zscale_normalize
from tests.corpus._synth import sky


def test_matches_astropy_zscale_interval(rng):
    img = sky(rng, 96, 80)
    expected = ZScaleInterval()(img, clip=True).astype(np.float32)
    out = zscale_normalize(img)
    assert out.dtype == np.float32 and out.shape == img.shape
    np.testing.assert_allclose(out, expected, atol=1e-6)
    assert 0.0 < out.mean() < 1.0  # a real stretch, not all clipped


def test_non_finite_pixels_become_zero_and_limits_ignore_them(rng):
    img = sky(rng, 64, 64)
    bad = img.copy()
    bad[:5] = np.nan
    bad[10, 10] = np.inf
    out = zscale_normalize(bad)
    assert np.isfinite(out).all()
    assert (out[:5] == 0).all() and out[10, 10] == 0
    # Limits come from the finite pixels only, exactly as astropy computes them.
    finite = bad[np.isfinite(bad)]
    vmin, vmax = ZScaleInterval().get_limits(finite)
    ok = np.isfinite(bad)
    expected = np.clip((bad[ok] - vmin) / (vmax - vmin), 0, 1)
    np.testing.assert_allclose(out[ok], expected, atol=1e-6)


@pytest.mark.parametrize("value", [0.0, 3.5, -2.0])
def test_constant_image_maps_to_zeros(value):
    out = zscale_normalize(np.full((32, 40), value, dtype=np.float32))
    assert out.shape == (32, 40) and not out.any()


def test_all_nan_maps_to_zeros():
    assert not zscale_normalize(np.full((8, 8), np.nan)).any()


def test_channels_are_normalized_independently(rng):
    a, b = sky(rng, 48, 48), sky(rng, 48, 48) * 1000 + 7
    out = zscale_normalize(np.stack([a, b]))
    assert out.shape == (2, 48, 48)
    np.testing.assert_allclose(out[0], zscale_normalize(a), atol=1e-6)
    np.testing.assert_allclose(out[1], zscale_normalize(b), atol=1e-6)


def test_range_and_rejects_bad_shapes(rng):
    out = zscale_normalize(rng.normal(size=(3, 20, 20)) * 1e6)
    assert out.min() >= 0.0 and out.max() <= 1.0
    with pytest.raises(ValueError):
        zscale_normalize(np.zeros(5))


def test_degenerate_zscale_falls_back_to_full_range():
    # Mostly zero (sparse FIRST-like) image: ZScale's sampled limits collapse to 0..0; we stretch
    # over the finite range instead of producing a binary mask.
    img = np.zeros((100, 100), dtype=np.float32)
    img[50, 50:60] = np.linspace(1, 10, 10)
    out = zscale_normalize(img)
    assert out[50, 59] == pytest.approx(1.0) and 0 < out[50, 50] < 0.2


def test_real_fits_cutout(shared_data):
    from tessera.corpus.readers import read_image

    img = read_image(shared_data / "frdeep_fits" / "FIRST" / "1408+0050_II.fits")
    out = zscale_normalize(img)
    np.testing.assert_allclose(out, np.nan_to_num(ZScaleInterval()(img, clip=True)), atol=1e-6)
