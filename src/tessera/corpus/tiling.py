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


def central_box(h: int, w: int, size: int) -> tuple[int, int, int, int]:
    """The central ``size`` x ``size`` box ``(y, x, bh, bw)`` of an ``(H, W)`` plane; a side shorter than ``size``
    is kept whole. Shared by ``tessera ingest``'s ``center_crop`` and the evaluation key of the same name, so a
    pretraining corpus and an evaluation set cut the same field."""
    bh, bw = min(size, h), min(size, w)
    return (h - bh) // 2, (w - bw) // 2, bh, bw
