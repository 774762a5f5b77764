"""Labeled morphology cutouts: classes and counts, truth in the info, variation, determinism, physics."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from tessera.errors import ConfigError
from tessera.simulate import MORPHOLOGY_CLASSES, SimulateMorphologyConfig, render_cutout, simulate_morphology


def test_all_classes_with_right_counts(tmp_path):
    cfg = SimulateMorphologyConfig(size=64, per_class=3, seed=5)
    labels_path = simulate_morphology(cfg, tmp_path / "m")
    assert labels_path == tmp_path / "m" / "labels.csv"
    labels = pd.read_csv(labels_path)
    assert list(labels.columns[:2]) == ["path", "label"]
    assert labels["label"].value_counts().to_dict() == {c: 3 for c in MORPHOLOGY_CLASSES}
    assert set(labels.loc[labels.label == "Bent", "subclass"]) <= {"WAT", "NAT"}
    for rel, label in zip(labels["path"], labels["label"]):
        path = labels_path.parent / rel  # paths are relative to the CSV
        with fits.open(path) as hdul:
            data, header = hdul[0].data, hdul[0].header
        assert data.shape == (64, 64) and data.dtype.byteorder in (">", "=", "|") and np.isfinite(data).all()
        assert header["BUNIT"] == "JY/BEAM" and "BMAJ" in header and WCS(header).has_celestial
        assert rel.startswith(f"{label}/")
    assert (tmp_path / "m" / "config.yaml").exists()


def test_same_seed_same_bytes(tmp_path):
    cfg = SimulateMorphologyConfig(size=48, per_class=2, seed=3)
    for name in ("a", "b"):
        simulate_morphology(cfg, tmp_path / name)
    simulate_morphology(SimulateMorphologyConfig(size=48, per_class=2, seed=4), tmp_path / "c")

    def digest(d):
        return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.rglob("*.*"))}

    a, b, c = digest(tmp_path / "a"), digest(tmp_path / "b"), digest(tmp_path / "c")
    assert a == b and len(a) == 4 * 2 + 2
    assert a["labels.csv"] != c["labels.csv"] and a["FRI/FRI_00000.fits"] != c["FRI/FRI_00000.fits"]


@pytest.mark.parametrize("label", MORPHOLOGY_CLASSES)
def test_cutout_truth_matches_image(label):
    """The drawn SNR is the image's: peak ~ snr x noise rms; the noise away from the source has that rms."""
    cfg = SimulateMorphologyConfig(size=96, contaminants_mean=0.0, snr_range=(50.0, 100.0))
    image, info = render_cutout(label, 96, np.random.default_rng(0), cfg)
    assert image.shape == (96, 96) and image.dtype == np.float32
    assert info["label"] == label
    assert info["peak_jy_beam"] == pytest.approx(info["snr"] * info["noise_rms_jy"], rel=1e-9)
    assert image.max() == pytest.approx(info["peak_jy_beam"], rel=0.1)
    assert info["flux_jy"] >= info["peak_jy_beam"] * 0.999  # flux (Jy) >= peak (Jy/beam) for any source
    if label == "Compact":
        assert info["size_arcsec"] <= 0.6 * cfg.beam_fwhm_arcsec + 1e-9
    else:
        lo, hi = cfg.extent_fraction_range
        assert lo * 96 * cfg.pixel_scale_arcsec - 1e-6 <= info["size_arcsec"] <= hi * 96 * cfg.pixel_scale_arcsec + 1e-6


def _profile_concentration(label: str, n: int = 12) -> float:
    """Mean fraction of a noiseless cutout's flux within 2 beams of the host (core-brightened vs edge-brightened)."""
    cfg = SimulateMorphologyConfig(size=128, contaminants_mean=0.0, snr_range=(1e4, 1e4), noise_factor_range=(0.01,
        0.01),
                                   extent_fraction_range=(0.6, 0.7))  # fmt: skip
    yy, xx = np.mgrid[0:128, 0:128]
    fractions = []
    for i in range(n):
        image, info = render_cutout(label, 128, np.random.default_rng([9, i]), cfg)
        near = np.hypot(xx - info["x_pix"], yy - info["y_pix"]) < 2 * cfg.beam_fwhm_px
        fractions.append(image[near].sum() / image.sum())
    return float(np.mean(fractions))


def test_fri_is_core_brightened_and_frii_edge_brightened():
    """The physics that makes the labels learnable: FRI emission is concentrated at the core, FRII at the ends."""
    assert _profile_concentration("FRI") > 2 * _profile_concentration("FRII")


def test_cutouts_vary():
    cfg = SimulateMorphologyConfig(size=64)
    infos = [render_cutout("FRII", 64, np.random.default_rng(i), cfg)[1] for i in range(20)]
    for key in ("snr", "noise_rms_jy", "size_arcsec", "angle_deg", "x_pix"):
        values = np.array([info[key] for info in infos])
        assert values.std() > 0.05 * abs(values.mean()), key
    shifts = np.array([info["x_pix"] for info in infos])
    assert np.abs(shifts - 31.5).max() < 64 / 2


def test_invalid_morphology_configs():
    with pytest.raises(ConfigError, match="per_class"):
        SimulateMorphologyConfig(per_class=0).validate()
    with pytest.raises(ConfigError, match="classes"):
        SimulateMorphologyConfig(classes=("FRI", "Spiral")).validate()
    with pytest.raises(ConfigError, match="size"):
        SimulateMorphologyConfig(size=16).validate()
    with pytest.raises(ValueError, match="unknown class"):
        render_cutout("Spiral", 64, np.random.default_rng(0))


@pytest.mark.realdata
def test_emission_area_comparable_to_real_first_galaxies(shared_data):
    """Our sources cover a sky area (arcsec^2 above the noise) like the same classes in real FIRST images."""
    from PIL import Image

    labels = pd.read_csv(shared_data / "first_radio_galaxies" / "labels.csv")
    assert set(labels["label"]) == set(MORPHOLOGY_CLASSES)
    first_pixel_arcsec = 1.8
    real = []
    for rel in labels.groupby("label").head(4)["path"]:
        arr = np.asarray(Image.open(shared_data / "first_radio_galaxies" / rel).convert("L"), dtype=float)
        real.append((arr > 0).sum() * first_pixel_arcsec**2)  # FIRST PNGs: sub-noise emission already clipped to 0
    cfg = SimulateMorphologyConfig(size=96, contaminants_mean=0.0)
    ours = []
    for k, label in enumerate(MORPHOLOGY_CLASSES):
        for i in range(4):
            image, info = render_cutout(label, 96, np.random.default_rng([k, i]), cfg)
            ours.append((image > 3 * info["noise_rms_jy"]).sum() * cfg.pixel_scale_arcsec**2)  # clip at 3 sigma
    assert 0.2 < np.median(ours) / np.median(real) < 5
