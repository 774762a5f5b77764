"""ROI anchor proposal, batched with tile statistics (seed 000 §6.1 item 2), and a small registry of
strategies so the same geometry serves non-radio data.

Strategies (``AnchorConfig.strategy``):
- ``radio``: the seed's recipe. (i) On a 16x16 tile grid, the top K_z = 3 tile peaks by z-score
  (floor 2.5, at least two tiles apart); (ii) the centres of the top K_mean = 5 tiles of an 8x8 grid by
  mean absolute intensity. Candidates whose local (tile) peak does not exceed 0.8 x the cutout's global
  peak are dropped; one set is chosen with p_mean (the other if the chosen one is empty), then one
  candidate uniformly. With no candidate left (a blank cutout) the anchor is the global peak, or the
  centre for an all-constant cutout.
- ``center``: the cutout centre (centred data such as lensing stamps).
- ``uniform``: a uniform position (dense fields).
- ``ink``: a position drawn by ink density on a tile grid (line-art sheets, ink bright after inversion).

Each strategy maps ``x: (N, C, H, W)`` (same size within a call) to anchors ``(N, 2)`` as (x, y) pixels.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from tessera.errors import ConfigError
from tessera.views.config import AnchorConfig
from tessera.views.geometry import rand

AnchorFn = Callable[[torch.Tensor, AnchorConfig, torch.Generator], torch.Tensor]
ANCHOR_REGISTRY: dict[str, AnchorFn] = {}


def register_anchor(name: str) -> Callable[[AnchorFn], AnchorFn]:
    """Decorator adding an anchor strategy to the registry under ``name``."""

    def wrap(fn: AnchorFn) -> AnchorFn:
        ANCHOR_REGISTRY[name] = fn
        return fn

    return wrap


def propose_anchors(
    x: torch.Tensor, cfg: AnchorConfig, generator: torch.Generator, stats: tuple[torch.Tensor, ...] | None = None
) -> torch.Tensor:
    """Anchors of a same-size batch with the configured strategy. x: (N, C, H, W) -> (N, 2) (x, y) pixels.

    ``stats``: precomputed :func:`radio_stats` of x (radio strategy only), so a caller that scans the
    full-resolution cutouts anyway can share the pass."""
    try:
        fn = ANCHOR_REGISTRY[cfg.strategy]
    except KeyError:
        raise ConfigError(
            f"config key 'anchors.strategy': unknown strategy {cfg.strategy!r} (known: {', '.join(ANCHOR_REGISTRY)})"
        ) from None
    return fn(x, cfg, generator) if stats is None else fn(x, cfg, generator, stats=stats)


def image_centres(n: int, h: int, w: int, device) -> torch.Tensor:
    """(N, 2) float32 (w / 2, h / 2) made by fills on ``device`` (a tensor from a Python list would be a
    host-to-device copy, which waits for the device)."""
    return torch.stack([torch.full((n,), w / 2, device=device), torch.full((n,), h / 2, device=device)], dim=-1)


@register_anchor("center")
def center_anchors(x: torch.Tensor, cfg: AnchorConfig, generator: torch.Generator) -> torch.Tensor:
    """The cutout centre. x: (N, C, H, W) -> (N, 2)."""
    n, _, h, w = x.shape
    return image_centres(n, h, w, x.device)


@register_anchor("uniform")
def uniform_anchors(x: torch.Tensor, cfg: AnchorConfig, generator: torch.Generator) -> torch.Tensor:
    """A uniform position in the cutout. x: (N, C, H, W) -> (N, 2)."""
    n, _, h, w = x.shape
    u = rand(generator, (n, 2), x.device)
    return torch.stack([u[:, 0] * w, u[:, 1] * h], dim=-1)  # scalar products: no host-to-device copy


@register_anchor("ink")
def ink_anchors(x: torch.Tensor, cfg: AnchorConfig, generator: torch.Generator) -> torch.Tensor:
    """Line-art (issue 20): a tile of the ``mean_grid`` grid drawn with probability proportional to its ink
    (bright = ink after ingest's inversion), then a uniform point in it; uniform for an ink-free cutout.
    x: (N, C, H, W) -> (N, 2)."""
    n, _, h, w = x.shape
    g = max(1, min(cfg.mean_grid, h, w))
    density = F.adaptive_avg_pool2d(x.amax(dim=1, keepdim=True).float(), g).flatten(1)  # (N, g*g)
    weights = density + (density.sum(1, keepdim=True) <= 0).float()  # blank cutout: every tile alike
    u = rand(generator, (n,), x.device)
    cdf = weights.cumsum(1) / weights.sum(1, keepdim=True)
    tile = torch.searchsorted(cdf, u[:, None]).clamp(max=g * g - 1)[:, 0]
    offset = rand(generator, (n, 2), x.device)
    col, row = (tile % g).float(), (tile // g).float()
    return torch.stack([(col + offset[:, 0]) * w / g, (row + offset[:, 1]) * h / g], dim=1)


def tile_bounds(length: int, grid: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Start/end pixel of each tile of adaptive pooling along one axis (PyTorch's floor/ceil rule)."""
    i = torch.arange(grid, device=device)
    start = torch.div(i * length, grid, rounding_mode="floor")
    end = torch.div((i + 1) * length + grid - 1, grid, rounding_mode="floor")
    return start, end


def zscore_peak_candidates(
    intensity: torch.Tensor, cfg: AnchorConfig
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Top-K_z tile peaks by z-score, greedily at least ``z_min_separation`` tiles apart (seed 000 §6.1 (i)).

    The z-score of a tile is (tile peak - cutout mean) / cutout std: a peak is "significant" relative to
    the whole field. intensity: (N, H, W) -> xy (N, K_z, 2) peak pixel centres, local peak (N, K_z),
    valid (N, K_z) (z >= floor).
    """
    n, h, w = intensity.shape
    g = cfg.z_grid
    peak, idx = F.adaptive_max_pool2d(intensity[:, None], g, return_indices=True)  # (N, 1, g, g)
    peak, idx = peak[:, 0].flatten(1), idx[:, 0].flatten(1)  # (N, g*g)
    flat = intensity.flatten(1)
    mean = flat.mean(1, keepdim=True)
    # One-pass variance (data in [0, 1], so no cancellation issue); 2x faster than torch.std on CPU.
    meansq = torch.linalg.vector_norm(flat, dim=1, keepdim=True).square() / flat.shape[1]
    var = (meansq - mean.square()).clamp(min=0) * (flat.shape[1] / max(flat.shape[1] - 1, 1))
    std = var.sqrt()
    z = (peak - mean) / std.clamp(min=1e-12)
    z = torch.where(std > 1e-12, z, torch.full_like(z, float("-inf")))  # a flat cutout has no significant peak
    tiles, local, valid = zscore_select(z, peak, cfg)
    pos = idx.gather(1, tiles)  # flat pixel index of each chosen tile's peak
    xy = torch.stack([(pos % w).float() + 0.5, (pos // w).float() + 0.5], dim=-1)
    return xy, local, valid


def mean_tile_candidates(intensity: torch.Tensor, cfg: AnchorConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Centres of the top-K_mean tiles of the mean-|intensity| grid (seed 000 §6.1 (ii)).

    intensity: (N, H, W) -> xy (N, K_mean, 2) tile centres, local peak (N, K_mean) (tile maximum).
    """
    n, h, w = intensity.shape
    g = cfg.mean_grid
    k = min(cfg.mean_top_k, g * g)
    # Views inputs are in [0, 1], where |x| = x; the copy for abs() is only paid for signed data.
    # Off CPU |x| is always computed: checking the sign first would wait on the device.
    signed = intensity.device.type != "cpu" or bool(intensity.amin() < 0)
    magnitude = intensity.abs() if signed else intensity
    score = F.adaptive_avg_pool2d(magnitude[:, None], g)[:, 0].flatten(1)  # (N, g*g)
    tile_max = F.adaptive_max_pool2d(intensity[:, None], g)[:, 0].flatten(1)
    top = score.topk(k, dim=1).indices  # (N, k)
    ys, ye = tile_bounds(h, g, intensity.device)
    xs, xe = tile_bounds(w, g, intensity.device)
    r, c = top // g, top % g
    xy = torch.stack([(xs[c] + xe[c]).float() / 2, (ys[r] + ye[r]).float() / 2], dim=-1)
    return xy, tile_max.gather(1, top)


def tiles_divide(h: int, w: int, cfg: AnchorConfig) -> bool:
    """True when both tile grids split the cutout into equal, nested tiles (e.g. 512 px: 32 px z-tiles,
    64 px mean tiles), so every statistic can come from one reshape-based reduction (:func:`fast_candidates`)."""
    gz, gm = cfg.z_grid, cfg.mean_grid
    return h % gz == 0 and w % gz == 0 and gz % gm == 0


def zscore_select(
    z: torch.Tensor, peak: torch.Tensor, cfg: AnchorConfig
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Greedy top-K_z tiles by z-score with the minimum separation (Chebyshev distance in tiles).

    z, peak: (N, g*g) -> chosen tile index (N, K_z), local peak (N, K_z), valid (N, K_z) (z >= floor).
    """
    g = cfg.z_grid
    ti = torch.arange(g * g, device=z.device)
    tile_r, tile_c = ti // g, ti % g
    tiles, local, valid = [], [], []
    for _ in range(cfg.z_top_k):
        best = z.argmax(dim=1)  # (N,)
        tiles.append(best)
        local.append(peak.gather(1, best[:, None])[:, 0])
        valid.append(z.gather(1, best[:, None])[:, 0] >= cfg.z_floor)
        near = ((tile_r[None] - tile_r[best][:, None]).abs() < cfg.z_min_separation) & (
            (tile_c[None] - tile_c[best][:, None]).abs() < cfg.z_min_separation
        )
        z = z.masked_fill(near, float("-inf"))
    return torch.stack(tiles, 1), torch.stack(local, 1), torch.stack(valid, 1)


STATS_CHUNK = 2  # cutouts per pass group: one 512 x 512 cutout (1 MiB) stays cache-resident for all passes


def detection_image(x: torch.Tensor) -> torch.Tensor:
    """The image anchors are found on: the channel mean (radio: C = 1, no copy). x: (N, C, H, W) -> (N, H, W)."""
    return x[:, 0] if x.shape[1] == 1 else x.mean(dim=1)


def radio_stats(x: torch.Tensor, cfg: AnchorConfig) -> tuple[torch.Tensor, ...] | None:
    """The full-resolution statistics of :func:`radio_anchors` for a chunk of cutouts, or None when the
    strategy does not use them (another strategy, or tile grids that do not divide the cutout).
    x: (n, C, H, W) -> see :func:`full_res_stats`."""
    if cfg.strategy != "radio" or not tiles_divide(x.shape[-2], x.shape[-1], cfg):
        return None
    return full_res_stats(detection_image(x), cfg.z_grid)


def full_res_stats(intensity: torch.Tensor, g: int) -> tuple[torch.Tensor, ...]:
    """Every full-resolution statistic the radio anchors need, in contiguous reductions over one chunk.

    intensity: (n, H, W) with H, W divisible by g -> tile max (n, g, g), tile sum (n, g, g), global min (n,),
    sum of squares (n,).
    """
    n, h, w = intensity.shape
    th, tw = h // g, w // g
    rows = intensity.reshape(n, h, g, tw)  # one tile row segment per (row, tile column)
    # Tile max: first down the th rows of each tile band (a vectorized elementwise max across rows), then
    # along the tw columns of each tile on th-times less data.
    zmax = intensity.reshape(n, g, th, w).amax(2).reshape(n, g, g, tw).amax(-1)
    sums = rows.sum(-1).reshape(n, g, th, g).sum(2)
    flat = intensity.reshape(n, h * w)
    return zmax, sums, flat.amin(1), torch.linalg.vector_norm(flat, 2, dim=1).square()


def fast_candidates(intensity: torch.Tensor, cfg: AnchorConfig, stats: tuple[torch.Tensor, ...] | None = None):
    """Both candidate sets and the global statistics from reshape-based tile reductions (:func:`tiles_divide`).

    Same values as :func:`zscore_peak_candidates` / :func:`mean_tile_candidates`, but each full-resolution
    pass is a contiguous reduction over one tile row (a few ms per 32 x 512 x 512 batch on one core,
    against ~5x that for adaptive pooling with indices); the peak position is then looked up inside the
    K_z chosen tiles only. ``stats``: precomputed :func:`full_res_stats`.
    intensity: (N, H, W) -> (z_xy, z_local, z_valid, m_xy, m_local, gpeak, peak_xy, flat).
    """
    n, h, w = intensity.shape
    gz, gm = cfg.z_grid, cfg.mean_grid
    th, tw = h // gz, w // gz
    if stats is None:
        stats = tuple(torch.cat(t) for t in zip(*(full_res_stats(part, gz) for part in intensity.split(STATS_CHUNK))))
    zmax, sums, gmin, sumsq = stats
    total = sums.flatten(1).sum(1)
    # Mean-|intensity| score: |x| = x for the usual [0, 1] inputs, so the tile sums serve; signed data
    # pays one |x| pass (always on accelerators, where checking would cost a host sync).
    if intensity.device.type == "cpu" and bool((gmin >= 0).all()):
        l1 = sums
    else:
        l1 = intensity.abs().reshape(n, h, gz, tw).sum(-1).reshape(n, gz, th, gz).sum(2)
    mean = total / (h * w)
    var = ((sumsq - total * mean) / max(h * w - 1, 1)).clamp(min=0)
    std = var.sqrt()
    peak = zmax.flatten(1)
    gpeak = peak.amax(1)
    z = (peak - mean[:, None]) / std[:, None].clamp(min=1e-12)
    z = torch.where(std[:, None] > 1e-12, z, torch.full_like(z, float("-inf")))  # flat: no significant peak
    # The global peak's tile goes first, so one lookup gives both the fallback and the K_z positions.
    ztiles, z_local, z_valid = zscore_select(z, peak, cfg)
    tiles = torch.cat([peak.argmax(1, keepdim=True), ztiles], 1)  # (N, 1 + K_z)
    r, c = tiles // gz, tiles % gz
    blocks = intensity.reshape(n, gz, th, gz, tw)
    sel = blocks[torch.arange(n, device=intensity.device)[:, None], r, :, c, :]  # (N, 1 + K_z, th, tw)
    pos = sel.flatten(2).argmax(2)
    xy = torch.stack([(c * tw + pos % tw).float() + 0.5, (r * th + pos // tw).float() + 0.5], dim=-1)
    # Mean grid: each mean tile is an f x f block of z tiles.
    f = gz // gm
    score = l1.reshape(n, gm, f, gm, f).sum((2, 4)).flatten(1)  # (N, gm*gm); the mean up to a constant
    mmax = zmax.reshape(n, gm, f, gm, f).amax((2, 4)).flatten(1)
    k = min(cfg.mean_top_k, gm * gm)
    top = score.topk(k, dim=1).indices
    mr, mc = top // gm, top % gm
    mh, mw = h // gm, w // gm
    m_xy = torch.stack([(mc * mw).float() + mw / 2, (mr * mh).float() + mh / 2], dim=-1)
    return xy[:, 1:], z_local, z_valid, m_xy, mmax.gather(1, top), gpeak, xy[:, 0], gmin >= gpeak


@register_anchor("radio")
def radio_anchors(
    x: torch.Tensor, cfg: AnchorConfig, generator: torch.Generator, stats: tuple[torch.Tensor, ...] | None = None
) -> torch.Tensor:
    """The seed's two-heuristic anchor proposal (module docstring). x: (N, C, H, W) -> (N, 2) (x, y).

    ``stats``: precomputed :func:`radio_stats` (optional)."""
    n, _, h, w = x.shape
    intensity = detection_image(x)
    if tiles_divide(h, w, cfg):
        z_xy, z_local, z_valid, m_xy, m_local, gpeak, peak_xy, flat = fast_candidates(intensity, cfg, stats)
    else:
        z_xy, z_local, z_valid = zscore_peak_candidates(intensity, cfg)
        m_xy, m_local = mean_tile_candidates(intensity, cfg)
        gpeak, gidx = intensity.flatten(1).max(dim=1)
        peak_xy = torch.stack([(gidx % w).float() + 0.5, (gidx // w).float() + 0.5], dim=-1)
        flat = intensity.flatten(1).amin(1) >= gpeak
    # Keep anchors on bright emission: local peak > 0.8 x the cutout's global peak.
    z_valid = z_valid & (z_local > cfg.peak_fraction * gpeak[:, None])
    m_valid = m_local > cfg.peak_fraction * gpeak[:, None]
    has_z, has_m = z_valid.any(1), m_valid.any(1)
    want_mean = rand(generator, (n,), x.device) < cfg.p_mean
    use_mean = (want_mean & has_m) | (~has_z & has_m)
    use_z = ~use_mean & has_z
    weights = torch.cat([z_valid & use_z[:, None], m_valid & use_mean[:, None]], dim=1)  # (N, Kz + Km)
    # Uniform choice among the allowed candidates: argmax of uniform keys, -1 where not allowed.
    keys = torch.where(weights, rand(generator, tuple(weights.shape), x.device),
                       torch.full_like(weights, -1.0, dtype=torch.float32))
    choice = keys.argmax(dim=1)
    chosen = torch.cat([z_xy, m_xy], dim=1).gather(1, choice[:, None, None].expand(n, 1, 2))[:, 0]
    # No candidate at all: the global peak, or the centre of a flat cutout.
    centre = image_centres(n, h, w, x.device)
    fallback = torch.where(flat[:, None], centre, peak_xy)
    return torch.where((has_z | has_m)[:, None], chosen, fallback)
