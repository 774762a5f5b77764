"""Survey-like radio mosaics with known truth: ``tessera simulate radio``.

A mosaic is built in the order a real image is made: intrinsic sky (compact population with dN/dS ~ S^-alpha plus
extended radio galaxies, rendered on local windows), plus white thermal noise, convolved *once* with the restoring
beam by FFT (so noise is correlated on the beam scale, as in a restored interferometric image); then the
artefacts: sidelobe stripes around bright sources and NaN outside an irregular coverage edge.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from astropy.io import fits
from astropy.wcs import WCS
from scipy.signal import fftconvolve

from tessera.config import save_config
from tessera.outputs import prepare_output_dir
from tessera.simulate.config import EXTENDED_CLASSES, SimulateRadioConfig
from tessera.simulate.fitsio import make_header, write_image
from tessera.simulate.sources import (
    Source,
    beam_kernel,
    beam_sigmas_px,
    compact_peak,
    log_uniform,
    make_compact,
    make_extended,
    power_law_fluxes,
    render_source,
    source_peak,
)

CATALOGUE_COLUMNS = [
    "source_id", "mosaic", "class", "subclass", "x_pix", "y_pix", "ra_deg", "dec_deg",
    "flux_jy", "peak_jy_beam", "size_arcsec", "angle_deg", "in_coverage",
]  # fmt: skip
CSV_FLOAT_FORMAT = "%.9g"  # fixed formatting: byte-identical catalogues for one seed


def _field_centre(cfg: SimulateRadioConfig, rng: np.random.Generator) -> tuple[float, float]:
    """Field centre: configured, or random over the sky (uniform in RA, in sin(Dec) up to |Dec| < 80)."""
    ra = cfg.field_ra_deg if cfg.field_ra_deg is not None else float(rng.uniform(0.0, 360.0))
    if cfg.field_dec_deg is not None:
        return ra, cfg.field_dec_deg
    return ra, float(np.degrees(np.arcsin(rng.uniform(-0.98, 0.98))))


def _draw_population(cfg: SimulateRadioConfig, rng: np.random.Generator, beam_sigma: float) -> list[Source]:
    """Compact and extended sources at uniform random positions; counts are Poisson from the sky densities."""
    size = cfg.size
    area_deg2 = (size * cfg.pixel_scale_arcsec / 3600.0) ** 2
    n_compact = int(rng.poisson(cfg.compact_density_deg2 * area_deg2))
    n_extended = int(rng.poisson(cfg.extended_density_deg2 * area_deg2))
    sources: list[Source] = []
    fluxes = power_law_fluxes(rng, n_compact, cfg.flux_alpha, cfg.flux_min_jy, cfg.flux_max_jy)
    max_fwhm_px = cfg.compact_max_fwhm_beams * cfg.beam_fwhm_px
    for flux in fluxes:
        x, y = rng.uniform(0, size - 1, 2)
        sources.append(make_compact(rng, float(x), float(y), float(flux), max_fwhm_px))
    labels = list(cfg.extended_mix)
    weights = np.array([cfg.extended_mix[k] for k in labels], dtype=float)
    ext_fluxes = power_law_fluxes(
        rng, n_extended, cfg.extended_flux_alpha, cfg.extended_flux_min_jy, cfg.extended_flux_max_jy
    )
    lo, hi = cfg.extended_size_arcsec
    max_las_px = 0.6 * size  # keep every galaxy smaller than the mosaic
    for flux in ext_fluxes:
        label = labels[int(rng.choice(len(labels), p=weights / weights.sum()))]
        las_px = min(log_uniform(rng, lo, hi) / cfg.pixel_scale_arcsec, max_las_px)
        las_px = max(las_px, 3.0 * cfg.beam_fwhm_px)
        x, y = rng.uniform(0, size - 1, 2)
        sources.append(make_extended(rng, label, float(x), float(y), float(flux), las_px, beam_sigma))
    return sources


def _sidelobe_pattern(rng: np.random.Generator, radius: int, beam_fwhm_px: float) -> np.ndarray:
    """Residual sidelobes of an imperfectly deconvolved bright source, peak-normalized to 1. -> (2r+1, 2r+1)

    A few radial spokes of ripples (the dirty beam of a sparse uv-coverage is a star of stripes) plus a faint
    ring, decaying away from the source and zero at its centre so the source's own peak is unchanged."""
    coords = np.arange(-radius, radius + 1, dtype=np.float64)
    dx, dy = np.meshgrid(coords, coords)
    r = np.hypot(dx, dy)
    period = 2.0 * beam_fwhm_px
    decay = radius / 3.0
    width = 0.6 * beam_fwhm_px
    n_spokes = int(rng.integers(3, 7))
    base = rng.uniform(0.0, math.pi)
    pattern = 0.1 * np.cos(2 * math.pi * r / period) * np.exp(-r / (0.5 * decay))
    for k in range(n_spokes):
        ang = base + k * math.pi / n_spokes + rng.normal(0.0, 0.1)
        along = dx * math.cos(ang) + dy * math.sin(ang)
        across = -dx * math.sin(ang) + dy * math.cos(ang)
        sign = 1.0 if rng.random() < 0.5 else -1.0
        pattern += sign * np.cos(2 * math.pi * along / period) * np.exp(-np.abs(along) / decay) * np.exp(
            -0.5 * (across / width) ** 2
        )
    pattern *= 1.0 - np.exp(-0.5 * (r / (1.5 * beam_fwhm_px)) ** 2)
    return pattern / np.abs(pattern).max()


def _add_patch(image: np.ndarray, patch: np.ndarray, x: float, y: float) -> None:
    """Add ``patch: (2r+1, 2r+1)`` centred on pixel (round(x), round(y)) into ``image: (H, W)``, clipped."""
    r = patch.shape[0] // 2
    ix, iy = int(round(x)), int(round(y))
    h, w = image.shape
    x0, x1 = max(0, ix - r), min(w, ix + r + 1)
    y0, y1 = max(0, iy - r), min(h, iy + r + 1)
    if x0 < x1 and y0 < y1:
        image[y0:y1, x0:x1] += patch[y0 - (iy - r) : y1 - (iy - r), x0 - (ix - r) : x1 - (ix - r)]


def coverage_mask(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Irregular survey footprint: a rotated superellipse with a wavy edge. -> (H, W) bool, True = covered.

    Its half-axes (0.40-0.50 of the side), exponent <= 5 and wobble <= 8% reach at most 0.665 of the side from
    the centre along any direction (< 0.707 to a corner), so every corner is uncovered: a mosaic with coverage
    always has NaN borders, while the centre stays covered."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    cx = (w - 1) / 2 + rng.uniform(-0.03, 0.03) * w
    cy = (h - 1) / 2 + rng.uniform(-0.03, 0.03) * h
    a, b = rng.uniform(0.40, 0.50) * w, rng.uniform(0.40, 0.50) * h
    p = rng.uniform(2.5, 5.0)
    rot = rng.uniform(0.0, math.pi / 2)
    u = (xx - cx) * math.cos(rot) + (yy - cy) * math.sin(rot)
    v = -(xx - cx) * math.sin(rot) + (yy - cy) * math.cos(rot)
    phi = np.arctan2(v, u)
    wobble = 1.0 + sum(rng.uniform(0.0, 0.02) * np.cos(k * phi + rng.uniform(0, 2 * math.pi)) for k in range(2, 6))
    return (np.abs(u / a) ** p + np.abs(v / b) ** p) ** (1.0 / p) <= wobble


def render_mosaic(
    cfg: SimulateRadioConfig, rng: np.random.Generator, name: str = ""
) -> tuple[np.ndarray, fits.Header, pd.DataFrame]:
    """One mosaic in memory: (image (H, W) float32 Jy/beam with NaN outside coverage, 2-D header, catalogue).

    ``cfg.size`` sets H = W. The catalogue has one row per injected source (``CATALOGUE_COLUMNS``; pixel
    positions are 0-based numpy (x = column, y = row), peaks are the noise-free beam-convolved truth)."""
    cfg.validate()
    size = cfg.size
    sig_a, sig_b = beam_sigmas_px(cfg.beam_fwhm_arcsec, cfg.beam_minor, cfg.pixel_scale_arcsec)
    kernel = beam_kernel(sig_a, sig_b, cfg.beam_pa_deg)
    pad = kernel.shape[0] // 2
    ra0, dec0 = _field_centre(cfg, rng)
    header = make_header(cfg, (size, size), ra0, dec0, name or "tessera-sim")
    sources = _draw_population(cfg, rng, sig_a)

    # Intrinsic sky (Jy/pixel) on a canvas padded by the kernel radius, so a 'valid' convolution gives an image
    # whose noise and sources near the border are as correct as in the middle.
    sky = np.zeros((size + 2 * pad, size + 2 * pad))
    for src in sources:
        render_source(sky, src, offset=(pad, pad))
    # White noise scaled so that after the beam it has exactly the requested rms: std(n * K) = c * ||K||_2.
    sky += rng.standard_normal(sky.shape) * (cfg.noise_rms_jy / math.sqrt(float((kernel**2).sum())))
    image = fftconvolve(sky, kernel, mode="valid")

    peaks = [
        compact_peak(s, sig_a, sig_b, cfg.beam_pa_deg) if s.label == "Compact" else source_peak(s, kernel)
        for s in sources
    ]
    for src, peak in zip(sources, peaks):
        if peak > cfg.sidelobe_snr * cfg.noise_rms_jy and cfg.sidelobe_level > 0:
            radius = int(min(size // 2, 25 * cfg.beam_fwhm_px))
            _add_patch(image, cfg.sidelobe_level * peak * _sidelobe_pattern(rng, radius, cfg.beam_fwhm_px), src.x,
                       src.y)

    covered = np.ones((size, size), dtype=bool)
    if rng.random() < cfg.nan_border_prob:
        covered = coverage_mask(rng, (size, size))
        image[~covered] = np.nan
    catalogue = _catalogue(sources, peaks, header, covered, name, cfg.pixel_scale_arcsec)
    return image.astype(np.float32), header, catalogue


def _catalogue(
    sources: list[Source], peaks: list[float], header: fits.Header, covered: np.ndarray, name: str, pix_arcsec: float
) -> pd.DataFrame:
    """The injected sources as a DataFrame with ``CATALOGUE_COLUMNS`` (RA/Dec from the header's WCS)."""
    xs = np.array([s.x for s in sources], dtype=float)
    ys = np.array([s.y for s in sources], dtype=float)
    ra, dec = WCS(header).all_pix2world(xs, ys, 0) if len(sources) else (xs, ys)
    h, w = covered.shape
    ix, iy = np.clip(np.round(xs).astype(int), 0, w - 1), np.clip(np.round(ys).astype(int), 0, h - 1)
    return pd.DataFrame(
        {
            "source_id": np.arange(len(sources)),
            "mosaic": [name] * len(sources),
            "class": [s.label for s in sources],
            "subclass": [s.subclass for s in sources],
            "x_pix": xs,
            "y_pix": ys,
            "ra_deg": np.asarray(ra, dtype=float) % 360.0,
            "dec_deg": np.asarray(dec, dtype=float),
            "flux_jy": [s.flux_jy for s in sources],
            "peak_jy_beam": np.asarray(peaks, dtype=float),
            "size_arcsec": [s.size_px * pix_arcsec for s in sources],
            "angle_deg": [s.pa_deg % 360.0 for s in sources],
            "in_coverage": covered[iy, ix] if len(sources) else np.zeros(0, dtype=bool),
        },
        columns=CATALOGUE_COLUMNS,
    )


def _cube_naxis(cfg: SimulateRadioConfig, rng: np.random.Generator) -> int:
    """2, or 3/4 (degenerate FREQ / FREQ+STOKES axes) with probability ``cube_axis_prob``."""
    if rng.random() >= cfg.cube_axis_prob:
        return 2
    return cfg.cube_naxis or int(rng.choice([3, 4]))


def simulate_radio(cfg: SimulateRadioConfig, out_dir: str | Path, overwrite: bool = False) -> list[Path]:
    """Write ``cfg.mosaics`` FITS mosaics, ``catalogue.csv`` and ``config.yaml`` into ``out_dir``; return the mosaics.

    Mosaic i uses the random stream ``(seed, i)``, so mosaic 0 is the same whatever the number of mosaics."""
    cfg.validate()
    out = prepare_output_dir(out_dir, overwrite=overwrite)
    save_config(cfg, out)
    paths, tables = [], []
    for i in range(cfg.mosaics):
        rng = np.random.default_rng([cfg.seed, i])
        name = f"mosaic_{i:03d}.fits"
        image, header, catalogue = render_mosaic(cfg, rng, name=name)
        paths.append(write_image(out / name, image, header, naxis=_cube_naxis(cfg, rng)))
        tables.append(catalogue)
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=CATALOGUE_COLUMNS)
    table.to_csv(out / "catalogue.csv", index=False, float_format=CSV_FLOAT_FORMAT)
    return paths


__all__ = ["CATALOGUE_COLUMNS", "EXTENDED_CLASSES", "coverage_mask", "render_mosaic", "simulate_radio"]
