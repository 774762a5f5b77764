"""``tessera simulate pairs``: the spectral model, the image <-> spectrum coupling, determinism, flags, errors."""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from tessera.errors import ConfigError
from tessera.simulate.pairs import SimulatePairsConfig, model_spectrum, peak_frequency, simulate_pairs


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    out = tmp_path_factory.mktemp("pairs") / "sim"
    simulate_pairs(SimulatePairsConfig(n=150, seed=1), out)
    return out, pd.read_csv(out / "pairs.csv")


def test_model_is_thick_below_and_thin_above_the_turnover_and_normalized_at_1400():
    nu = np.array([1.0, 2.0, 1400.0, 1e5, 2e5])
    s = model_spectrum(nu, 0.5, -0.7, 0.0, 30.0)
    assert s[2] == pytest.approx(0.5)
    assert np.log(s[1] / s[0]) / np.log(2) == pytest.approx(2.5, abs=1e-3)  # optically thick: S ~ nu^2.5
    assert np.log(s[4] / s[3]) / np.log(2) == pytest.approx(-0.7, abs=1e-3)  # optically thin: S ~ nu^alpha
    # with negative curvature the peak moves up from a thin-index-only turnover, never below it
    assert peak_frequency(-0.7, -0.1, 30.0) > peak_frequency(-0.7, 0.0, 30.0) > 10.0


def test_steep_spectra_are_extended_flat_are_compact_peaked_are_small(sim):
    _, d = sim
    steep, flat, peaked = (d[d.spectral_class == c] for c in ("steep", "flat", "peaked"))
    assert len(steep) > 40 and len(flat) > 20 and len(peaked) > 10
    assert set(steep.label) <= {"FRI", "FRII", "Bent"} and set(flat.label) == {"Compact"}
    assert steep.spectral_index.median() == pytest.approx(-0.75, abs=0.06)
    assert flat.spectral_index.median() > -0.3
    assert peaked.angular_size_arcsec.max() < steep.angular_size_arcsec.min()
    # the band's peak: steep and flat turn over below 100 MHz or peak high; peaked ones inside the band
    assert peaked.peak_freq_mhz.between(100, 10000).mean() > 0.8
    assert (steep.peak_freq_mhz < 100).all()


def test_peaked_turnover_falls_as_size_grows(sim):
    _, d = sim
    peaked = d[d.spectral_class == "peaked"]
    rho = spearmanr(np.log(peaked.angular_size_arcsec.clip(lower=0.3)), np.log(peaked.peak_freq_mhz))[0]
    assert rho < -0.7
    # the fitted slope follows O'Dea 1998's -0.65 (0.3" floor, scatter 0.15 dex)
    big = peaked[peaked.angular_size_arcsec > 0.3]
    slope = np.polyfit(np.log10(big.angular_size_arcsec), np.log10(big.peak_freq_mhz), 1)[0]
    assert slope == pytest.approx(-0.65, abs=0.15)


def test_spectrum_matches_the_image_flux_at_1400_mhz(sim):
    out, d = sim
    nu = pd.read_csv(out / "frequencies_mhz.csv").frequency_mhz.to_numpy()
    assert len(nu) == 200 and nu[0] == pytest.approx(100) and nu[-1] == pytest.approx(10000)
    i = int(np.argmin(np.abs(np.log(nu / 1400.0))))
    spectra = np.stack([np.load(out / p)[0] for p in d.path_b])
    bright = d.total_flux_jy.to_numpy() > 0.02  # calibration error (3 %) dominates the noise floor
    ok = np.isfinite(spectra[:, i]) & bright
    ratio = spectra[ok, i] / d.total_flux_jy.to_numpy()[ok]
    assert np.median(np.abs(np.log(ratio))) < 0.1
    assert np.isnan(spectra).any(axis=1).mean() > 0.2  # RFI bands and flagged channels are NaN


def test_same_seed_same_bytes_and_more_sources_keep_earlier_ones(tmp_path):
    simulate_pairs(SimulatePairsConfig(n=4, seed=5), tmp_path / "a")
    simulate_pairs(SimulatePairsConfig(n=6, seed=5), tmp_path / "b")
    for name in ("images/src_00003.fits", "spectra/src_00003.npy"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    a, b = pd.read_csv(tmp_path / "a" / "pairs.csv"), pd.read_csv(tmp_path / "b" / "pairs.csv")
    pd.testing.assert_frame_equal(a, b.iloc[:4])
    cat_a, cat_b = pd.read_csv(tmp_path / "a" / "images.csv"), pd.read_csv(tmp_path / "a" / "spectra.csv")
    sep = np.hypot((cat_a.ra_deg - cat_b.ra_deg) * np.cos(np.radians(cat_a.dec_deg)), cat_a.dec_deg - cat_b.dec_deg)
    assert (sep * 3600 <= 1.0 + 1e-6).all()  # position_error_arcsec


@pytest.mark.parametrize("key,value", [("channels", 20), ("class_fractions", (0.5, 0.5, 0.5)), ("n", 0),
                                       ("rfi_width_range", (0.2, 0.6))])
def test_bad_config_is_a_config_error_naming_the_key(tmp_path, key, value):
    with pytest.raises(ConfigError, match=f"'{key}'"):
        simulate_pairs(SimulatePairsConfig(**{key: value}), tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_cli_writes_the_pairs(tmp_path, capsys):
    from tessera.cli import main

    assert main(["simulate", "pairs", "--out", str(tmp_path / "p"), "--n", "3", "--seed", "2"]) == 0
    d = pd.read_csv(tmp_path / "p" / "pairs.csv")
    assert len(d) == 3 and list(d.columns[:2]) == ["path_a", "path_b"]
    labels = pd.read_csv(tmp_path / "p" / "labels.csv")  # the images as tessera evaluate reads a labeled set
    assert labels.path.tolist() == d.path_a.tolist() and labels.spectral_index.tolist() == d.spectral_index.tolist()
    assert "3 image/spectrum pairs" in capsys.readouterr().out
