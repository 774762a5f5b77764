"""FITS headers and files that look like real survey products (cf. the SKA SDC1 and SkyView/FIRST headers in
../shared/data): a celestial SIN/TAN WCS, BUNIT, restoring beam (BMAJ/BMIN/BPA), the observing frequency, and
optionally a degenerate FREQ (NAXIS=3) or FREQ+STOKES (NAXIS=4) axis as interferometric imagers write them.

No DATE or other time-dependent cards are written, so the same seed gives byte-identical files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits

from tessera.simulate.config import InstrumentConfig


def make_header(cfg: InstrumentConfig, shape: tuple[int, int], ra_deg: float, dec_deg: float, obj: str) -> fits.Header:
    """A 2-D image header for ``shape = (H, W)`` centred on (ra_deg, dec_deg); the reference pixel is the centre."""
    h, w = shape
    pix_deg = cfg.pixel_scale_arcsec / 3600.0
    proj = cfg.projection
    cards = [
        ("BUNIT", "JY/BEAM", "Brightness unit"),
        ("BTYPE", "Intensity", ""),
        ("CTYPE1", f"RA---{proj}", "Right ascension, projection"),
        ("CRVAL1", float(ra_deg), "[deg] Coordinate value at reference point"),
        ("CDELT1", -pix_deg, "[deg] Coordinate increment at reference point"),
        ("CRPIX1", (w + 1) / 2.0, "Pixel coordinate of reference point"),
        ("CUNIT1", "deg", ""),
        ("CTYPE2", f"DEC--{proj}", "Declination, projection"),
        ("CRVAL2", float(dec_deg), "[deg] Coordinate value at reference point"),
        ("CDELT2", pix_deg, "[deg] Coordinate increment at reference point"),
        ("CRPIX2", (h + 1) / 2.0, "Pixel coordinate of reference point"),
        ("CUNIT2", "deg", ""),
        ("RADESYS", "FK5", "Equatorial coordinate system"),
        ("EQUINOX", 2000.0, "[yr] Equinox of equatorial coordinates"),
        ("BMAJ", cfg.beam_fwhm_arcsec / 3600.0, "[deg] Restoring beam major axis FWHM"),
        ("BMIN", cfg.beam_minor / 3600.0, "[deg] Restoring beam minor axis FWHM"),
        ("BPA", float(cfg.beam_pa_deg), "[deg] Restoring beam position angle (E of N)"),
        ("RESTFRQ", float(cfg.frequency_hz), "[Hz] Observing (reference) frequency"),
        ("BANDWID", float(cfg.bandwidth_hz), "[Hz] Bandwidth"),
        ("SPECSYS", "TOPOCENT", ""),
        ("TELESCOP", "TESSERA-SIM", "Simulated interferometer"),
        ("OBJECT", obj, ""),
        ("ORIGIN", "tessera simulate", ""),
        ("NOISERMS", float(cfg.noise_rms_jy), "[Jy/beam] Thermal noise rms injected"),
    ]
    header = fits.Header()
    for key, value, comment in cards:
        header[key] = (value, comment)
    return header


def write_image(path: str | Path, image: np.ndarray, header: fits.Header, naxis: int = 2) -> Path:
    """Write ``image: (H, W)`` float32 as a primary HDU; naxis 3/4 adds leading length-1 FREQ(/STOKES) axes."""
    if naxis not in (2, 3, 4):
        raise ValueError(f"naxis must be 2, 3 or 4, got {naxis}")
    data = np.asarray(image, dtype=np.float32).reshape((1,) * (naxis - 2) + image.shape)
    hdr = header if naxis == 2 else add_cube_axes(header, naxis)
    path = Path(path)
    fits.PrimaryHDU(data=data, header=hdr).writeto(path, overwrite=True, output_verify="exception")
    return path


def add_cube_axes(header: fits.Header, naxis: int) -> fits.Header:
    """Copy of a :func:`make_header` header with a degenerate FREQ axis (naxis=3) or FREQ and STOKES (naxis=4)."""
    out = header.copy()
    out["CTYPE3"] = ("FREQ", "")
    out["CRVAL3"] = (float(header["RESTFRQ"]), "[Hz] Frequency of the plane")
    out["CDELT3"] = (float(header["BANDWID"]), "[Hz] Bandwidth")
    out["CRPIX3"] = (1.0, "")
    out["CUNIT3"] = ("Hz", "")
    if naxis == 4:
        out["CTYPE4"] = ("STOKES", "")
        out["CRVAL4"] = (1.0, "Stokes I")
        out["CDELT4"] = (1.0, "")
        out["CRPIX4"] = (1.0, "")
    return out
