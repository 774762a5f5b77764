"""Anchors and crop geometry: ROI hits the brightest source, scale ranges, IoA (seed 000 Eq. 7), sizes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from tessera.errors import ConfigError
from tessera.config import resolve_config
from tessera.views.anchors import ANCHOR_REGISTRY, propose_anchors
from tessera.views.config import AnchorConfig, ViewConfig
from tessera.views.generator import ViewGenerator
from tessera.views.geometry import box_ioa, crop_resize

from ._helpers import blob_image


def contains(boxes: torch.Tensor, xy) -> torch.Tensor:
    x, y = xy
    return (boxes[..., 0] <= x) & (x <= boxes[..., 2]) & (boxes[..., 1] <= y) & (y <= boxes[..., 3])


@pytest.fixture(scope="module")
def blobs():
    rng = np.random.default_rng(0)
    items = [blob_image(rng) for _ in range(24)]
    return torch.from_numpy(np.stack([i[0] for i in items])), [i[1] for i in items]


def test_radio_anchor_lands_on_brightest_source(blobs):
    images, centres = blobs
    anchors = propose_anchors(images, AnchorConfig(), torch.Generator().manual_seed(0))
    dist = torch.linalg.vector_norm(anchors - torch.tensor(centres, dtype=torch.float32), dim=1)
    # The 0.8 x global-peak filter keeps only candidates on the brightest blob: a z-peak pixel or the
    # centre of a 32-px mean tile holding it (at most half a tile diagonal, 22.6 px, away).
    assert (dist < 23).all(), dist


def test_roi_crops_contain_brightest_source_far_more_often_than_uniform_crops(blobs):
    images, centres = blobs
    cfg = ViewConfig(output_size=16, p_global=0.0, regime="none")
    gen, g = ViewGenerator(cfg, "reconstruction"), torch.Generator().manual_seed(1)
    uniform_cfg = dataclasses.replace(cfg, anchors=AnchorConfig(strategy="uniform"))
    ugen = ViewGenerator(uniform_cfg, "reconstruction")
    hits, uhits = [], []
    for _ in range(8):
        b, ub = gen(images, g), ugen(images, g)
        for i, c in enumerate(centres):
            hits.append(bool(contains(b.boxes[i, 0], c)))
            uhits.append(bool(contains(ub.boxes[i, 0], c)))
    rate, urate = np.mean(hits), np.mean(uhits)
    print(f"ROI-anchored crop hit rate {rate:.3f} vs uniform-anchor crop hit rate {urate:.3f}")
    assert rate > 0.9 and rate > urate + 0.3


@pytest.mark.parametrize("branch", ["reconstruction", "contrastive"])
def test_crop_scales_stay_in_range_and_views_in_unit_interval(blobs, branch):
    images, _ = blobs
    cfg = ViewConfig(output_size=24)
    b = ViewGenerator(cfg, branch)(images, torch.Generator().manual_seed(2))
    h = w = images.shape[-1]
    roi_side = b.roi[:, 2] - b.roi[:, 0]
    sides = b.boxes[..., 2] - b.boxes[..., 0]
    eps = 1e-4
    assert b.views.shape == (24, 1 if branch == "reconstruction" else 2, 1, 24, 24)
    assert b.views.min() >= 0 and b.views.max() <= 1
    # every box lies inside its ROI, every ROI inside the cutout
    assert (b.boxes[..., :2] >= b.roi[:, None, :2] - eps).all() and (b.boxes[..., 2:] <= b.roi[:, None, 2:] + eps).all()
    assert (b.roi >= -eps).all() and (b.roi[:, 2] <= w + eps).all() and (b.roi[:, 3] <= h + eps).all()
    scale = (sides / roi_side[:, None]) ** 2
    if branch == "reconstruction":
        wf = b.wide_field
        roi_frac = roi_side[~wf] / h
        assert ((roi_frac >= 0.55 - eps) & (roi_frac <= 0.80 + eps)).all()
        assert ((scale[~wf, 0] >= 0.50 - eps) & (scale[~wf, 0] <= 0.70 + eps)).all()
        assert ((scale[wf, 0] >= 0.70 - eps) & (scale[wf, 0] <= 1.0 + eps)).all()
    else:
        assert ((scale[:, 0] >= 0.50 - eps) & (scale[:, 0] <= 0.70 + eps)).all()
        assert ((scale[:, 1] >= 0.20 - eps) & (scale[:, 1] <= 0.35 + eps)).all()


def test_p_global_fraction_of_wide_field_views():
    images = torch.rand(400, 1, 32, 32)
    b = ViewGenerator(ViewConfig(output_size=8), "reconstruction")(images, torch.Generator().manual_seed(3))
    assert 0.14 < b.wide_field.float().mean() < 0.26  # p_global = 0.2, 400 draws
    assert (b.roi[b.wide_field] == torch.tensor([0.0, 0.0, 32.0, 32.0])).all()


def test_ioa_constraint_holds_for_every_contrastive_pair():
    images = torch.rand(64, 1, 48, 48)
    for ioa_attempts in (1, 10):  # 1 attempt exercises the place-inside-the-wide-view fallback often
        cfg = ViewConfig(output_size=8, ioa_attempts=ioa_attempts)
        b = ViewGenerator(cfg, "contrastive")(images, torch.Generator().manual_seed(4))
        ioa = box_ioa(b.boxes[:, 1], b.boxes[:, 0])
        assert (ioa >= 0.70 - 1e-5).all(), ioa.min()


def test_box_ioa_is_asymmetric_intersection_over_area_of_first():
    a = torch.tensor([0.0, 0.0, 2.0, 2.0])
    b = torch.tensor([1.0, 0.0, 5.0, 4.0])
    assert box_ioa(a, b).item() == pytest.approx(0.5)  # 2 / 4
    assert box_ioa(b, a).item() == pytest.approx(2 / 16)


def test_crop_resize_identity_and_mixed_sizes():
    x = torch.rand(1, 2, 16, 16)
    full = torch.tensor([[[0.0, 0.0, 16.0, 16.0]]])
    assert torch.allclose(crop_resize(x, full, 16)[0, 0], x[0], atol=1e-6)
    # a 2x2-pixel box resized to 2x2 reproduces those pixels exactly
    sub = torch.tensor([[[4.0, 6.0, 6.0, 8.0]]])
    assert torch.allclose(crop_resize(x, sub, 2)[0, 0], x[0, :, 6:8, 4:6], atol=1e-6)
    # different input sizes in one call, channels preserved
    g = ViewGenerator(ViewConfig(output_size=20), "contrastive")
    b = g([torch.rand(3, 40, 50), torch.rand(3, 64, 30)], torch.Generator().manual_seed(0))
    assert b.views.shape == (2, 2, 3, 20, 20)
    assert (b.boxes[1, :, 2] <= 30 + 1e-4).all() and (b.boxes[1, :, 3] <= 64 + 1e-4).all()


def test_pluggable_anchor_strategies():
    assert {"radio", "center", "uniform"} <= set(ANCHOR_REGISTRY)
    x = torch.zeros(3, 1, 20, 30)
    c = propose_anchors(x, AnchorConfig(strategy="center"), torch.Generator())
    assert torch.equal(c, torch.tensor([[15.0, 10.0]] * 3))
    # a blank cutout with the radio strategy falls back to the centre instead of failing
    assert torch.equal(propose_anchors(x, AnchorConfig(), torch.Generator()), c)
    with pytest.raises(ConfigError, match="anchors.strategy"):
        resolve_config(ViewConfig, overrides=["anchors.strategy=nope"])


def test_config_validation_names_keys():
    with pytest.raises(ConfigError, match="p_global"):
        resolve_config(ViewConfig, overrides=["p_global=1.5"])
    with pytest.raises(ConfigError, match="strong.asinh_alpha"):
        resolve_config(ViewConfig, overrides=["strong.asinh_alpha=[5, 2]"])
    cfg = resolve_config(ViewConfig, overrides=["mild.p_asinh=0", "output_size=96", "regime=none"])
    assert cfg.mild.p_asinh == 0 and cfg.output_size == 96 and cfg.regime == "none"
    assert cfg.strong.bands == 3 and cfg.mild.bands == 2 and cfg.contrastive_wide_bands == 0  # Table 3
