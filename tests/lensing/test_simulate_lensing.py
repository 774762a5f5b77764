"""The strong-lensing simulator (issue 16): ring geometry, class differences, LR/HR pairs, labels, determinism."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from tessera.errors import ConfigError
from tessera.simulate.config import LENSING_CLASSES, SimulateLensingConfig
from tessera.simulate.lensing import (
    LABEL_COLUMNS,
    MACRO_COLUMNS,
    block_average,
    convergence_map,
    draw_system,
    macro_system,
    pixel_grid,
    power_law_masses,
    render_clean,
    simulate_lensing,
)

SMALL = dict(size=32, pixel_scale_arcsec=0.2)  # 6.4" field at 32 px: fast, same physics


def _round_lens(theta_e: float = 1.5, source_r: float = 0.04) -> dict:
    """A circular SIE without shear, a small round source exactly behind its centre: an Einstein ring at theta_E."""
    zero = {k: 0.0 for k in MACRO_COLUMNS}
    return zero | {"theta_e": theta_e, "lens_q": 1.0, "source_r_sersic": source_r, "source_n_sersic": 1.0,
                   "source_q": 1.0}


def _radial_profile(image: np.ndarray, pixel_scale: float, step: float) -> tuple[np.ndarray, np.ndarray]:
    x, y = pixel_grid(image.shape[0], pixel_scale)
    r = np.hypot(x, y).ravel()
    edges = np.arange(0, r.max(), step)
    which = np.digitize(r, edges)
    centres, means = [], []
    for b in range(1, len(edges)):
        sel = which == b
        if sel.any():
            centres.append(r[sel].mean())
            means.append(image.ravel()[sel].mean())
    return np.asarray(centres), np.asarray(means)


def test_ring_radius_matches_the_einstein_radius():
    cfg = SimulateLensingConfig(psf_fwhm_arcsec=0.1)
    for theta_e in (1.1, 1.5):
        image = render_clean(macro_system("no_sub", _round_lens(theta_e)), cfg)
        r, prof = _radial_profile(image, cfg.pixel_scale_arcsec, step=0.05)
        ring = r[np.argmax(prof)]
        assert abs(ring - theta_e) / theta_e < 0.05, (theta_e, ring)


def test_psf_width_is_the_configured_one():
    """A wider PSF spreads the same ring over more radius (second moment of the radial profile about its peak)."""
    widths = []
    for fwhm in (0.1, 0.4):
        cfg = SimulateLensingConfig(psf_fwhm_arcsec=fwhm)
        r, prof = _radial_profile(render_clean(macro_system("no_sub", _round_lens()), cfg), 0.1, step=0.05)
        w = prof / prof.sum()
        peak = r[np.argmax(prof)]
        widths.append(np.sqrt((w * (r - peak) ** 2).sum()))
    assert widths[1] > 1.5 * widths[0]


def test_classes_share_the_macro_lens_and_differ_in_substructure():
    """The macro lens and source are drawn first from one stream, so the same stream gives every class the same
    macro lens (hence one distribution); only the substructure convergence differs."""
    cfg = SimulateLensingConfig()
    systems = {c: draw_system(c, np.random.default_rng([3, 1]), cfg) for c in LENSING_CLASSES}
    for c in ("cdm", "axion"):
        assert {k: systems[c].info[k] for k in MACRO_COLUMNS} == {k: systems["no_sub"].info[k] for k in MACRO_COLUMNS}
    kappa = {c: convergence_map(systems[c], cfg) for c in LENSING_CLASSES}
    subs = {c: convergence_map(systems[c], cfg, substructure_only=True) for c in LENSING_CLASSES}
    assert not subs["no_sub"].any()
    for c in ("cdm", "axion"):
        assert subs[c].max() > 0.01
        np.testing.assert_allclose(kappa[c] - kappa["no_sub"], subs[c], atol=1e-8)


def test_vortex_is_a_line_and_cdm_is_a_population():
    """Axion-like substructure: collinear clumps, and more convergence along the segment than across it at the
    same distance from its centre; CDM: TNFW subhalos, as many as drawn."""
    from lenstronomy.LensModel.lens_model import LensModel

    cfg = SimulateLensingConfig()
    for i in range(4):
        axion = draw_system("axion", np.random.default_rng([7, i]), cfg)
        xs = np.array([kw["center_x"] for kw in axion.sub_kwargs])
        ys = np.array([kw["center_y"] for kw in axion.sub_kwargs])
        assert np.linalg.matrix_rank(np.stack([np.diff(xs), np.diff(ys)]), tol=1e-9) == 1  # collinear clumps
        info = axion.info
        d = 0.4 * info["vortex_length"]
        a = info["vortex_angle"]
        along = [(info["vortex_x"] + s * d * np.cos(a), info["vortex_y"] + s * d * np.sin(a)) for s in (-1, 1)]
        across = [(info["vortex_x"] - s * d * np.sin(a), info["vortex_y"] + s * d * np.cos(a)) for s in (-1, 1)]
        model = LensModel(axion.sub_models)
        k_along = [model.kappa(x, y, axion.sub_kwargs) for x, y in along]
        k_across = [model.kappa(x, y, axion.sub_kwargs) for x, y in across]
        assert min(k_along) > 2 * max(k_across), (k_along, k_across)
    cdm = draw_system("cdm", np.random.default_rng([7, 0]), dataclasses.replace(cfg, sub_mean=8))
    assert cdm.info["n_sub"] == len(cdm.sub_kwargs) >= 1
    assert set(cdm.sub_models) == {"TNFW"}
    lx, ly = cdm.info["lens_x"], cdm.info["lens_y"]
    radii = [np.hypot(kw["center_x"] - lx, kw["center_y"] - ly) for kw in cdm.sub_kwargs]
    lo, hi = (f * cdm.info["theta_e"] for f in cfg.sub_annulus)
    assert all(lo <= r <= hi for r in radii)


def test_subhalo_mass_function_slope():
    m = power_law_masses(np.random.default_rng(0), 200_000, 1e9, 1e11, -1.9)
    assert m.min() >= 1e9 and m.max() <= 1e11
    # dN/dlog m ~ m^(slope + 1): the fitted log-log slope of the histogram is -0.9
    counts, edges = np.histogram(np.log10(m), bins=10)
    slope = np.polyfit(0.5 * (edges[1:] + edges[:-1]), np.log10(counts), 1)[0]
    assert slope == pytest.approx(-0.9, abs=0.05)


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("lens") / "sim"
    cfg = SimulateLensingConfig(per_class=4, seed=5, snr_range=(20.0, 20.0), **SMALL)
    simulate_lensing(cfg, out)
    return cfg, out, pd.read_csv(out / "labels.csv")


def test_labels_columns_and_truth(small_set):
    cfg, out, labels = small_set
    assert list(labels.columns) == LABEL_COLUMNS
    assert len(labels) == 4 * len(LENSING_CLASSES)
    numeric = [c for c in LABEL_COLUMNS if c not in ("path", "label", "hr_path", "lr_path")]
    assert all(pd.api.types.is_numeric_dtype(labels[c]) for c in numeric)
    assert np.isfinite(labels[numeric].to_numpy()).all()
    by = labels.groupby("label")
    assert (by.get_group("no_sub")["n_sub"] == 0).all()
    assert (by.get_group("cdm")["n_sub"] >= 1).all() and (by.get_group("cdm")["vortex_mass"] == 0).all()
    assert (by.get_group("axion")["vortex_mass"] > 0).all()
    assert labels["theta_e"].between(*cfg.theta_e_range).all()
    for rel in labels["path"]:
        assert (out / rel).is_file() and rel.split("/")[0] in LENSING_CLASSES


def test_noise_and_lr_pairs_as_configured(small_set):
    """HR noise sigma = 1/SNR about the noiseless image; LR = 4x4 block average of the noiseless HR plus noise of
    sigma/4 (the same exposure binned)."""
    cfg, out, labels = small_set
    lr_resid, hr_resid = [], []
    for row in labels.itertuples():
        image, hr, lr = (np.load(out / p) for p in (row.path, row.hr_path, row.lr_path))
        assert image.shape == hr.shape == (cfg.size, cfg.size) and lr.shape == (cfg.size // 4, cfg.size // 4)
        assert hr.min() >= 0 and hr.max() == pytest.approx(1.0)
        hr_resid.append((image - hr) / row.noise_sigma)
        lr_resid.append((lr - block_average(hr, 4)) / row.lr_noise_sigma)
        assert row.lr_noise_sigma == pytest.approx(row.noise_sigma / 4)
    for resid in (np.concatenate(hr_resid, axis=None), np.concatenate(lr_resid, axis=None)):
        assert abs(resid.mean()) < 0.1 and resid.std() == pytest.approx(1.0, rel=0.1)


def test_block_average():
    img = np.arange(16.0).reshape(4, 4)
    np.testing.assert_allclose(block_average(img, 2), [[2.5, 4.5], [10.5, 12.5]])
    with pytest.raises(ValueError, match="divisible"):
        block_average(np.zeros((5, 5)), 2)


def test_determinism(tmp_path, small_set):
    cfg, out, labels = small_set
    again = tmp_path / "again"
    simulate_lensing(cfg, again)
    assert (again / "labels.csv").read_bytes() == (out / "labels.csv").read_bytes()
    for rel in labels["path"].tolist() + labels["lr_path"].tolist():
        assert (again / rel).read_bytes() == (out / rel).read_bytes()
    other = tmp_path / "other"
    simulate_lensing(dataclasses.replace(cfg, seed=6), other)
    assert not np.array_equal(np.load(other / labels["path"][0]), np.load(out / labels["path"][0]))


def test_loads_as_a_labeled_set_and_as_deeplense_folders(tmp_path, small_set):
    """The simulated set (labels.csv) and a DeepLense-style tree (class folders of NPY arrays, (1, H, W) or (H, W))
    load through the same evaluate interface."""
    from tessera.evaluate.datasets import load_labeled

    _, out, labels = small_set
    ls = load_labeled(out)
    assert ls.classes == sorted(LENSING_CLASSES) and len(ls) == len(labels)
    assert ls.images[0].shape == (1, 32, 32) and "theta_e" in ls.meta.columns
    deeplense = tmp_path / "deeplense"
    rng = np.random.default_rng(0)
    for name in ("no", "sphere", "vort"):  # DeepLense Model I folder names
        (deeplense / name).mkdir(parents=True)
        for i in range(2):
            arr = rng.random((1, 40, 40)) if i else rng.random((40, 40))
            np.save(deeplense / name / f"{i}.npy", arr.astype(np.float32))
    dl = load_labeled(deeplense)
    assert dl.classes == ["no", "sphere", "vort"] and len(dl) == 6 and dl.images[0].shape == (1, 40, 40)


@pytest.mark.parametrize(
    "override, key",
    [
        (dict(classes=("no_sub", "wdm")), "classes"),
        (dict(size=64, lr_factor=3), "lr_factor"),
        (dict(size=32), "theta_e_range"),  # a 1.6" ring does not fit a 3.2" field
        (dict(axis_ratio_range=(0.5, 1.2)), "axis_ratio_range"),
        (dict(vortex_clumps=1), "vortex_clumps"),
        (dict(z_lens=1.5), "z_lens"),
    ],
)
def test_bad_config_is_one_line_naming_the_key(override, key):
    with pytest.raises(ConfigError, match=key) as err:
        SimulateLensingConfig(**override).validate()
    assert "\n" not in str(err.value)


def test_cli_simulate_lensing(tmp_path):
    from tessera.cli import main

    out = tmp_path / "cli"
    rc = main(["simulate", "lensing", "--out", str(out), "--per-class", "1", "--size", "32", "--seed", "2", "--quiet",
               "pixel_scale_arcsec=0.2"])
    assert rc == 0
    labels = pd.read_csv(out / "labels.csv")
    assert sorted(labels["label"]) == sorted(LENSING_CLASSES)
    assert "seed: 2" in (out / "config.yaml").read_text()
