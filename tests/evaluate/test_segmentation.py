"""The dense probe (issue 20): mIoU 1 when patch features encode the mask, chance on shuffled labels; the
registered protocol runs end to end on simulated sheets through the encoder interface."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tessera.evaluate.config import EvalConfig, SegmentationConfig
from tessera.evaluate.registry import get_protocol
from tessera.evaluate.segmentation import chance_miou, dense_probe, image_folds, miou, patch_targets


def constructed(n: int = 60, grid: int = 8, cell: int = 4, d: int = 16, seed: int = 0):
    """Masks made of whole patches, and tokens whose first feature is the patch's mask value (plus noise)."""
    rng = np.random.default_rng(seed)
    patch_mask = rng.random((n, grid, grid)) < 0.3
    masks = patch_mask.repeat(cell, axis=1).repeat(cell, axis=2)  # (N, 32, 32)
    tokens = rng.normal(size=(n, grid * grid, d)).astype(np.float32)
    tokens[:, :, 0] = patch_mask.reshape(n, -1) * 4.0 + rng.normal(scale=0.1, size=(n, grid * grid))
    return tokens, masks


def test_miou_is_one_when_features_encode_the_mask():
    tokens, masks = constructed()
    out = dense_probe(tokens, masks, image_folds(len(masks), 3, 0), SegmentationConfig(patch_fraction=0.5))
    assert out["miou"]["mean"] == pytest.approx(1.0)
    assert out["pixel_f1"]["mean"] > 0.9  # bilinear upsampling blurs the corners of patch-shaped masks only
    assert out["grid"] == 8


def test_shuffled_labels_give_chance():
    tokens, masks = constructed(seed=1)
    rng = np.random.default_rng(0)
    shuffled = masks[rng.permutation(len(masks))]
    # Break the patch-level link too: each image's mask rolled by a random offset of whole patches.
    shuffled = np.stack([np.roll(m, (4 * rng.integers(8), 4 * rng.integers(8)), axis=(0, 1)) for m in shuffled])
    out = dense_probe(tokens, shuffled, image_folds(len(masks), 3, 0), SegmentationConfig(patch_fraction=0.5))
    assert out["miou"]["mean"] < out["chance_miou"] + 0.06
    assert out["miou"]["mean"] < 0.5


def test_metric_helpers():
    t = np.array([[1, 1, 0, 0]], dtype=bool)
    assert miou(t, t) == 1.0
    assert miou(t, ~t) == 0.0
    assert chance_miou(t, 0.0) == pytest.approx(miou(t, np.zeros_like(t)))
    m = np.zeros((1, 8, 8), dtype=bool)
    m[0, :4, :4] = True
    m[0, 4, 4] = True  # 1/16 of a 4x4 patch: below patch_fraction
    assert patch_targets(m, 2, 0.25).tolist() == [[True, False, False, False]]


@pytest.mark.slow
def test_protocol_on_simulated_sheets(tmp_path):
    from tessera.evaluate.protocol import run_evaluation
    from tessera.simulate.lineart import SimulateLineartConfig, simulate_lineart

    labels = simulate_lineart(SimulateLineartConfig(sheets=1, seed=2, width=320, height=256), tmp_path / "sim")
    assert "mask" in pd.read_csv(labels).columns
    cfg = EvalConfig(folds=2, progress=False)
    results = run_evaluation(["random:vit_tiny_patch4_64"], str(labels), ["segmentation"], tmp_path / "eval", cfg)
    seg = results[0]["segmentation"]
    assert 0.0 <= seg["miou"]["mean"] <= 1.0 and 0.0 < seg["foreground_pixels"] < 0.5
    assert seg["grid"] == 16 and len(seg["per_fold"]) == 2
    saved = json.loads(next((tmp_path / "eval").glob("*/segmentation/results.json")).read_text())
    assert saved["segmentation"]["miou"] == seg["miou"]
    assert "mIoU" in (tmp_path / "eval" / "comparison.md").read_text()
    assert get_protocol("segmentation").summary is not None
