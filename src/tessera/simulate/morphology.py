"""Labeled single-source cutouts (FRI, FRII, Compact, Bent): ``tessera simulate morphology``.

The sources are the same models as in the mosaics (:mod:`tessera.simulate.sources`), seen through the same beam
and noise. To keep the labels learnable but not trivial, each cutout varies what a real cutout varies: peak SNR
(log-uniform), noise level, largest angular size, position angle, a small off-centre shift, and unrelated faint
compact neighbours.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.signal import fftconvolve

from tessera.config import save_config
from tessera.outputs import prepare_output_dir
from tessera.simulate.config import MORPHOLOGY_CLASSES, SimulateMorphologyConfig
from tessera.simulate.fitsio import make_header, write_image
from tessera.simulate.sources import (
    Source,
    beam_kernel,
    beam_sigmas_px,
    log_uniform,
    make_compact,
    make_extended,
    render_source,
)

LABEL_COLUMNS = [
    "path", "label", "subclass", "x_pix", "y_pix", "flux_jy", "peak_jy_beam", "snr", "noise_rms_jy",
    "size_arcsec", "angle_deg",
]  # fmt: skip
CSV_FLOAT_FORMAT = "%.9g"


def _centred_source(rng: np.random.Generator, label: str, cfg: SimulateMorphologyConfig, beam_sigma: float) -> Source:
    """A unit-flux source of class ``label`` whose extent is centred on the cutout, plus a small random shift."""
    size = cfg.size
    centre = (size - 1) / 2.0
    if label == "Compact":
        src = make_compact(rng, 0.0, 0.0, 1.0, 0.6 * cfg.beam_fwhm_px)
    else:
        las_px = max(rng.uniform(*cfg.extent_fraction_range) * size, 3.0 * cfg.beam_fwhm_px)
        src = make_extended(rng, label, 0.0, 0.0, 1.0, las_px, beam_sigma)
    xmin, xmax, ymin, ymax = src.extent()
    shift = rng.uniform(-cfg.max_shift_fraction, cfg.max_shift_fraction, 2) * size
    # Centre the emission (not the host): a tailed source's host sits at one end of its extent.
    return src.moved(centre - (xmin + xmax) / 2 + shift[0], centre - (ymin + ymax) / 2 + shift[1])


def render_cutout(
    label: str, size: int, rng: np.random.Generator, cfg: SimulateMorphologyConfig | None = None
) -> tuple[np.ndarray, dict]:
    """One labeled cutout: (image (size, size) float32 Jy/beam, info dict with the truth).

    ``info``: label, subclass, x_pix/y_pix (host, 0-based), flux_jy, peak_jy_beam, snr (peak / noise rms),
    noise_rms_jy, size_arcsec (largest angular size), angle_deg (PA east of north)."""
    if label not in MORPHOLOGY_CLASSES:
        raise ValueError(f"unknown class {label!r}; expected one of {MORPHOLOGY_CLASSES}")
    cfg = SimulateMorphologyConfig(size=size) if cfg is None else cfg
    if cfg.size != size:
        cfg = dataclasses.replace(cfg, size=size)
    cfg.validate()
    sig_a, sig_b = beam_sigmas_px(cfg.beam_fwhm_arcsec, cfg.beam_minor, cfg.pixel_scale_arcsec)
    kernel = beam_kernel(sig_a, sig_b, cfg.beam_pa_deg)
    pad = kernel.shape[0] // 2
    shape = (size + 2 * pad, size + 2 * pad)

    src = _centred_source(rng, label, cfg, sig_a)
    unit = np.zeros(shape)
    render_source(unit, src, offset=(pad, pad))
    unit_peak = float(fftconvolve(unit, kernel, mode="valid").max())  # Jy/beam per Jy of total flux
    noise_rms = cfg.noise_rms_jy * log_uniform(rng, *cfg.noise_factor_range)
    snr = log_uniform(rng, *cfg.snr_range)
    flux = snr * noise_rms / unit_peak  # the flux that gives the drawn peak SNR
    sky = unit * flux

    for _ in range(int(rng.poisson(cfg.contaminants_mean))):
        # Unrelated faint compact sources: the field around a real galaxy is never empty.
        x, y = rng.uniform(0, size - 1, 2)
        faint = log_uniform(rng, 3.0, 15.0) * noise_rms
        render_source(sky, make_compact(rng, float(x), float(y), faint, 0.5 * cfg.beam_fwhm_px), offset=(pad, pad))
    sky += rng.standard_normal(shape) * (noise_rms / math.sqrt(float((kernel**2).sum())))
    image = fftconvolve(sky, kernel, mode="valid").astype(np.float32)
    info = {
        "label": label,
        "subclass": src.subclass,
        "x_pix": src.x,
        "y_pix": src.y,
        "flux_jy": flux,
        "peak_jy_beam": unit_peak * flux,
        "snr": snr,
        "noise_rms_jy": noise_rms,
        "size_arcsec": src.size_px * cfg.pixel_scale_arcsec,
        "angle_deg": src.pa_deg % 360.0,
    }
    return image, info


def simulate_morphology(cfg: SimulateMorphologyConfig, out_dir: str | Path, overwrite: bool = False) -> Path:
    """Write ``cfg.per_class`` FITS cutouts per class under ``out_dir/<class>/`` and ``labels.csv`` (paths
    relative to it, plus the truth columns ``LABEL_COLUMNS``) and ``config.yaml``; return the labels.csv path.

    Cutout i of class k uses the random stream ``(seed, k, i)``: adding cutouts never changes earlier ones."""
    cfg.validate()
    out = prepare_output_dir(out_dir, overwrite=overwrite)
    save_config(cfg, out)
    rows = []
    for label in cfg.classes:
        (out / label).mkdir()
        class_index = MORPHOLOGY_CLASSES.index(label)
        for i in range(cfg.per_class):
            rng = np.random.default_rng([cfg.seed, class_index, i])
            image, info = render_cutout(label, cfg.size, rng, cfg)
            ra = float(rng.uniform(0.0, 360.0))
            dec = float(np.degrees(np.arcsin(rng.uniform(-0.98, 0.98))))
            rel = f"{label}/{label}_{i:05d}.fits"
            write_image(out / rel, image, make_header(cfg, image.shape, ra, dec, f"{label} {i}"))
            rows.append({"path": rel, **info})
    labels = pd.DataFrame(rows, columns=LABEL_COLUMNS)
    path = out / "labels.csv"
    labels.to_csv(path, index=False, float_format=CSV_FLOAT_FORMAT)
    return path
