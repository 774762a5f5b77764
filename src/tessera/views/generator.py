"""The batched view generator: whole batches as tensors, on CPU or CUDA unchanged.

Per call: one scan of the full-resolution cutouts (radio tile statistics + the reconstruction
informativeness table) -> anchors (anchors.py) -> per-sample ROI and crop boxes as tensors (geometry.py;
seed 000 §6.1 reconstruction, §7.1 contrastive) -> affine jitter folded into the boxes -> crop + resize +
exact dihedral transform in ONE grid_sample (the dihedral element permutes the sampling grid) -> non-empty
flags -> photometric augmentations of all B * V views at once with per-view parameters (augment.py) ->
clamp to [0, 1].

CPU speed notes (benchmarks/views.py): no host syncs in the common path; full-size temporaries are avoided
or processed in small chunks (fresh tens-of-MB buffers are page-faulted on every call and cost more than the
arithmetic); bool masks over full images are replaced by float 0/1 arithmetic or byte masks. On an
accelerator the chunking is off and masks replace index selection, so nothing waits on the host.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Sequence

import torch
import torch.nn.functional as F

from tessera.errors import TesseraError
from tessera.views.anchors import propose_anchors, radio_stats
from tessera.views.augment import AugmentParams, cat_params, photometric, sample_augment_params, slice_params
from tessera.views.config import AugmentConfig, ViewConfig
from tessera.views.geometry import (
    box_bright_fraction,
    box_ioa,
    box_side,
    bright_cell_counts,
    bright_indicator,
    bright_integral,
    crop_resize,
    full_boxes,
    jitter_boxes,
    rand,
    roi_around_anchor,
    square_in_box,
    summed_area,
    uniform,
)

Branch = Literal["reconstruction", "contrastive"]
SCAN_CHUNK = 2  # cutouts per full-resolution scan step on CPU (2 x 512 x 512 float32 = 2 MiB)
# Views per photometric pass on CPU (8 x 224 x 224 float32 = 1.5 MiB temporaries): temporaries well below
# the view tensor's size are reused by the allocator instead of being freshly page-faulted on every call.
PHOTOMETRIC_CHUNK = 8
BRANCHES = ("reconstruction", "contrastive")


@dataclass
class ViewBatch:
    """Views of B cutouts plus everything needed to inspect how they were made.

    Boxes are (x0, y0, x1, y1) in pixels of each sample's own parent cutout.
    """

    views: torch.Tensor  # (B, V, C, S, S) float32 in [0, 1]
    boxes: torch.Tensor  # (B, V, 4) crop boxes before affine jitter (the IoA constraint is on these)
    sample_boxes: torch.Tensor  # (B, V, 4) boxes actually sampled (after affine jitter)
    roi: torch.Tensor  # (B, 4) ROI (the full cutout for wide-field reconstruction views)
    anchors: torch.Tensor  # (B, 2) (x, y)
    wide_field: torch.Tensor  # (B,) bool: reconstruction wide-field crop (p_global)
    nonempty_views: torch.Tensor  # (B, V) bool
    image_sizes: torch.Tensor  # (B, 2) (H, W)
    applied: dict[str, torch.Tensor] = field(default_factory=dict)  # operator -> (B, V) bool
    k: torch.Tensor | None = None  # (B, V) quarter turns
    flip: torch.Tensor | None = None  # (B, V) bool

    @property
    def nonempty(self) -> torch.Tensor:
        """(B,) bool: every view of the sample passes the non-empty criterion (seed 000 §7.1.1)."""
        return self.nonempty_views.all(dim=1)


def stack_padded(images: Sequence[torch.Tensor] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One (B, C, Hp, Wp) tensor from images of possibly different sizes, padded by edge replication.

    Replication makes border sampling of the padded batch equal border sampling of each cutout alone.
    images: (B, C, H, W) or a sequence of (C, H_i, W_i) -> (x (B, C, Hp, Wp) float32, hw (B, 2) long).
    """
    if isinstance(images, torch.Tensor):
        if images.dim() != 4:
            raise TesseraError(f"views: expected images of shape (B, C, H, W), got {tuple(images.shape)}")
        b, _, h, w = images.shape
        hw = torch.stack([torch.full((b,), h, device=images.device), torch.full((b,), w, device=images.device)], 1)
        return images.float(), hw
    images = list(images)
    if not images:
        raise TesseraError("views: empty batch of images")
    shapes = [tuple(im.shape) for im in images]
    if any(len(s) != 3 for s in shapes):
        raise TesseraError(f"views: every image must be (C, H, W); got shapes {shapes}")
    if len({s[0] for s in shapes}) != 1:
        counts = sorted({s[0] for s in shapes})
        raise TesseraError(f"views: images in one batch must share the channel count; got {counts}")
    hp, wp = max(s[1] for s in shapes), max(s[2] for s in shapes)
    padded = [
        im.float() if im.shape[1:] == (hp, wp)
        else F.pad(im.float()[None], (0, wp - im.shape[2], 0, hp - im.shape[1]), mode="replicate")[0]
        for im in images
    ]
    hw = torch.tensor([s[1:] for s in shapes], dtype=torch.long, device=images[0].device)
    return torch.stack(padded), hw


def per_view_constant(values: Sequence[float], b: int, device) -> torch.Tensor:
    """(B * V,) float32: ``values[v]`` at index n * V + v, made by fills on ``device`` (no host-to-device copy)."""
    return torch.stack([torch.full((b,), float(v), device=device) for v in values], 1).flatten()


def device_generator(generator: torch.Generator, device: torch.device) -> torch.Generator:
    """A generator on ``device`` for large draws (noise fields), seeded from ``generator`` when its device differs."""
    if generator.device.type == device.type:
        return generator
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item())
    return torch.Generator(device=device).manual_seed(seed)


class ViewGenerator:
    """Radio-aware views for a branch: V = 1 ("reconstruction") or V = 2 ("contrastive": wide, additional).

    ``gen(images, generator) -> ViewBatch``; images: (B, C, H, W) or a sequence of (C, H_i, W_i) in [0, 1],
    on any device; the views come back on the images' device.
    """

    def __init__(self, cfg: ViewConfig, branch: Branch):
        if branch not in BRANCHES:
            raise TesseraError(f"views: branch must be one of {', '.join(BRANCHES)}, got {branch!r}")
        cfg.validate()
        self.cfg = cfg
        self.branch = branch
        self.num_views = 1 if branch == "reconstruction" else 2

    def regimes(self) -> list[tuple[AugmentConfig, int]]:
        """(regime, band count) per view in fixed order (seed 000 Table 3)."""
        if self.branch == "reconstruction":
            return [(self.cfg.mild, self.cfg.mild.bands)]
        return [(self.cfg.mild, self.cfg.contrastive_wide_bands), (self.cfg.strong, self.cfg.strong.bands)]

    def __call__(self, images: Sequence[torch.Tensor] | torch.Tensor, generator: torch.Generator) -> ViewBatch:
        with torch.no_grad():  # (not inference_mode: callers may update the views in place)
            return self._generate(images, generator)

    def _generate(self, images: Sequence[torch.Tensor] | torch.Tensor, generator: torch.Generator) -> ViewBatch:
        same_size = isinstance(images, torch.Tensor) or len({tuple(im.shape[-2:]) for im in images}) == 1
        x, hw = stack_padded(images)
        device = x.device
        stats, sat = self.scan(x, same_size)
        anchors = self.anchors(x, hw, generator, same_size, stats)
        if self.branch == "reconstruction":
            roi, boxes, wide_field = self.reconstruction_boxes(x, anchors, hw, generator, sat)
        else:
            roi, boxes = self.contrastive_boxes(anchors, hw, generator)
            wide_field = torch.zeros(x.shape[0], dtype=torch.bool, device=device)
        b, v = boxes.shape[:2]
        s = self.cfg.output_size
        if self.cfg.regime == "lineart":  # construction sheets: thin-line-preserving views (views/lineart.py)
            from tessera.views.lineart import lineart_views

            views, sample_boxes, applied = lineart_views(x, boxes, s, self.cfg.lineart, generator)
            k, flip = 2 * applied["rot180"].long(), torch.zeros(b, v, dtype=torch.bool, device=device)
            nonempty = self.nonempty(views)
            return ViewBatch(views, boxes, sample_boxes, roi, anchors, wide_field, nonempty, hw, applied, k, flip)
        augment = self.cfg.regime == "paper"
        sample_boxes = boxes
        if not augment:
            k = torch.zeros(b, v, dtype=torch.long, device=device)
            flip = torch.zeros(b, v, dtype=torch.bool, device=device)
            views = crop_resize(x, boxes, s, self.cfg.interpolation).clamp_(0.0, 1.0)  # (B, V, C, S, S)
            nonempty = self.nonempty(views)
            return ViewBatch(views, boxes, sample_boxes, roi, anchors, wide_field, nonempty, hw, {}, k, flip)
        regimes = self.regimes()
        params = [sample_augment_params(r, b, s, bands, generator, device) for r, bands in regimes]
        p = cat_params(params)  # all B * V views at once, index b * V + v
        k, flip = p.k.view(b, v), p.flip.view(b, v)
        jittered = jitter_boxes(boxes, p.shift.view(b, v, 2), p.scale.view(b, v))
        sample_boxes = torch.where(p.affine.view(b, v, 1), jittered, boxes)
        # Crop + resize + affine jitter + exact dihedral transform in one grid_sample (geometry.crop_resize).
        views = crop_resize(x, sample_boxes, s, self.cfg.interpolation, k, flip).clamp_(0.0, 1.0)
        nonempty = self.nonempty(views)  # on the geometric view, before photometric ops (config.NonEmptyConfig)
        sigma = per_view_constant([r.noise_sigma if r.p_noise > 0 else 0.0 for r, _ in regimes], b, device)
        flux_k = per_view_constant([r.flux_threshold_k for r, _ in regimes], b, device)
        noisy = any(r.p_noise > 0 and r.noise_sigma > 0 for r, _ in regimes)
        noise_gen = device_generator(generator, device) if noisy else None
        flat = views.flatten(0, 1)
        # Chunks of views on CPU keep the operators' temporaries (noise field, masks) small enough for
        # the allocator to reuse instead of page-faulting fresh memory on every call.
        step = flat.shape[0] if device.type != "cpu" else PHOTOMETRIC_CHUNK
        for lo in range(0, flat.shape[0], step):
            sl = slice(lo, lo + step)
            photometric(flat[sl], slice_params(p, sl), sigma[sl], flux_k[sl], noise_gen)
        applied = applied_flags(params)
        return ViewBatch(views, boxes, sample_boxes, roi, anchors, wide_field, nonempty, hw, applied, k, flip)

    def informativeness_cell(self, x: torch.Tensor) -> int:
        """Cell side of the bright-pixel table: ~1/128 of the cutout side, exact enough for a heuristic."""
        return max(1, -(-max(x.shape[-2:]) // 128))

    def scan(self, x: torch.Tensor, same_size: bool) -> tuple[tuple[torch.Tensor, ...] | None, torch.Tensor | None]:
        """ONE pass over the full-resolution cutouts, a few at a time so each chunk stays cache-resident
        for all its reductions (on CPU, reading the batch from memory dominates these cheap reductions):
        the radio anchors' tile statistics (anchors.radio_stats, same-size batches) and, for the
        reconstruction branch, the bright-pixel summed-area table. x: (B, C, Hp, Wp) -> (stats | None, sat | None).
        """
        want_stats = same_size and radio_stats(x[:1], self.cfg.anchors) is not None
        want_sat = self.branch == "reconstruction"
        if not (want_stats or want_sat):
            return None, None
        cell, thr = self.informativeness_cell(x), self.cfg.nonempty.threshold
        step = x.shape[0] if x.device.type != "cpu" else SCAN_CHUNK
        stats, counts = [], []
        for part in x.split(step):
            if want_stats:
                stats.append(radio_stats(part, self.cfg.anchors))
            if want_sat:
                counts.append(bright_cell_counts(part, thr, cell))
        return (
            tuple(torch.cat(t) for t in zip(*stats)) if want_stats else None,
            summed_area(torch.cat(counts)) if want_sat else None,
        )

    def anchors(
        self, x: torch.Tensor, hw: torch.Tensor, generator: torch.Generator, same_size: bool = False,
        stats: tuple[torch.Tensor, ...] | None = None,
    ) -> torch.Tensor:
        """Anchors per sample, computed per group of equal cutout size. x: (B, C, Hp, Wp) -> (B, 2).

        ``same_size``: all cutouts are known to fill x (no host sync to find the groups); ``stats``:
        their precomputed anchors.radio_stats."""
        if same_size:
            return propose_anchors(x, self.cfg.anchors, generator, stats)  # common case: no copy
        out = torch.zeros(x.shape[0], 2, device=x.device)
        sizes = [tuple(s) for s in hw.tolist()]
        if len(set(sizes)) == 1 and sizes[0] == tuple(x.shape[-2:]):
            return propose_anchors(x, self.cfg.anchors, generator)
        for h, w in sorted(set(sizes)):
            idx = torch.tensor([i for i, sz in enumerate(sizes) if sz == (h, w)], device=x.device)
            out[idx] = propose_anchors(x[idx, :, :h, :w], self.cfg.anchors, generator)
        return out

    def sample_roi(self, anchors: torch.Tensor, hw: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Square ROI with side fraction in roi_side around each anchor. -> (B, 4)."""
        frac = uniform(generator, (anchors.shape[0],), *self.cfg.roi_side, anchors.device)
        return roi_around_anchor(anchors, frac, hw)

    def reconstruction_boxes(self, x, anchors, hw, generator, sat=None):
        """Seed 000 §6.1: wide-field crop of the full cutout (p_global), else a "global-tight" crop inside
        an anchored ROI, redrawn up to crop_attempts times while it is uninformative (first informative
        draw wins, else the brightest). -> roi (B, 4), boxes (B, 1, 4), wide_field (B,) bool."""
        cfg, dev, b = self.cfg, anchors.device, anchors.shape[0]
        full = full_boxes(hw)
        wide_field = rand(generator, (b,), dev) < cfg.p_global
        global_box = square_in_box(
            full, uniform(generator, (b,), *cfg.global_scale, dev), rand(generator, (b, 2), dev)
        )
        roi = self.sample_roi(anchors, hw, generator)
        a = cfg.crop_attempts
        cand = square_in_box(
            roi[:, None].expand(b, a, 4), uniform(generator, (b, a), *cfg.recon_scale, dev),
            rand(generator, (b, a, 2), dev),
        )
        # Informativeness from a summed-area table on cells of ~1/128 of the cutout side: exact enough
        # for a heuristic, and one cheap pass (shared with the anchors' scan) instead of a crop per attempt.
        cell = self.informativeness_cell(x)
        if sat is None:
            sat = bright_integral(x, cfg.nonempty.threshold, cell)
        frac = box_bright_fraction(sat, cand, cell)  # (B, A)
        ok = frac >= cfg.nonempty.min_fraction
        order = torch.arange(a, 0, -1, device=dev).float()  # prefer the earliest informative draw
        pick = torch.where(ok.any(1), (ok.float() * order).argmax(1), frac.argmax(1))
        tight = cand.gather(1, pick[:, None, None].expand(b, 1, 4))[:, 0]
        box = torch.where(wide_field[:, None], global_box, tight)
        roi = torch.where(wide_field[:, None], full, roi)
        return roi, box[:, None], wide_field

    def contrastive_boxes(self, anchors, hw, generator):
        """Seed 000 §7.1: a wide view (wide_scale of the ROI) and an additional view (extra_scale of the ROI)
        with IoA(additional, wide) >= min_ioa (Eq. 7). Rejection draws first; if none passes, the
        additional view is placed uniformly inside the wide view (IoA = 1). -> roi (B, 4), boxes (B, 2, 4)."""
        cfg, dev, b = self.cfg, anchors.device, anchors.shape[0]
        roi = self.sample_roi(anchors, hw, generator)
        wide = square_in_box(roi, uniform(generator, (b,), *cfg.wide_scale, dev), rand(generator, (b, 2), dev))
        a = cfg.ioa_attempts
        cand = square_in_box(
            roi[:, None].expand(b, a, 4), uniform(generator, (b, a), *cfg.extra_scale, dev),
            rand(generator, (b, a, 2), dev),
        )
        ok = box_ioa(cand, wide[:, None].expand(b, a, 4)) >= cfg.min_ioa
        order = torch.arange(a, 0, -1, device=dev).float()
        pick = (ok.float() * order).argmax(1)
        extra = cand.gather(1, pick[:, None, None].expand(b, 1, 4))[:, 0]
        # Fallback keeps the drawn side (its scale is still in range) and moves it inside the wide view.
        side, wside = box_side(extra), box_side(wide)
        u = rand(generator, (b, 2), dev)
        x0 = wide[:, 0] + u[:, 0] * (wside - side).clamp(min=0)
        y0 = wide[:, 1] + u[:, 1] * (wside - side).clamp(min=0)
        inside = torch.stack([x0, y0, x0 + side, y0 + side], -1)
        extra = torch.where(ok.any(1)[:, None], extra, inside)
        return roi, torch.stack([wide, extra], 1)

    def nonempty(self, views: torch.Tensor) -> torch.Tensor:
        """Non-empty criterion on [0, 1] geometric views (config.NonEmptyConfig). views: (B, V, C, S, S) -> (B, V)."""
        b, v = views.shape[:2]
        flat = views.flatten(0, 1)
        # A few views at a time on CPU: a view-sized temporary would be page-faulted on every call.
        step = flat.shape[0] if flat.device.type != "cpu" else PHOTOMETRIC_CHUNK
        parts = []
        for part in flat.split(step):
            peak = part[:, 0] if part.shape[1] == 1 else part.amax(dim=1)
            parts.append(bright_indicator(peak, self.cfg.nonempty.threshold).mean(dim=(-2, -1)))
        bright = torch.cat(parts).view(b, v)
        return bright >= self.cfg.nonempty.min_fraction


def applied_flags(params: list[AugmentParams]) -> dict[str, torch.Tensor]:
    """Which operators were drawn for each view. -> name -> (B, V) bool."""
    names = {"rot90": "rot", "hflip": "flip", "asinh": "asinh", "affine": "affine", "noise": "noise",
             "banding": "banding", "flux": "flux"}
    out = {}
    for name, attr in names.items():
        vals = [getattr(p, attr) for p in params]
        out[name] = torch.stack(vals, 1)
    return out
