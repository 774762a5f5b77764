"""The ``lineart`` view regime (issue 20; seed 002 §4): views of construction sheets that keep thin lines.

What a radio view does and a sheet cannot take:
- blur, asinh/flux remapping and banding erase or fake 1-pixel lines: none here (a small ink gain and light
  noise are the only photometric operators);
- dihedral transforms: sheets have a canonical orientation (title block, dimension text reading direction,
  seed 002 §4), so there are none by default; a 180-degree turn is an option (``lineart.p_rot180``);
- a bilinear resize from a crop several times larger than the view samples the crop on a coarse grid and misses
  1-pixel lines (aliasing); here the crop is sampled at (at least) its own resolution and then *max*-pooled to
  the view size, so ink (bright, after ingest's inversion) survives every downscale.

Line-thickness jitter (1 pixel at the view's resolution): dilation is a 3x3 max filter; erosion is the
thin-line-preserving erosion ``max(erode(x), min(x, dilate(x - open(x))))``: the white top-hat ``x - open(x)``
holds exactly the structures thinner than the 3x3 element, which plain erosion would delete (grayscale
morphology, Serra 1982 ch. 2), and its dilation keeps the pixels where such a line meets a thick wall, so walls
get thinner while 1-pixel lines stay, connected.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from tessera.views.config import LineartConfig
from tessera.views.geometry import box_side, crop_resize, jitter_boxes, rand


def dilate(x: torch.Tensor) -> torch.Tensor:
    """3x3 grayscale dilation (max filter). x: (N, C, S, S) -> same shape."""
    return F.max_pool2d(x, 3, stride=1, padding=1)


def erode(x: torch.Tensor) -> torch.Tensor:
    """3x3 grayscale erosion (min filter; the border counts as ink-free). x: (N, C, S, S) -> same shape."""
    return -F.max_pool2d(F.pad(-x, (1, 1, 1, 1), value=0.0), 3, stride=1)


def thin_preserving_erode(x: torch.Tensor) -> torch.Tensor:
    """One pixel off every structure that holds a 3x3 ink square, thin lines kept (module docstring).

    ``max(erode(x), min(x, dilate(top_hat)))``: the top-hat keeps the thin lines, and its 1-pixel dilation keeps
    the pixels where a thin line meets a thick wall, so a line running into a wall stays connected to it.
    x: (N, C, S, S) -> same shape."""
    eroded = erode(x)
    top_hat = (x - dilate(eroded)).clamp_min(0.0)
    return torch.maximum(eroded, torch.minimum(x, dilate(top_hat)))


def supersample_factor(boxes: torch.Tensor, size: int, cap: int) -> int:
    """The integer f such that a crop sampled on an (f S)^2 grid has a sample spacing <= 1 source pixel
    (every 1-pixel line is within half a pixel of a sample), capped at ``cap``. boxes: (..., 4)."""
    side = float(box_side(boxes).max()) if boxes.numel() else float(size)
    return max(1, min(cap, math.ceil(side / size)))


def ink_preserving_crops(x: torch.Tensor, boxes: torch.Tensor, size: int, cap: int) -> torch.Tensor:
    """Crops of ``boxes`` at ``size`` that keep thin bright lines: bilinear at f x size, then f x f max-pool.
    x: (B, C, H, W); boxes: (B, V, 4) -> (B, V, C, size, size) in [0, 1]."""
    f = supersample_factor(boxes, size, cap)
    fine = crop_resize(x, boxes, size * f, "bilinear").clamp_(0.0, 1.0)  # (B, V, C, fS, fS)
    if f == 1:
        return fine
    b, v, c = fine.shape[:3]
    return F.max_pool2d(fine.flatten(0, 2)[:, None], f).view(b, v, c, size, size)


def sample_lineart_params(cfg: LineartConfig, n: int, generator: torch.Generator, device) -> dict[str, torch.Tensor]:
    """Per-view draws for ``n`` views: shift (n, 2), scale (n,), rot180, thicken, thin, noise (n,) bool, gain (n,)."""

    def coin(p: float) -> torch.Tensor:
        return rand(generator, (n,), device) < p

    shift = (rand(generator, (n, 2), device) * 2 - 1) * cfg.translate
    scale = 1 + (rand(generator, (n,), device) * 2 - 1) * cfg.scale_jitter
    u = rand(generator, (n,), device)  # one draw decides thicken / thin / neither: never both
    thicken = u < cfg.p_thicken
    thin = (u >= cfg.p_thicken) & (u < cfg.p_thicken + cfg.p_thin)
    gain = cfg.ink_gain[0] + (cfg.ink_gain[1] - cfg.ink_gain[0]) * rand(generator, (n,), device)
    return {"shift": shift, "scale": scale, "rot180": coin(cfg.p_rot180), "thicken": thicken, "thin": thin,
            "noise": coin(cfg.p_noise), "gain": gain}


def _where(flag: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.where(flag[:, None, None, None], a, b)


def lineart_augment(views: torch.Tensor, p: dict[str, torch.Tensor], cfg: LineartConfig,
                    generator: torch.Generator) -> torch.Tensor:
    """180-degree turn -> thickness jitter -> ink gain -> noise, then clamp. views: (N, C, S, S) in [0, 1]."""
    x = _where(p["rot180"], views.flip(-2, -1), views)
    x = _where(p["thicken"], dilate(x), x)
    x = _where(p["thin"], thin_preserving_erode(x), x)
    x = x * p["gain"][:, None, None, None]
    if cfg.p_noise > 0 and cfg.noise_sigma > 0:
        z = torch.randn(x.shape, generator=generator, device=generator.device).to(x.device)
        x = x + z * (cfg.noise_sigma * p["noise"].to(x.dtype))[:, None, None, None]
    return x.clamp_(0.0, 1.0)


def lineart_views(x: torch.Tensor, boxes: torch.Tensor, size: int, cfg: LineartConfig,
                  generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """The full regime on crop boxes: jitter, ink-preserving crop, augment.
    x: (B, C, H, W); boxes: (B, V, 4) -> views (B, V, C, S, S), sampled boxes (B, V, 4), applied flags (B, V)."""
    b, v = boxes.shape[:2]
    p = sample_lineart_params(cfg, b * v, generator, x.device)
    sample_boxes = jitter_boxes(boxes, p["shift"].view(b, v, 2), p["scale"].view(b, v))
    views = ink_preserving_crops(x, sample_boxes, size, cfg.max_supersample)
    flat = lineart_augment(views.flatten(0, 1), p, cfg, generator)
    applied = {name: p[name].view(b, v) for name in ("rot180", "thicken", "thin", "noise")}
    return flat.view_as(views), sample_boxes, applied
