"""Synthetic spectrum files for the spectrum-store tests: CSV, FITS tables and NPY arrays with known flags."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

FREQ_MHZ = np.geomspace(100.0, 10_000.0, 150)


def power_law(alpha: float, curvature: float = 0.0, freq: np.ndarray = FREQ_MHZ) -> np.ndarray:
    x = np.log(freq / 1400.0)
    return np.exp(alpha * x + curvature * x**2)


def write_csv(path: Path, flux: np.ndarray, freq: np.ndarray = FREQ_MHZ) -> Path:
    pd.DataFrame({"freq_mhz": freq, "flux_jy": flux}).to_csv(path, index=False)
    return path


def write_fits_table(path: Path, flux: np.ndarray, flags: np.ndarray, freq_ghz: np.ndarray,
                     ra: float | None = None, dec: float | None = None) -> Path:
    from astropy.io import fits

    cols = [fits.Column(name="FREQ", format="D", unit="GHz", array=freq_ghz),
            fits.Column(name="FLUX", format="D", array=flux),
            fits.Column(name="FLAG", format="J", array=flags.astype(np.int32))]
    table = fits.BinTableHDU.from_columns(cols)
    if ra is not None:
        table.header["RA"], table.header["DEC"] = ra, dec
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(path, overwrite=True)
    return path


def smooth_spectra(n: int, length: int, seed: int = 0) -> np.ndarray:
    """(n, 1, length) float32 power laws with curvature and noise, a few channels NaN: masked segments are
    predictable from their neighbours."""
    rng = np.random.default_rng(seed)
    f = np.linspace(0, 1, length)
    alpha, beta = rng.normal(-0.7, 0.3, (n, 1)), rng.normal(0, 0.5, (n, 1))
    spec = 1.0 + alpha * f + beta * f**2 + 0.02 * rng.normal(size=(n, length))
    spec[rng.random((n, length)) < 0.01] = np.nan
    return spec[:, None, :].astype(np.float32)


def write_npy_spectra(folder: Path, spectra: np.ndarray) -> list[Path]:
    """One (1, L) NPY per spectrum, as `tessera simulate pairs` writes them."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, s in enumerate(spectra):
        paths.append(folder / f"s{i:04d}.npy")
        np.save(paths[-1], s)
    return paths
