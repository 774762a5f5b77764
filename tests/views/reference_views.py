"""A straightforward per-image NumPy/SciPy implementation of the same view recipe (seed 000 §6.1, §7.1,
Table 3): loops over tiles, one ``scipy.ndimage.affine_transform`` per crop and channel.

It lives with the tests (issue 18: reference implementations belong with the tests and benchmarks that use
them) and is the yardstick for ``benchmarks/views.py`` (speed ratio) and for tests that check the batched
``ViewGenerator`` samples the same distribution (not bitwise: the random streams differ).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from tessera.views.config import AnchorConfig, AugmentConfig, ViewConfig


def _tile_edges(length: int, grid: int) -> list[tuple[int, int]]:
    """Adaptive-pooling tile bounds along one axis (floor start, ceil end)."""
    return [(i * length // grid, -((-(i + 1) * length) // grid)) for i in range(grid)]


def reference_anchor(img: np.ndarray, cfg: AnchorConfig, rng: np.random.Generator) -> np.ndarray:
    """Anchor (x, y) of one cutout (C, H, W) with the configured strategy (see anchors.py)."""
    _, h, w = img.shape
    if cfg.strategy == "center":
        return np.array([w / 2, h / 2])
    if cfg.strategy == "uniform":
        return rng.random(2) * np.array([w, h])
    inten = img.mean(axis=0)
    gpeak, mean, std = inten.max(), inten.mean(), inten.std(ddof=1)
    # (i) z-score peaks on a z_grid x z_grid tile grid, greedy with minimum separation
    g = cfg.z_grid
    ys, xs = _tile_edges(h, g), _tile_edges(w, g)
    tiles = []
    for r, (y0, y1) in enumerate(ys):
        for c, (x0, x1) in enumerate(xs):
            t = inten[y0:y1, x0:x1]
            k = int(np.argmax(t))
            z = (t.flat[k] - mean) / std if std > 1e-12 else -np.inf
            tiles.append((z, r, c, x0 + k % t.shape[1] + 0.5, y0 + k // t.shape[1] + 0.5, t.flat[k]))
    z_cands = []
    alive = list(tiles)
    for _ in range(cfg.z_top_k):
        if not alive:
            break
        best = max(alive, key=lambda t: t[0])
        if best[0] >= cfg.z_floor and best[5] > cfg.peak_fraction * gpeak:
            z_cands.append(best[3:5])
        alive = [t for t in alive if max(abs(t[1] - best[1]), abs(t[2] - best[2])) >= cfg.z_min_separation]
    # (ii) centres of the top mean-|intensity| tiles of a mean_grid x mean_grid grid
    g = cfg.mean_grid
    ys, xs = _tile_edges(h, g), _tile_edges(w, g)
    scored = []
    for (y0, y1) in ys:
        for (x0, x1) in xs:
            t = inten[y0:y1, x0:x1]
            scored.append((np.abs(t).mean(), (x0 + x1) / 2, (y0 + y1) / 2, t.max()))
    scored.sort(key=lambda s: -s[0])
    m_cands = [s[1:3] for s in scored[: cfg.mean_top_k] if s[3] > cfg.peak_fraction * gpeak]
    use_mean = rng.random() < cfg.p_mean
    chosen = m_cands if (use_mean and m_cands) or not z_cands else z_cands
    if chosen:
        return np.array(chosen[rng.integers(len(chosen))], dtype=float)
    if inten.min() >= gpeak:
        return np.array([w / 2, h / 2])
    k = int(np.argmax(inten))
    return np.array([k % w + 0.5, k // w + 0.5])


def _square_in(outer: np.ndarray, scale: float, rng: np.random.Generator) -> np.ndarray:
    ow, oh = outer[2] - outer[0], outer[3] - outer[1]
    side = math.sqrt(scale) * min(ow, oh)
    x0 = outer[0] + rng.random() * (ow - side)
    y0 = outer[1] + rng.random() * (oh - side)
    return np.array([x0, y0, x0 + side, y0 + side])


def _roi(anchor: np.ndarray, frac: float, h: int, w: int) -> np.ndarray:
    side = frac * min(h, w)
    x0 = min(max(anchor[0] - side / 2, 0.0), w - side)
    y0 = min(max(anchor[1] - side / 2, 0.0), h - side)
    return np.array([x0, y0, x0 + side, y0 + side])


def ioa(a: np.ndarray, b: np.ndarray) -> float:
    """Seed 000 Eq. 7: area(a & b) / area(a)."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return iw * ih / max((a[2] - a[0]) * (a[3] - a[1]), 1e-12)


def _bright_fraction(img: np.ndarray, box: np.ndarray, thr: float) -> float:
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    patch = (img[:, y0:y1, x0:x1] > thr).any(axis=0)
    return float(patch.mean()) if patch.size else 0.0


def crop_resize_np(img: np.ndarray, box: np.ndarray, size: int, order: int = 1) -> np.ndarray:
    """Crop ``box`` (x0, y0, x1, y1) of (C, H, W) and resize to (C, size, size) with affine_transform."""
    sy, sx = (box[3] - box[1]) / size, (box[2] - box[0]) / size
    offset = (box[1] + 0.5 * sy - 0.5, box[0] + 0.5 * sx - 0.5)  # output pixel centre -> input pixel index
    return np.stack(
        [ndimage.affine_transform(ch, (sy, sx), offset=offset, output_shape=(size, size), order=order, mode="nearest")
         for ch in img]
    ).astype(np.float32)


def _augment(view_box: np.ndarray, img: np.ndarray, reg: AugmentConfig, bands: int, cfg: ViewConfig,
             rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    """Jittered crop + dihedral + photometric ops of one view; returns (view, non-empty)."""
    s = cfg.output_size
    box = view_box
    if cfg.regime == "paper" and rng.random() < reg.p_affine:
        side = box[2] - box[0]
        c = (box[:2] + box[2:]) / 2 + rng.uniform(-reg.translate, reg.translate, 2) * side
        half = side * (1 + rng.uniform(-reg.scale_jitter, reg.scale_jitter)) / 2
        box = np.concatenate([c - half, c + half])
    v = np.clip(crop_resize_np(img, box, s), 0, 1)
    if cfg.regime == "none":
        return v, bool((v > cfg.nonempty.threshold).any(0).mean() >= cfg.nonempty.min_fraction)
    k = int(rng.integers(4)) if rng.random() < reg.p_rot90 else 0
    v = np.rot90(v, k, axes=(-2, -1))
    if rng.random() < reg.p_hflip:
        v = v[..., ::-1]
    nonempty = bool((v > cfg.nonempty.threshold).any(0).mean() >= cfg.nonempty.min_fraction)
    if rng.random() < reg.p_asinh:
        a = rng.uniform(*reg.asinh_alpha)
        v = np.arcsinh(a * v) / np.arcsinh(a)
    if rng.random() < reg.p_noise:
        v = v + rng.normal(0, reg.noise_sigma, v.shape)
    if bands and rng.random() < reg.p_banding:
        v = v.copy()
        for _ in range(bands):
            width = min(max(int(round(rng.uniform(*reg.band_width) * s)), 1), s)
            start = int(rng.integers(0, s - width + 1))
            off = rng.uniform(*reg.band_offset)
            if rng.random() < 0.5:
                v[:, :, start:start + width] += off
            else:
                v[:, start:start + width, :] += off
    if rng.random() < reg.p_flux:
        f = rng.uniform(*reg.flux_factor)
        flat = v.reshape(v.shape[0], -1)
        t = (flat.mean(1) + reg.flux_threshold_k * flat.std(1, ddof=1))[:, None, None]
        v = np.where(v < t, v * f, v)
    return np.clip(v, 0, 1).astype(np.float32), nonempty


def reference_views(img: np.ndarray, cfg: ViewConfig, branch: str, rng: np.random.Generator) -> dict:
    """Views of one cutout (C, H, W) in [0, 1]: views (V, C, S, S), boxes (V, 4), roi (4,), anchor (2,),
    nonempty (V,) bool, wide_field bool."""
    _, h, w = img.shape
    anchor = reference_anchor(img, cfg.anchors, rng)
    roi = _roi(anchor, rng.uniform(*cfg.roi_side), h, w)
    wide_field = False
    if branch == "reconstruction":
        full = np.array([0.0, 0.0, w, h])
        if rng.random() < cfg.p_global:
            wide_field, roi = True, full
            boxes = [_square_in(full, rng.uniform(*cfg.global_scale), rng)]
        else:
            cands = [_square_in(roi, rng.uniform(*cfg.recon_scale), rng) for _ in range(cfg.crop_attempts)]
            fracs = [_bright_fraction(img, b, cfg.nonempty.threshold) for b in cands]
            ok = [i for i, f in enumerate(fracs) if f >= cfg.nonempty.min_fraction]
            boxes = [cands[ok[0] if ok else int(np.argmax(fracs))]]
        regimes = [(cfg.mild, cfg.mild.bands)]
    else:
        wide = _square_in(roi, rng.uniform(*cfg.wide_scale), rng)
        extra = None
        for _ in range(cfg.ioa_attempts):
            cand = _square_in(roi, rng.uniform(*cfg.extra_scale), rng)
            if ioa(cand, wide) >= cfg.min_ioa:
                extra = cand
                break
        if extra is None:  # place the last draw's side inside the wide view (IoA = 1)
            side, ws = cand[2] - cand[0], wide[2] - wide[0]
            x0, y0 = wide[:2] + rng.random(2) * max(ws - side, 0.0)
            extra = np.array([x0, y0, x0 + side, y0 + side])
        boxes = [wide, extra]
        regimes = [(cfg.mild, cfg.contrastive_wide_bands), (cfg.strong, cfg.strong.bands)]
    out = [_augment(b, img, reg, bands, cfg, rng) for b, (reg, bands) in zip(boxes, regimes)]
    return {
        "views": np.stack([o[0] for o in out]),
        "boxes": np.stack(boxes),
        "roi": roi,
        "anchor": anchor,
        "nonempty": np.array([o[1] for o in out]),
        "wide_field": wide_field,
    }
