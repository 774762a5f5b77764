"""Tiling a plane into cutouts (seed 000 §3.1): non-overlapping tiles by default, partial edge tiles
dropped; planes smaller than a tile are kept whole when large enough, otherwise skipped."""

from __future__ import annotations


def tile_origins(size: int, tile: int, stride: int) -> list[int]:
    """Start offsets along one axis of length ``size`` for full tiles only (partial edge tiles are dropped)."""
    if size < tile:
        return []
    return list(range(0, size - tile + 1, stride))


def plan_tiles(h: int, w: int, tile: int, stride: int, min_tile: int) -> list[tuple[int, int, int, int]] | str:
    """Tile boxes ``(y, x, th, tw)`` for an ``(H, W)`` plane, or the reason it yields none.

    A plane with both sides >= ``tile`` is cut into full tiles in row-major order. A plane smaller than
    a tile in either direction is kept whole as one cutout when both sides are >= ``min_tile``
    (e.g. 300x300 FIRST images with 512 tiles), otherwise it is skipped with reason "too_small".
    """
    if h >= tile and w >= tile:
        return [(y, x, tile, tile) for y in tile_origins(h, tile, stride) for x in tile_origins(w, tile, stride)]
    if h >= min_tile and w >= min_tile:
        return [(0, 0, h, w)]
    return "too_small"
