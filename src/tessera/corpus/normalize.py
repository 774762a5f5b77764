"""Per-image contrast normalization to [0, 1] (seed 000 §3.2).

Radio cutouts differ by orders of magnitude in flux scale and dynamic range across surveys; the
seed normalizes every cutout independently with astropy's IRAF-style ``ZScaleInterval``, clips to
[0, 1], maps non-finite pixels to 0 and constant cutouts to all zeros. Absolute flux calibration is
deliberately not preserved: the downstream tasks are morphological. No channel replication here:
that belongs to the model's input adapter (DESIGN §3.1).
"""

from __future__ import annotations

import numpy as np
from astropy.visualization import ZScaleInterval


def _zscale_plane(plane: np.ndarray, interval: ZScaleInterval) -> np.ndarray:
    """One 2D plane ``(H, W)`` -> float32 ``(H, W)`` in [0, 1].

    ZScale's limits are computed from the finite pixels only (astropy drops NaN/Inf before
    sampling); a plane without any finite pixel, or with a single finite value, is "constant"
    and maps to zeros (seed 000 §3.2: "pathological constant cutouts are mapped to zeros").
    """
    plane = np.asarray(plane, dtype=np.float32)
    finite = np.isfinite(plane)
    all_finite = bool(finite.all())  # the common case for filtered tiles: no masked copy needed
    if not all_finite and not finite.any():
        return np.zeros(plane.shape, dtype=np.float32)
    finite_values = plane.reshape(-1) if all_finite else plane[finite]
    if finite_values.min() == finite_values.max():
        return np.zeros(plane.shape, dtype=np.float32)
    vmin, vmax = interval.get_limits(finite_values)
    if not vmax > vmin:
        # ZScale can collapse to one value when most sampled pixels are identical (e.g. a mostly
        # zero image with a few bright pixels): fall back to the full finite range, which is what a
        # constant-contrast display would show, rather than dividing by zero.
        vmin, vmax = float(finite_values.min()), float(finite_values.max())
    out = (plane - np.float32(vmin)) / np.float32(vmax - vmin)
    np.clip(out, 0.0, 1.0, out=out)
    if not all_finite:
        out[~finite] = 0.0
    return out


def zscale_normalize(arr: np.ndarray, contrast: float = 0.25, n_samples: int = 1000) -> np.ndarray:
    """ZScale each plane independently, clip to [0, 1], non-finite -> 0, constant -> zeros.

    arr: ``(H, W)`` or ``(C, H, W)`` raw values (any real dtype).
    Returns float32 of the same shape with values in [0, 1]; channels are scaled independently
    (seed 000 §3.2 treats every image independently; multi-band data keeps its channels).
    """
    arr = np.asarray(arr)
    if arr.ndim not in (2, 3):
        raise ValueError(f"zscale_normalize expects (H, W) or (C, H, W), got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool) or np.iscomplexobj(arr):
        raise ValueError(f"zscale_normalize expects real numeric data, got dtype {arr.dtype}")
    interval = ZScaleInterval(n_samples=n_samples, contrast=contrast)
    if arr.ndim == 2:
        return _zscale_plane(arr, interval)
    return np.stack([_zscale_plane(plane, interval) for plane in arr]).astype(np.float32, copy=False)


STRETCHES = ("zscale", "minmax")


def minmax_normalize(arr: np.ndarray) -> np.ndarray:
    """Linear per-plane stretch of the finite range to [0, 1]: ``(x - min) / (max - min)``; non-finite -> 0,
    constant planes -> zeros. arr: ``(H, W)`` or ``(C, H, W)``; float32 of the same shape.

    For images whose brightness profile is the signal (strong lenses, issue 16: DeepLense's arrays are min-max
    scaled this way): ZScale's limits sit a few noise sigma around the sky median, so it saturates every pixel
    of an Einstein ring at 1 and keeps only the ring's outline, which erases the flux perturbations substructure
    makes."""
    arr = np.asarray(arr, dtype=np.float32)
    planes = arr[None] if arr.ndim == 2 else arr
    if planes.ndim != 3:
        raise ValueError(f"minmax_normalize expects (H, W) or (C, H, W), got shape {arr.shape}")
    out = np.zeros(planes.shape, dtype=np.float32)
    for c, plane in enumerate(planes):
        finite = np.isfinite(plane)
        if not finite.any():
            continue
        lo, hi = float(plane[finite].min()), float(plane[finite].max())
        if hi > lo:
            out[c] = np.where(finite, (plane - np.float32(lo)) / np.float32(hi - lo), 0.0)
    return out[0] if arr.ndim == 2 else out


def normalize(arr: np.ndarray, stretch: str = "zscale") -> np.ndarray:
    """Per-image normalization to [0, 1] by ``stretch`` (one of STRETCHES): ZScale (the default, seed 000 §3.2)
    or the linear min-max stretch."""
    if stretch == "zscale":
        return zscale_normalize(arr)
    if stretch == "minmax":
        return minmax_normalize(arr)
    raise ValueError(f"unknown stretch {stretch!r}; expected one of {STRETCHES}")
