"""Paired radio images and radio spectra with known truth: ``tessera simulate pairs`` (issue 14, seed 003's
two-modality setting in radio terms).

Every source is one image (a morphology cutout from :func:`tessera.simulate.morphology.render_cutout`, 1.4 GHz,
FIRST-like beam and noise) and one spectrum: flux density at ``channels`` log-spaced frequencies from
``freq_min_mhz`` to ``freq_max_mhz``, normalized so that S(1.4 GHz) is the image's total flux.

Spectral model (a curved power law with synchrotron self-absorption, the standard homogeneous-SSA form, e.g.
Snellen et al. 1998; O'Dea 1998 §3)::

    S(nu) = S_1400 * g(nu) / g(1400 MHz),
    g(nu) = (nu / nu_t)^2.5 * (1 - exp(-tau)) * exp(q * ln(nu / 1400 MHz)^2),   tau = (nu / nu_t)^(alpha - 2.5)

optically thick (S ~ nu^2.5) below the turnover ``nu_t``, optically thin with spectral index ``alpha`` (S ~ nu^alpha)
above it, with curvature ``q`` (q < 0: the high-frequency steepening of an ageing electron population). Noise per
channel: Gaussian with sigma^2 = (calibration_error * S)^2 + noise_floor_jy^2; some spectra lose a contiguous band
(RFI) and a few single channels to flags, written as NaN (DESIGN §3: non-finite = missing).

Physical coupling between the two views (what an alignment can learn), by spectral class:

- ``flat`` (30 %): a compact, core-dominated source (a superposition of self-absorbed jet components gives a flat
  spectrum): Compact morphology, alpha ~ N(-0.1, 0.2), turnover below the band;
- ``steep`` (50 %): extended FRI, FRII or Bent radio galaxies, whose optically thin lobes dominate: alpha ~
  N(-0.75, 0.1) (alpha ~ -0.7), mild negative curvature, turnover below the band;
- ``peaked`` (20 %): young GPS/CSS sources, always small: half GPS (Compact, sub-beam) and half CSS (a small
  double, 3-5 beams); alpha ~ N(-0.8, 0.15), and the turnover falls as the source grows, O'Dea 1998's
  nu_peak ~ LS^-0.65: ``nu_t = peak_ref_mhz * (max(size, 0.3") / peak_ref_arcsec)^-0.65`` with 0.15 dex scatter
  (0.3" floors the sub-beam GPS sizes, where the relation would diverge).

Curvature is q = -|N(0.02-0.03, 0.02)| in every class (convex spectra: ageing, or a spread of turnovers).

``pairs.csv`` columns: ``path_a`` (image FITS), ``path_b`` (spectrum NPY, (1, L) float32 Jy on the grid of
``frequencies_mhz.csv``), the targets ``spectral_index`` (alpha), ``curvature`` (q), ``peak_freq_mhz`` (where the
noiseless spectrum peaks, searched over 10 MHz-100 GHz), ``total_flux_jy`` (S_1400), ``angular_size_arcsec``
(largest angular size of the image's source), ``label`` (morphology class) and ``spectral_class``.
``labels.csv`` lists the images alone (``path,label`` + the targets) as ``tessera evaluate --data`` reads a labeled
set (e.g. ``--protocol mlp --target spectral_index`` for an aligned image tower).
``images.csv`` and ``spectra.csv`` are two position catalogues (``path,ra_deg,dec_deg``) of the same sources, the
spectra's positions offset by up to ``position_error_arcsec`` (for ``tessera align --pairs match:...``).
Source i uses the random stream (seed, i): the same seed gives byte-identical files, and adding sources never
changes earlier ones.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tessera.config import save_config
from tessera.errors import ConfigError
from tessera.outputs import prepare_output_dir
from tessera.simulate.config import SimulateMorphologyConfig
from tessera.simulate.fitsio import make_header, write_image
from tessera.simulate.morphology import render_cutout

SPECTRAL_CLASSES = ("flat", "steep", "peaked")
REFERENCE_MHZ = 1400.0  # the image's frequency: S(1.4 GHz) is the image's total flux
ODEA_SLOPE = -0.65  # O'Dea 1998: nu_peak ~ (linear size)^-0.65 for GPS/CSS sources
GPS_SIZE_FLOOR_ARCSEC = 0.3
PAIR_COLUMNS = ["path_a", "path_b", "spectral_index", "curvature", "peak_freq_mhz", "total_flux_jy",
                "angular_size_arcsec", "label", "spectral_class"]
CSV_FLOAT_FORMAT = "%.9g"


@dataclass
class SimulatePairsConfig(SimulateMorphologyConfig):
    """Image + spectrum pairs; the image settings are the morphology simulator's (``size``, beam, SNR, ...)."""

    size: int = 64
    n: int = 200
    channels: int = 200  # log-spaced frequencies (the issue: 50-200)
    freq_min_mhz: float = 100.0
    freq_max_mhz: float = 10000.0
    class_fractions: tuple[float, float, float] = (0.3, 0.5, 0.2)  # flat, steep, peaked
    peak_ref_mhz: float = 5000.0  # the O'Dea relation's turnover at peak_ref_arcsec
    peak_ref_arcsec: float = 0.5
    peak_scatter_dex: float = 0.15
    calibration_error: float = 0.03  # fractional flux-scale error per channel
    noise_floor_jy: float = 2e-4  # additive noise per channel, Jy
    rfi_probability: float = 0.3  # chance that a spectrum loses one contiguous band to flags
    rfi_width_range: tuple[float, float] = (0.05, 0.15)  # the band's width, fraction of the channels
    flag_probability: float = 0.01  # chance that any single channel is flagged
    position_error_arcsec: float = 1.0  # spectra.csv positions: offset up to this from the image's

    def validate(self) -> None:
        super().validate()
        if self.n < 1:
            raise ConfigError(f"config key 'n': must be a positive integer, got {self.n}")
        if not 50 <= self.channels <= 200:
            raise ConfigError(f"config key 'channels': expected 50-200 frequencies, got {self.channels}")
        if not 0 < self.freq_min_mhz < self.freq_max_mhz:
            raise ConfigError(f"config key 'freq_min_mhz': need 0 < freq_min_mhz < freq_max_mhz, got "
                              f"{self.freq_min_mhz}, {self.freq_max_mhz}")
        fr = self.class_fractions
        if len(fr) != 3 or min(fr) < 0 or abs(sum(fr) - 1.0) > 1e-6:
            raise ConfigError(f"config key 'class_fractions': three non-negative fractions (flat, steep, peaked) "
                              f"summing to 1 expected, got {list(fr)}")
        for key in ("peak_ref_mhz", "peak_ref_arcsec"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"config key '{key}': must be positive, got {getattr(self, key)}")
        for key in ("peak_scatter_dex", "calibration_error", "noise_floor_jy", "position_error_arcsec"):
            if getattr(self, key) < 0:
                raise ConfigError(f"config key '{key}': must be >= 0, got {getattr(self, key)}")
        for key in ("rfi_probability", "flag_probability"):
            if not 0 <= getattr(self, key) <= 1:
                raise ConfigError(f"config key '{key}': must be in [0, 1], got {getattr(self, key)}")
        lo, hi = self.rfi_width_range
        if not 0 < lo <= hi < 0.5:
            raise ConfigError(f"config key 'rfi_width_range': expected 0 < low <= high < 0.5, got {[lo, hi]}")


def frequency_grid(cfg: SimulatePairsConfig) -> np.ndarray:
    """(L,) log-spaced frequencies in MHz."""
    return np.geomspace(cfg.freq_min_mhz, cfg.freq_max_mhz, cfg.channels)


def log_spectrum(nu_mhz: np.ndarray, alpha: float, curvature: float, turnover_mhz: float) -> np.ndarray:
    """ln g(nu) of the module docstring's model (unnormalized), nu (L,) MHz -> (L,); computed in log space so a
    deep optically thick tail never underflows."""
    x = np.log(nu_mhz / turnover_mhz)
    tau = np.exp((alpha - 2.5) * x)
    return 2.5 * x + np.log(-np.expm1(-tau)) + curvature * np.log(nu_mhz / REFERENCE_MHZ) ** 2


def model_spectrum(nu_mhz: np.ndarray, flux_1400: float, alpha: float, curvature: float,
                   turnover_mhz: float) -> np.ndarray:
    """Noiseless S(nu) in Jy, (L,), with S(1400 MHz) = ``flux_1400``."""
    ref = log_spectrum(np.array([REFERENCE_MHZ]), alpha, curvature, turnover_mhz)[0]
    return flux_1400 * np.exp(log_spectrum(nu_mhz, alpha, curvature, turnover_mhz) - ref)


def peak_frequency(alpha: float, curvature: float, turnover_mhz: float) -> float:
    """Frequency (MHz) where the noiseless spectrum peaks, on a fine log grid over 10 MHz-100 GHz."""
    nu = np.geomspace(10.0, 1e5, 4001)
    return float(nu[int(np.argmax(log_spectrum(nu, alpha, curvature, turnover_mhz)))])


def odea_turnover(size_arcsec: float, cfg: SimulatePairsConfig, rng: np.random.Generator) -> float:
    """GPS/CSS turnover frequency (MHz) falling with size, nu_t ~ size^-0.65 (O'Dea 1998), with log scatter."""
    size = max(size_arcsec, GPS_SIZE_FLOOR_ARCSEC)
    nu = cfg.peak_ref_mhz * (size / cfg.peak_ref_arcsec) ** ODEA_SLOPE
    return float(nu * 10 ** (cfg.peak_scatter_dex * rng.standard_normal()))


def draw_morphology(spectral_class: str, cfg: SimulatePairsConfig, rng: np.random.Generator):
    """(morphology label, the image config to render it with) for a source of ``spectral_class``."""
    if spectral_class == "flat":
        return "Compact", cfg
    if spectral_class == "steep":
        return str(rng.choice(["FRI", "FRII", "Bent"])), cfg
    if rng.random() < 0.5:  # GPS: compact, sub-beam
        return "Compact", cfg
    # CSS: a small double of 3-5 beams (render_cutout floors extended sizes at 3 beams)
    beams = cfg.beam_fwhm_px / cfg.size
    return "FRII", dataclasses.replace(cfg, extent_fraction_range=(3 * beams, min(5 * beams, 0.95)))


def draw_spectrum_parameters(spectral_class: str, size_arcsec: float, cfg: SimulatePairsConfig,
                             rng: np.random.Generator) -> tuple[float, float, float]:
    """(alpha, curvature q, turnover nu_t in MHz) for a source of ``spectral_class`` and angular size."""
    if spectral_class == "flat":
        alpha, q = float(rng.normal(-0.1, 0.2)), -abs(float(rng.normal(0.02, 0.02)))
        return alpha, q, float(np.exp(rng.uniform(*np.log([10.0, 50.0]))))
    if spectral_class == "steep":
        alpha, q = float(rng.normal(-0.75, 0.1)), -abs(float(rng.normal(0.03, 0.02)))
        return alpha, q, float(np.exp(rng.uniform(*np.log([10.0, 60.0]))))
    alpha, q = float(rng.normal(-0.8, 0.15)), -abs(float(rng.normal(0.0, 0.02)))
    return alpha, q, odea_turnover(size_arcsec, cfg, rng)


def observe(flux: np.ndarray, cfg: SimulatePairsConfig, rng: np.random.Generator) -> np.ndarray:
    """Noisy, flagged spectrum (L,) float32 from the noiseless ``flux`` (L,): NaN at flagged channels."""
    sigma = np.sqrt((cfg.calibration_error * flux) ** 2 + cfg.noise_floor_jy**2)
    out = flux + sigma * rng.standard_normal(flux.shape)
    n = len(out)
    if rng.random() < cfg.rfi_probability:
        width = max(1, int(round(rng.uniform(*cfg.rfi_width_range) * n)))
        start = int(rng.integers(0, n - width + 1))
        out[start : start + width] = np.nan
    out[rng.random(n) < cfg.flag_probability] = np.nan
    return out.astype(np.float32)


def offset_position(ra: float, dec: float, max_arcsec: float, rng: np.random.Generator) -> tuple[float, float]:
    """(ra, dec) moved by a uniform random distance up to ``max_arcsec`` in a random direction (degrees)."""
    r = rng.uniform(0.0, max_arcsec) / 3600.0
    theta = rng.uniform(0.0, 2 * math.pi)
    return ra + r * math.cos(theta) / max(math.cos(math.radians(dec)), 1e-6), dec + r * math.sin(theta)


def simulate_pair(i: int, cfg: SimulatePairsConfig, nu_mhz: np.ndarray):
    """Source i: (image (S, S) float32 Jy/beam, spectrum (L,) float32 Jy with NaN flags, truth dict, positions
    (ra, dec, ra_b, dec_b))."""
    rng = np.random.default_rng([cfg.seed, i])
    spectral_class = str(rng.choice(SPECTRAL_CLASSES, p=np.asarray(cfg.class_fractions, float)))
    label, image_cfg = draw_morphology(spectral_class, cfg, rng)
    image, info = render_cutout(label, cfg.size, rng, image_cfg)
    alpha, q, nu_t = draw_spectrum_parameters(spectral_class, info["size_arcsec"], cfg, rng)
    spectrum = observe(model_spectrum(nu_mhz, info["flux_jy"], alpha, q, nu_t), cfg, rng)
    ra = float(rng.uniform(0.0, 360.0))
    dec = float(np.degrees(np.arcsin(rng.uniform(-0.98, 0.98))))
    truth = {"spectral_index": alpha, "curvature": q, "peak_freq_mhz": peak_frequency(alpha, q, nu_t),
             "total_flux_jy": info["flux_jy"], "angular_size_arcsec": info["size_arcsec"], "label": label,
             "spectral_class": spectral_class}
    return image, spectrum, truth, (ra, dec, *offset_position(ra, dec, cfg.position_error_arcsec, rng))


def simulate_pairs(cfg: SimulatePairsConfig, out_dir: str | Path, overwrite: bool = False) -> Path:
    """Write ``cfg.n`` image/spectrum pairs under ``out_dir`` (images/, spectra/, frequencies_mhz.csv,
    pairs.csv, labels.csv, images.csv, spectra.csv, config.yaml; module docstring); return the pairs.csv path."""
    cfg.validate()
    out = prepare_output_dir(out_dir, overwrite=overwrite)
    save_config(cfg, out)
    (out / "images").mkdir()
    (out / "spectra").mkdir()
    nu = frequency_grid(cfg)
    pd.DataFrame({"frequency_mhz": nu}).to_csv(out / "frequencies_mhz.csv", index=False, float_format="%.9g")
    rows, cat_a, cat_b = [], [], []
    for i in range(cfg.n):
        image, spectrum, truth, (ra, dec, ra_b, dec_b) = simulate_pair(i, cfg, nu)
        rel_a, rel_b = f"images/src_{i:05d}.fits", f"spectra/src_{i:05d}.npy"
        write_image(out / rel_a, image, make_header(cfg, image.shape, ra, dec, f"{truth['label']} {i}"))
        np.save(out / rel_b, spectrum[None])
        rows.append({"path_a": rel_a, "path_b": rel_b, **truth})
        cat_a.append({"path": rel_a, "ra_deg": ra, "dec_deg": dec})
        cat_b.append({"path": rel_b, "ra_deg": ra_b, "dec_deg": dec_b})
    pd.DataFrame(cat_a).to_csv(out / "images.csv", index=False, float_format="%.10f")
    pd.DataFrame(cat_b).to_csv(out / "spectra.csv", index=False, float_format="%.10f")
    path = out / "pairs.csv"
    table = pd.DataFrame(rows, columns=PAIR_COLUMNS)
    table.to_csv(path, index=False, float_format=CSV_FLOAT_FORMAT)
    labels = table.drop(columns=["path_b"]).rename(columns={"path_a": "path"})
    labels.to_csv(out / "labels.csv", index=False, float_format=CSV_FLOAT_FORMAT)
    return path


__all__ = ["SPECTRAL_CLASSES", "SimulatePairsConfig", "model_spectrum", "peak_frequency", "simulate_pairs"]
