"""Radio mosaics: WCS and header, noise level, recoverable fluxes, artefacts, cube axes, determinism."""

from __future__ import annotations

import hashlib
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from tessera.errors import ConfigError
from tessera.simulate import SimulateRadioConfig, render_mosaic, simulate_radio
from tessera.simulate.sky import CATALOGUE_COLUMNS
from tessera.simulate.sources import beam_area_px, beam_sigmas_px

SMALL = dict(size=256, cube_axis_prob=0.0)


def _quiet_sky(**kw) -> SimulateRadioConfig:
    """No sources and no coverage edge: only beam-convolved thermal noise."""
    return SimulateRadioConfig(**{**SMALL, "compact_density_deg2": 0.0, "extended_density_deg2": 0.0,
                                  "nan_border_prob": 0.0, **kw})  # fmt: skip


def test_header_has_radio_keys_and_wcs_round_trips():
    cfg = SimulateRadioConfig(**SMALL, projection="SIN", beam_minor_arcsec=5.0, beam_pa_deg=30.0)
    image, header, cat = render_mosaic(cfg, np.random.default_rng(0))
    assert image.dtype == np.float32 and image.shape == (256, 256)
    assert header["BUNIT"] == "JY/BEAM"
    assert header["BMAJ"] == pytest.approx(7.5 / 3600) and header["BMIN"] == pytest.approx(5.0 / 3600)
    assert header["BPA"] == 30.0 and header["RESTFRQ"] == 1.4e9
    assert "DATE" not in header and "DATE-OBS" not in header
    wcs = WCS(header)
    assert wcs.wcs.ctype[0] == "RA---SIN" and wcs.wcs.ctype[1] == "DEC--SIN"
    assert wcs.has_celestial
    pix = np.array([[0.0, 0.0], [255.0, 255.0], [17.3, 200.9], [128.0, 3.0]])
    world = wcs.all_pix2world(pix, 0)
    back = wcs.all_world2pix(world, 0)
    np.testing.assert_allclose(back, pix, atol=1e-6)
    # Pixel scale: one pixel step along the y axis is pixel_scale_arcsec on the sky.
    sep = np.hypot(*(np.subtract(*wcs.all_pix2world([[128, 128], [128, 129]], 0)) * [0, 1]))
    assert sep * 3600 == pytest.approx(1.5, rel=1e-3)
    # The catalogue's RA/Dec are the WCS of its pixel positions.
    assert list(cat.columns) == CATALOGUE_COLUMNS and len(cat) > 0
    ra, dec = wcs.all_pix2world(cat["x_pix"], cat["y_pix"], 0)
    np.testing.assert_allclose(cat["ra_deg"], np.asarray(ra) % 360, atol=1e-9)
    np.testing.assert_allclose(cat["dec_deg"], dec, atol=1e-9)


def test_tan_projection():
    _, header, _ = render_mosaic(SimulateRadioConfig(**SMALL, projection="TAN"), np.random.default_rng(0))
    assert WCS(header).wcs.ctype[0] == "RA---TAN"


@pytest.mark.parametrize("rms", [2e-5, 1e-3])
def test_noise_rms_matches_request(rms):
    image, _, _ = render_mosaic(_quiet_sky(noise_rms_jy=rms), np.random.default_rng(1))
    assert np.isfinite(image).all()
    mad_rms = 1.4826 * np.median(np.abs(image - np.median(image)))
    assert mad_rms == pytest.approx(rms, rel=0.10)
    assert float(image.std()) == pytest.approx(rms, rel=0.10)


def test_noise_is_correlated_on_the_beam_scale():
    """Restored images have beam-correlated noise: neighbouring pixels correlate as the beam predicts."""
    image, _, _ = render_mosaic(_quiet_sky(), np.random.default_rng(2))
    corr = np.corrcoef(image[:, :-1].ravel(), image[:, 1:].ravel())[0, 1]
    sigma = 7.5 / 1.5 / (2 * math.sqrt(2 * math.log(2)))
    # Autocorrelation of a Gaussian beam convolved with itself at lag 1: exp(-1 / (4 sigma^2)).
    assert corr == pytest.approx(math.exp(-1 / (4 * sigma**2)), abs=0.03)


def test_compact_fluxes_are_recoverable():
    """Isolated compact sources: pixel peak ~ catalogue peak, and aperture sum / beam area ~ integrated flux."""
    cfg = SimulateRadioConfig(**SMALL, extended_density_deg2=0.0, nan_border_prob=0.0, compact_density_deg2=4000,
                              flux_min_jy=2e-3, flux_max_jy=2e-2, sidelobe_snr=1e9)  # fmt: skip
    image, _, cat = render_mosaic(cfg, np.random.default_rng(3))
    sig_a, sig_b = beam_sigmas_px(cfg.beam_fwhm_arcsec, cfg.beam_minor, cfg.pixel_scale_arcsec)
    area = beam_area_px(sig_a, sig_b)
    xy = cat[["x_pix", "y_pix"]].to_numpy()
    dist = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1)) + np.eye(len(xy)) * 1e9
    isolated = (dist.min(1) > 30) & (xy.min(1) > 15) & (xy.max(1) < 240)
    assert isolated.sum() >= 5
    yy, xx = np.mgrid[0:256, 0:256]
    for (x, y), peak, flux in zip(xy[isolated], cat["peak_jy_beam"][isolated], cat["flux_jy"][isolated]):
        ix, iy = int(round(x)), int(round(y))
        measured_peak = image[iy - 2 : iy + 3, ix - 2 : ix + 3].max()
        assert measured_peak == pytest.approx(peak, rel=0.12)
        aperture = np.hypot(xx - x, yy - y) < 12
        assert image[aperture].sum() / area == pytest.approx(flux, rel=0.12)
        assert peak <= flux * 1.0001  # a resolved source never peaks above its integrated flux


def test_extended_sources_flux_and_peak_truth():
    """An extended source's catalogue flux is what the image holds; its peak is the noise-free maximum."""
    cfg = SimulateRadioConfig(size=384, cube_axis_prob=0.0, compact_density_deg2=0.0, nan_border_prob=0.0,
                              extended_density_deg2=40.0, extended_size_arcsec=(60.0, 120.0), sidelobe_snr=1e9,
                              noise_rms_jy=1e-6, extended_flux_min_jy=0.05, extended_flux_max_jy=0.1)  # fmt: skip
    image, _, cat = render_mosaic(cfg, np.random.default_rng(4))
    sig_a, sig_b = beam_sigmas_px(cfg.beam_fwhm_arcsec, cfg.beam_minor, cfg.pixel_scale_arcsec)
    assert len(cat) >= 1 and set(cat["class"]) <= {"FRI", "FRII", "Bent"}
    # Sources may overlap, so compare totals and the brightest peak. (LAS <= 80 px; with this seed every source
    # lies > 40 px from the edge, so no flux falls outside the image.)
    assert ((cat[["x_pix", "y_pix"]] > 45) & (cat[["x_pix", "y_pix"]] < 339)).all().all()
    assert image.sum() / beam_area_px(sig_a, sig_b) == pytest.approx(cat["flux_jy"].sum(), rel=0.02)
    assert image.max() >= cat["peak_jy_beam"].max() * 0.97
    assert (cat["size_arcsec"] >= 3 * cfg.beam_fwhm_arcsec - 1e-6).all()


def test_population_follows_power_law():
    cfg = SimulateRadioConfig(size=1024, cube_axis_prob=0.0, extended_density_deg2=0.0, nan_border_prob=0.0,
                              compact_density_deg2=20000, flux_alpha=2.0, flux_min_jy=1e-4, flux_max_jy=1.0,
                              sidelobe_snr=1e9)  # fmt: skip
    from tessera.simulate.sky import _draw_population  # the population alone: no need to render pixels

    sources = _draw_population(cfg, np.random.default_rng(5), 2.0)
    fluxes = np.array([s.flux_jy for s in sources])
    assert len(fluxes) > 1000
    # Maximum-likelihood slope of a power law above s_min (alpha - 1 = n / sum ln(S / s_min)), upper limit far away.
    alpha_hat = 1 + len(fluxes) / np.log(fluxes / 1e-4).sum()
    assert alpha_hat == pytest.approx(2.0, abs=0.1)


def test_nan_border_and_sidelobes():
    cfg = SimulateRadioConfig(**SMALL, nan_border_prob=1.0)
    image, _, cat = render_mosaic(cfg, np.random.default_rng(6))
    nan = np.isnan(image)
    assert nan[0, 0] and nan[0, -1] and nan[-1, 0] and nan[-1, -1]
    assert not nan[128, 128]
    assert 0.05 < nan.mean() < 0.6
    assert not cat["in_coverage"].all() or nan.mean() < 0.2
    # Sidelobes: a bright source in an otherwise empty, noiseless sky leaves stripes well outside its beam.
    quiet = dict(compact_density_deg2=0.0, nan_border_prob=0.0, noise_rms_jy=1e-6, extended_density_deg2=30.0,
                 extended_flux_min_jy=0.5, extended_flux_max_jy=0.5, extended_size_arcsec=(30.0, 31.0))  # fmt: skip
    with_lobes, _, cat = render_mosaic(SimulateRadioConfig(**SMALL, **quiet), np.random.default_rng(7))
    without, _, _ = render_mosaic(SimulateRadioConfig(**SMALL, **quiet, sidelobe_level=0.0), np.random.default_rng(7))
    assert len(cat) >= 1
    diff = np.abs(with_lobes - without)
    assert diff.max() > 0.002 * cat["peak_jy_beam"].max()


def test_cube_axes_when_forced(tmp_path):
    for naxis in (3, 4):
        cfg = SimulateRadioConfig(**{**SMALL, "cube_axis_prob": 1.0, "cube_naxis": naxis})
        out = tmp_path / f"n{naxis}"
        (path,) = simulate_radio(cfg, out)
        with fits.open(path) as hdul:
            header, data = hdul[0].header, hdul[0].data
        assert header["NAXIS"] == naxis and data.shape == (1,) * (naxis - 2) + (256, 256)
        assert header["CTYPE3"] == "FREQ" and header["CRVAL3"] == cfg.frequency_hz
        if naxis == 4:
            assert header["CTYPE4"] == "STOKES"
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            wcs = WCS(header)
        assert wcs.naxis == naxis and wcs.celestial.naxis == 2
        assert wcs.spectral.wcs.ctype[0] == "FREQ"


def _digest(directory) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def test_same_seed_same_bytes_different_seed_differs(tmp_path):
    cfg = SimulateRadioConfig(size=128, mosaics=2, seed=11, cube_axis_prob=0.5)
    simulate_radio(cfg, tmp_path / "a")
    simulate_radio(cfg, tmp_path / "b")
    simulate_radio(SimulateRadioConfig(size=128, mosaics=2, seed=12, cube_axis_prob=0.5), tmp_path / "c")
    a, b, c = _digest(tmp_path / "a"), _digest(tmp_path / "b"), _digest(tmp_path / "c")
    assert set(a) == {"mosaic_000.fits", "mosaic_001.fits", "catalogue.csv", "config.yaml"}
    assert a == b
    assert a["mosaic_000.fits"] != c["mosaic_000.fits"] and a["catalogue.csv"] != c["catalogue.csv"]
    assert a["mosaic_000.fits"] != a["mosaic_001.fits"]
    cat = pd.read_csv(tmp_path / "a" / "catalogue.csv")
    assert set(cat["mosaic"]) <= {"mosaic_000.fits", "mosaic_001.fits"} and len(cat) > 0


def test_invalid_configs_name_the_key():
    with pytest.raises(ConfigError, match="size.*minimum is 40"):
        SimulateRadioConfig(size=10).validate()
    with pytest.raises(ConfigError, match="noise_rms_jy"):
        SimulateRadioConfig(noise_rms_jy=0.0).validate()
    with pytest.raises(ConfigError, match="flux_max_jy"):
        SimulateRadioConfig(flux_min_jy=1.0, flux_max_jy=0.1).validate()
    with pytest.raises(ConfigError, match="extended_mix"):
        SimulateRadioConfig(extended_mix={"Spiral": 1.0}).validate()
    with pytest.raises(ConfigError, match="cube_naxis"):
        SimulateRadioConfig(cube_naxis=5).validate()


@pytest.mark.realdata
def test_header_resembles_real_survey_products(shared_data):
    """Our headers carry the keys real radio FITS carry (SKA SDC1 crop, FIRST via SkyView), with the same meaning."""
    _, ours, _ = render_mosaic(SimulateRadioConfig(**SMALL), np.random.default_rng(0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ska = fits.getheader(shared_data / "ska_sdc1_crop" / "sdc1_560mhz_1000h_crop.fits")
        first = fits.getheader(sorted((shared_data / "frdeep_fits" / "FIRST").glob("*.fits"))[0])
    for key in ("BUNIT", "CTYPE1", "CTYPE2", "CDELT1", "CDELT2", "CRPIX1", "CRVAL1", "BMAJ", "BMIN"):
        assert key in ska and key in ours
    assert ours["BUNIT"].upper() == ska["BUNIT"].upper() == first["BUNIT"].upper() == "JY/BEAM"
    assert ours["CTYPE1"] == ska["CTYPE1"] == "RA---SIN"
    # Same sign conventions: RA increases to the left (CDELT1 < 0), Dec upward.
    for h in (ska, first, ours):
        assert h["CDELT1"] < 0 < h["CDELT2"]
    # Our beam spans a realistic number of pixels, like the SKA crop (BMAJ / |CDELT|).
    ours_beam_px, ska_beam_px = ours["BMAJ"] / ours["CDELT2"], ska["BMAJ"] / ska["CDELT2"]
    assert 1.5 < ska_beam_px < 10 and 1.5 < ours_beam_px < 10
