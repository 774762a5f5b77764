"""The demo's labeled set stays learnable from the pixels: simple radio-astronomy statistics, measured on noisy
cutouts at the demo's size and the default config, separate the classes (a regression guard on the defaults)."""

from __future__ import annotations

import numpy as np
import pytest

from tessera.simulate import MORPHOLOGY_CLASSES, SimulateMorphologyConfig, render_cutout

SIZE = 96  # tessera.demo.BUDGETS["full"].cutout_size
N = 12


def _statistics(label: str, cfg: SimulateMorphologyConfig) -> dict[str, np.ndarray]:
    """Per cutout: where the brightest pixel lies (distance from the host / half the largest angular size), the
    integrated-to-peak flux ratio (1 for an unresolved source), and the area above 5 sigma in beams."""
    k = MORPHOLOGY_CLASSES.index(label)
    beam_area_px = np.pi / (4 * np.log(2)) * cfg.beam_fwhm_px**2
    peak_r, resolution, area = [], [], []
    for i in range(N):
        image, info = render_cutout(label, SIZE, np.random.default_rng([20, k, i]), cfg)
        y, x = np.unravel_index(image.argmax(), image.shape)
        half_las = max(info["size_arcsec"] / cfg.pixel_scale_arcsec / 2, 1e-9)
        peak_r.append(np.hypot(x - info["x_pix"], y - info["y_pix"]) / half_las)
        detected = image > 5 * info["noise_rms_jy"]
        resolution.append(image[detected].sum() / beam_area_px / image.max())  # S_int / S_peak
        area.append(detected.sum() / beam_area_px)
    return {"peak_r": np.array(peak_r), "resolution": np.array(resolution), "area": np.array(area)}


@pytest.fixture(scope="module")
def stats():
    cfg = SimulateMorphologyConfig(size=SIZE)
    return {label: _statistics(label, cfg) for label in MORPHOLOGY_CLASSES}


def test_fanaroff_riley_criterion_separates_fri_from_frii(stats):
    """FR 1974: the brightness peaks near the core in FRI, at the outer ends (hotspots) in FRII."""
    assert np.all(stats["FRI"]["peak_r"] < 0.3)
    assert np.all(stats["FRII"]["peak_r"] > 0.7)


def test_compact_sources_are_unresolved_and_extended_ones_resolved(stats):
    """S_int / S_peak ~ 1 for a point source seen through the beam; several times that for a resolved galaxy."""
    assert np.all(stats["Compact"]["resolution"] < 1.6)
    for label in ("FRI", "FRII", "Bent"):
        assert np.all(stats[label]["resolution"] > 1.6), label
        assert np.median(stats[label]["resolution"]) > 2.5, label


def test_extended_sources_cover_many_beams_above_the_noise(stats):
    """What a classifier can see: every extended galaxy covers >= 5 beams above 5 sigma (on this sample the
    pre-issue-12 defaults, SNR from 8 and extents from 0.3 of the side, gave FRII and Bent galaxies of < 2 beams)."""
    for label in ("FRI", "FRII", "Bent"):
        assert stats[label]["area"].min() >= 5, (label, stats[label]["area"].min())
