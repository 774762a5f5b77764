"""The lineart view regime (issue 20): a one-pixel line survives the views, connected; thickness jitter; ink anchors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.measure import label

from tessera.errors import ConfigError
from tessera.views.anchors import propose_anchors
from tessera.views.config import ViewConfig
from tessera.views.generator import ViewGenerator
from tessera.views.lineart import dilate, ink_preserving_crops, thin_preserving_erode
from tessera.views.multicrop import CropGroup, MultiCropGenerator


def sheet(n: int = 6, size: int = 384) -> tuple[torch.Tensor, int, int]:
    """Synthetic sheets (ink bright): a 1-pixel horizontal line across, a 1-pixel vertical line down, a thick wall."""
    x = torch.zeros(n, 1, size, size)
    row, col = 171, 203
    x[:, :, row, :] = 1.0
    x[:, :, :, col] = 1.0
    x[:, :, 300:306, 40:340] = 1.0
    return x, row, col


def spans(view: np.ndarray, axis: int) -> bool:
    """True when one 8-connected ink component touches both opposite borders of ``view`` along ``axis``."""
    lab = label(view > 0.3, connectivity=2)
    first, last = (lab[:, 0], lab[:, -1]) if axis == 1 else (lab[0, :], lab[-1, :])
    return bool((set(first[first > 0]) & set(last[last > 0])))


@pytest.mark.parametrize("overrides", [{}, {"p_rot180": 1.0}, {"p_thin": 1.0, "p_thicken": 0.0},
                                       {"p_thicken": 1.0, "p_thin": 0.0}])
def test_one_pixel_line_survives_connected(overrides):
    x, row, col = sheet()
    cfg = ViewConfig(output_size=48, regime="lineart")
    cfg.anchors.strategy = "ink"
    for key, value in overrides.items():
        setattr(cfg.lineart, key, value)
    checked = 0
    for branch in ("reconstruction", "contrastive"):
        for seed in range(4):
            vb = ViewGenerator(cfg, branch)(x, torch.Generator().manual_seed(seed))
            for b in range(x.shape[0]):
                for v in range(vb.views.shape[1]):
                    x0, y0, x1, y1 = vb.sample_boxes[b, v].tolist()
                    if not (x0 >= 0 and y0 >= 0 and x1 <= x.shape[-1] and y1 <= x.shape[-2]):
                        continue  # outside the sheet the line really ends
                    view = vb.views[b, v, 0].numpy()
                    if y0 + 1 < row < y1 - 1:
                        assert spans(view, axis=1), (branch, seed, b, v, vb.sample_boxes[b, v])
                        checked += 1
                    if x0 + 1 < col < x1 - 1:
                        assert spans(view, axis=0), (branch, seed, b, v)
                        checked += 1
    assert checked > 20


def test_bilinear_resize_would_lose_the_line():
    """Why the regime max-pools: the plain bilinear crop of a 5x larger box misses the 1-pixel line (aliasing)."""
    from tessera.views.geometry import crop_resize

    x, row, _ = sheet(1)
    box = torch.tensor([[[0.0, row - 120.3, 240.0, row + 119.7]]])
    plain = crop_resize(x[:, :, :, :150], box, 48, "bilinear")[0, 0, 0]
    kept = ink_preserving_crops(x[:, :, :, :150], box, 48, cap=8)[0, 0, 0]
    assert plain.max() < 0.3 and kept.max() >= 0.5


def test_thickness_jitter_on_lines():
    x = torch.zeros(1, 1, 32, 32)
    x[0, 0, 5, 2:30] = 1.0  # 1-pixel line
    x[0, 0, 14:19, 2:30] = 1.0  # 5-pixel wall
    thin = thin_preserving_erode(x)[0, 0]
    assert torch.equal(thin[5, 3:29], torch.ones(26))  # the 1-pixel line is kept
    assert thin[14:19, 10].tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]  # the wall loses a pixel on each side
    thick = dilate(x)[0, 0]
    assert thick[4:7, 10].tolist() == [1.0, 1.0, 1.0]


def test_no_dihedral_and_no_radio_photometry_by_default():
    x, _, _ = sheet(8)
    cfg = ViewConfig(output_size=48, regime="lineart")
    vb = ViewGenerator(cfg, "contrastive")(x, torch.Generator().manual_seed(0))
    assert int(vb.k.abs().sum()) == 0 and not vb.flip.any()
    assert set(vb.applied) == {"rot180", "thicken", "thin", "noise"}  # no asinh, banding, flux
    cfg.lineart.p_rot180 = 1.0
    vb = ViewGenerator(cfg, "contrastive")(x, torch.Generator().manual_seed(0))
    assert (vb.k == 2).all()


def test_multicrop_uses_the_lineart_regime():
    x, row, _ = sheet(4)
    cfg = ViewConfig(output_size=48, regime="lineart")
    group = CropGroup("global", 2, 48, (0.7, 1.0), cfg.multicrop.global_regime, full_rotation=True)
    gen = MultiCropGenerator(cfg, [group])
    out = gen(x, torch.Generator().manual_seed(1))
    assert torch.equal(out.angles[0], torch.zeros_like(out.angles[0]))  # full_rotation is ignored for sheets
    assert out.views[0].max() > 0.5


def test_ink_anchors_land_on_ink():
    x = torch.zeros(64, 1, 128, 128)
    x[:, :, 96:128, 0:32] = 1.0  # ink only in the bottom-left 32 x 32 corner
    cfg = ViewConfig().anchors
    cfg.strategy = "ink"
    a = propose_anchors(x, cfg, torch.Generator().manual_seed(0))
    assert ((a[:, 0] < 32) & (a[:, 1] >= 96)).all()
    blank = propose_anchors(torch.zeros(64, 1, 128, 128), cfg, torch.Generator().manual_seed(0))
    assert blank[:, 0].std() > 20  # uniform on an ink-free cutout


def test_bad_lineart_settings():
    cfg = ViewConfig(regime="lineart")
    cfg.lineart.p_thin, cfg.lineart.p_thicken = 0.7, 0.7
    with pytest.raises(ConfigError, match="lineart.p_thin"):
        cfg.validate()
