"""Cutout filters (seed 000 §3.1): drop tiles with NaN/Inf, all-zero tiles and constant tiles, and the raw
pixel statistics recorded in the manifest (before normalization).

Seed 000 §3.1 drops every tile with a non-finite pixel, which is right for mosaic borders (large blanked
areas) and stays the default (``max_nan_fraction = 0``). Real cutout sets also blank a handful of pixels
inside an otherwise good image (4 of 832 FRI/FRII FITS cutouts of a public benchmark); with
``max_nan_fraction > 0`` a tile whose non-finite fraction is at most that threshold is kept: ZScale is then
computed on its finite pixels and the blanked pixels become 0 after normalization (DESIGN §3.1).
"""

from __future__ import annotations

import numpy as np

DROP_REASONS = ("nan_or_inf", "all_zero", "constant")
KEPT_REASONS = ("kept_with_blanks",)  # kept tiles that are still worth counting


def nan_fraction(tile: np.ndarray) -> float:
    """Fraction of non-finite (NaN/Inf) pixels of ``tile`` (any shape)."""
    if tile.size == 0:
        return 0.0
    return float(np.count_nonzero(~np.isfinite(tile))) / tile.size


def drop_reason(tile: np.ndarray, max_nan_fraction: float = 0.0) -> str | None:
    """Why a raw tile ``(C, H, W)`` is dropped, or None to keep it.

    Order matters for the counts: a tile with too many non-finite pixels is "nan_or_inf" even if the
    rest is zero; an all-zero tile is "all_zero" rather than "constant" (seed 000 names both cases).
    Zero/constant are judged on the finite pixels, so a kept tile with blanks is never constant.
    """
    finite = np.isfinite(tile)
    if not finite.all():
        if not finite.any() or nan_fraction(tile) > max_nan_fraction:
            return "nan_or_inf"
        values = tile[finite]
    else:
        values = tile
    lo, hi = values.min(), values.max()
    if lo == 0 and hi == 0:
        return "all_zero"
    if lo == hi:
        return "constant"
    return None


def pixel_stats(tile: np.ndarray) -> dict[str, float]:
    """Raw statistics of a kept tile ``(C, H, W)`` over all channels and its finite pixels, as Python floats."""
    flat = tile.reshape(-1)
    if not np.isfinite(flat).all():
        flat = flat[np.isfinite(flat)]
    return {
        "raw_min": float(flat.min()),
        "raw_max": float(flat.max()),
        "raw_mean": float(flat.mean(dtype=np.float64)),
        "raw_std": float(flat.std(dtype=np.float64)),
        "raw_median": float(np.median(flat)),
    }
