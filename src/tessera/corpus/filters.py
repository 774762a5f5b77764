"""Cutout filters (seed 000 §3.1): drop tiles with any NaN/Inf, all-zero tiles and constant tiles,
and the raw pixel statistics recorded in the manifest (before normalization)."""

from __future__ import annotations

import numpy as np

DROP_REASONS = ("nan_or_inf", "all_zero", "constant")


def drop_reason(tile: np.ndarray) -> str | None:
    """Why a raw tile ``(C, H, W)`` is dropped, or None to keep it.

    Order matters for the counts: a tile with a NaN is "nan_or_inf" even if the rest is zero; an
    all-zero tile is "all_zero" rather than "constant" (the seed names both cases).
    """
    if not np.isfinite(tile).all():
        return "nan_or_inf"
    lo, hi = tile.min(), tile.max()
    if lo == 0 and hi == 0:
        return "all_zero"
    if lo == hi:
        return "constant"
    return None


def pixel_stats(tile: np.ndarray) -> dict[str, float]:
    """Raw statistics of a kept (finite) tile ``(C, H, W)`` over all channels, as Python floats."""
    flat = tile.reshape(-1)
    return {
        "raw_min": float(flat.min()),
        "raw_max": float(flat.max()),
        "raw_mean": float(flat.mean(dtype=np.float64)),
        "raw_std": float(flat.std(dtype=np.float64)),
        "raw_median": float(np.median(flat)),
    }
