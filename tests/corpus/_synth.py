"""Small synthetic inputs for the corpus tests (FITS with WCS, skies), written into tmp dirs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits


def sky(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A noisy radio-like sky (H, W) float32: Gaussian noise plus a few bright blobs."""
    img = rng.normal(0.0, 1e-4, size=(h, w)).astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    for _ in range(4):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        img += np.float32(5e-3) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 20.0).astype(np.float32)
    return img


def celestial_header(h: int, w: int, ra: float = 150.0, dec: float = 2.0) -> fits.Header:
    hdr = fits.Header()
    hdr["CTYPE1"], hdr["CTYPE2"] = "RA---SIN", "DEC--SIN"
    hdr["CRPIX1"], hdr["CRPIX2"] = w / 2 + 0.5, h / 2 + 0.5
    hdr["CRVAL1"], hdr["CRVAL2"] = ra, dec
    hdr["CDELT1"], hdr["CDELT2"] = -1e-3, 1e-3
    hdr["RADESYS"] = "ICRS"
    return hdr


def write_fits(path: Path, data: np.ndarray, header: fits.Header | None = None) -> Path:
    fits.PrimaryHDU(data, header=header).writeto(path, overwrite=True)
    return path


