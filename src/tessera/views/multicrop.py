"""Crop groups and the batched multi-crop generator (DINO's 2 global + N local crops, BYOL's 2 views), placed
by the ROI anchors of :mod:`tessera.views.anchors`.

A *crop group* is a set of ``count`` views of one output size, one scale range and one augmentation regime.
Per call: one scan of the cutouts for the anchors -> a square ROI around each anchor (``roi_side`` of the
cutout side) -> for every group, squares of area fraction ``scale`` of the ROI placed uniformly inside it ->
ONE ``grid_sample`` per group that crops, resizes, rotates (any angle with ``full_rotation``, else the
regime's quarter turns) and flips -> the non-empty flags on the geometric views -> the regime's photometric
operators (asinh contrast, noise, banding, flux) on all views of the group at once -> clamp to [0, 1].

Radio sources have no preferred orientation on the sky, so a rotation by any angle is a true invariance
(the BYOL radio recipe of Slijepcevic et al. 2024 rotates by uniform angles); corners of a rotated crop that
leave the cutout repeat its border (sky background).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import torch
import torch.nn.functional as F

from tessera.errors import TesseraError
from tessera.views.augment import photometric, sample_augment_params, slice_params
from tessera.views.config import AugmentConfig, ViewConfig
from tessera.views.generator import PHOTOMETRIC_CHUNK, device_generator, stack_padded
from tessera.views.geometry import bright_indicator, rand, roi_around_anchor, square_in_box, uniform


@dataclass(frozen=True)
class CropGroup:
    """``count`` views of side ``size`` covering an area fraction in ``scale`` of the ROI, augmented with
    ``regime``. ``require_nonempty``: the dataset-level resampling waits for these views to be non-empty
    (local crops of sparse radio fields are often blank sky, which is a fine local view)."""

    name: str
    count: int
    size: int
    scale: tuple[float, float]
    regime: AugmentConfig = field(default_factory=AugmentConfig)
    full_rotation: bool = False
    require_nonempty: bool = True


@dataclass
class MultiCropBatch:
    """Views of B cutouts, one tensor per crop group; boxes in pixels of each sample's own parent cutout."""

    views: list[torch.Tensor]  # per group: (B, n_g, C, S_g, S_g) float32 in [0, 1]
    boxes: list[torch.Tensor]  # per group: (B, n_g, 4) crop squares before rotation
    angles: list[torch.Tensor]  # per group: (B, n_g) rotation in radians
    roi: torch.Tensor  # (B, 4)
    anchors: torch.Tensor  # (B, 2) (x, y)
    nonempty_views: torch.Tensor  # (B, sum of n_g over groups requiring non-empty views) bool
    image_sizes: torch.Tensor  # (B, 2)

    @property
    def nonempty(self) -> torch.Tensor:
        """(B,) bool: every view of every group that requires it is non-empty."""
        if self.nonempty_views.shape[1] == 0:
            return torch.ones(self.roi.shape[0], dtype=torch.bool, device=self.roi.device)
        return self.nonempty_views.all(dim=1)

    def merge(self, redo: "MultiCropBatch", rows: torch.Tensor) -> "MultiCropBatch":
        """This batch with the samples at ``rows`` replaced by the samples of ``redo`` (same order)."""
        for name in ("views", "boxes", "angles"):
            for mine, theirs in zip(getattr(self, name), getattr(redo, name)):
                mine[rows] = theirs.to(mine.device)
        for name in ("roi", "anchors", "nonempty_views", "image_sizes"):
            getattr(self, name)[rows] = getattr(redo, name).to(getattr(self, name).device)
        return self


def rotated_crops(
    x: torch.Tensor, boxes: torch.Tensor, size: int, angle: torch.Tensor, flip: torch.Tensor, mode: str = "bilinear"
) -> torch.Tensor:
    """Crop the squares ``boxes``, rotated by ``angle`` about their centres and mirrored where ``flip``, resized
    to ``size``: ONE grid_sample for all views (the V grids of a sample are stacked vertically).

    x: (B, C, Hp, Wp); boxes: (B, V, 4) pixels; angle: (B, V) radians; flip: (B, V) bool -> (B, V, C, S, S).
    """
    b, c, hp, wp = x.shape
    v = boxes.shape[1]
    base = (torch.arange(size, device=x.device, dtype=torch.float32) + 0.5) / size - 0.5  # (S,) in [-0.5, 0.5)
    u = base.view(1, 1, 1, size).expand(b, v, size, size)  # output column offset
    w = base.view(1, 1, size, 1).expand(b, v, size, size)  # output row offset
    u = torch.where(flip[..., None, None], -u, u)
    cos, sin = torch.cos(angle)[..., None, None], torch.sin(angle)[..., None, None]
    side = (boxes[..., 2] - boxes[..., 0])[..., None, None]
    cx = ((boxes[..., 0] + boxes[..., 2]) / 2)[..., None, None]
    cy = ((boxes[..., 1] + boxes[..., 3]) / 2)[..., None, None]
    px = cx + side * (cos * u - sin * w)  # (B, V, S, S) input pixel coordinates
    py = cy + side * (sin * u + cos * w)
    grid = torch.stack([2 * px / wp - 1, 2 * py / hp - 1], dim=-1).to(x.dtype)  # (B, V, S, S, 2)
    out = F.grid_sample(x, grid.reshape(b, v * size, size, 2), mode=mode, padding_mode="border", align_corners=False)
    return out.reshape(b, c, v, size, size).transpose(1, 2)


class MultiCropGenerator:
    """``gen(images, generator) -> MultiCropBatch`` for the crop groups ``groups``; images: (B, C, H, W) or a
    sequence of (C, H_i, W_i) in [0, 1] on any device. Geometry (anchors, ROI side) comes from ``cfg``."""

    def __init__(self, cfg: ViewConfig, groups: Sequence[CropGroup]):
        from tessera.views.generator import ViewGenerator

        if not groups:
            raise TesseraError("views: a multi-crop generator needs at least one crop group")
        cfg.validate()
        self.cfg = cfg
        self.groups = list(groups)
        self._anchors = ViewGenerator(cfg, "contrastive")  # the anchor proposal and ROI of the radio recipe
        self.num_views = sum(g.count for g in self.groups)

    def __call__(self, images: Sequence[torch.Tensor] | torch.Tensor, generator: torch.Generator) -> MultiCropBatch:
        with torch.no_grad():
            return self._generate(images, generator)

    def _generate(self, images, generator: torch.Generator) -> MultiCropBatch:
        same_size = isinstance(images, torch.Tensor) or len({tuple(im.shape[-2:]) for im in images}) == 1
        x, hw = stack_padded(images)
        dev, b = x.device, x.shape[0]
        stats, _ = self._anchors.scan(x, same_size)
        anchors = self._anchors.anchors(x, hw, generator, same_size, stats)
        frac = uniform(generator, (b,), *self.cfg.roi_side, dev)
        roi = roi_around_anchor(anchors, frac, hw)
        views, boxes, angles, flags = [], [], [], []
        for group in self.groups:
            out, box, angle, nonempty = self._group(x, roi, group, generator)
            views.append(out)
            boxes.append(box)
            angles.append(angle)
            if group.require_nonempty:
                flags.append(nonempty)
        nonempty = torch.cat(flags, 1) if flags else torch.zeros(b, 0, dtype=torch.bool, device=dev)
        return MultiCropBatch(views, boxes, angles, roi, anchors, nonempty, hw)

    def _group(self, x, roi, group: CropGroup, generator):
        """One crop group: boxes, one grid_sample, non-empty flags, photometric ops. -> views, boxes, angles, flags."""
        b, n, s, dev = x.shape[0], group.count, group.size, x.device
        box = square_in_box(roi[:, None].expand(b, n, 4), uniform(generator, (b, n), *group.scale, dev),
                            rand(generator, (b, n, 2), dev))
        if self.cfg.regime == "lineart":  # construction sheets: no rotation, thin-line-preserving crops
            from tessera.views.lineart import lineart_views

            views, _, applied = lineart_views(x, box, s, self.cfg.lineart, generator)
            angle = applied["rot180"].float() * math.pi
            return views, box, angle, self._nonempty(views)
        regime = group.regime
        p = sample_augment_params(regime, b * n, s, regime.bands, generator, dev)
        if group.full_rotation:
            angle = rand(generator, (b, n), dev) * (2 * math.pi)
        else:
            angle = p.k.view(b, n).float() * (math.pi / 2)
        flip = p.flip.view(b, n)
        if self.cfg.regime == "none":
            angle, flip = torch.zeros_like(angle), torch.zeros_like(flip)
        views = rotated_crops(x, box, s, angle, flip, self.cfg.interpolation).clamp_(0.0, 1.0)
        nonempty = self._nonempty(views)
        if self.cfg.regime != "none":
            flat = views.flatten(0, 1)
            sigma = torch.full((b * n,), regime.noise_sigma if regime.p_noise > 0 else 0.0, device=dev)
            flux_k = torch.full((b * n,), regime.flux_threshold_k, device=dev)
            noise_gen = device_generator(generator, dev) if regime.p_noise > 0 and regime.noise_sigma > 0 else None
            step = flat.shape[0] if dev.type != "cpu" else PHOTOMETRIC_CHUNK
            for lo in range(0, flat.shape[0], step):
                sl = slice(lo, lo + step)
                photometric(flat[sl], slice_params(p, sl), sigma[sl], flux_k[sl], noise_gen)
        return views, box, angle, nonempty

    def _nonempty(self, views: torch.Tensor) -> torch.Tensor:
        """(B, n, C, S, S) -> (B, n) bool, the criterion of config.NonEmptyConfig on the geometric views."""
        peak = views[:, :, 0] if views.shape[2] == 1 else views.amax(dim=2)
        bright = bright_indicator(peak, self.cfg.nonempty.threshold).mean(dim=(-2, -1))
        return bright >= self.cfg.nonempty.min_fraction

