"""Super-resolution head and evaluation (issue 16): shapes, metrics, bicubic baseline, training, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tessera.errors import ConfigError, TesseraError
from tessera.evaluate.superres import (
    SRPairs,
    SuperResConfig,
    bicubic_baseline,
    check_pair_shapes,
    evaluate_superres,
    head_stages,
    load_sr_pairs,
    ssim_psnr,
    train_sr,
)
from tessera.models.load import load_random
from tessera.models.superres import SuperResolutionHead, bicubic_upsample, tokens_to_grid


def test_head_maps_the_token_grid_of_a_16px_input_to_64px():
    """seed 001's geometry: 16x16 LR -> bicubic to 64 -> patch 4 -> 16x16 tokens -> two PixelShuffle x2 -> 64x64."""
    enc = load_random("vit_tiny_patch4_64")
    lr = torch.rand(2, 1, 16, 16)
    patches = enc.tokens(lr)["patches"]
    assert patches.shape == (2, 256, 192)
    assert head_stages(enc, 64) == 2
    head = SuperResolutionHead(192, channels=1, width=16, stages=2)
    out = head(patches, lr)
    assert out.shape == (2, 1, 64, 64)
    # zero-initialized output conv: an untrained residual head is exactly the bicubic baseline
    torch.testing.assert_close(out, bicubic_upsample(lr, 64))
    plain = SuperResolutionHead(192, stages=2, residual=False)
    assert plain(patches).shape == (2, 1, 64, 64)


def test_tokens_to_grid_keeps_row_major_order():
    patches = torch.arange(2 * 9 * 3, dtype=torch.float32).reshape(2, 9, 3)
    grid = tokens_to_grid(patches)
    assert grid.shape == (2, 3, 3, 3)
    torch.testing.assert_close(grid[1, :, 2, 1], patches[1, 2 * 3 + 1])
    with pytest.raises(ValueError, match="square"):
        tokens_to_grid(torch.zeros(1, 8, 3))


def test_ssim_psnr_identical_and_known_offset():
    rng = np.random.default_rng(0)
    img = rng.random((3, 1, 32, 32))
    ssim, psnr = ssim_psnr(img, img)
    np.testing.assert_allclose(ssim, 1.0)
    assert np.isinf(psnr).all()
    # a constant error of 0.1 is MSE 0.01: PSNR = 10 log10(1 / 0.01) = 20 dB exactly
    _, psnr = ssim_psnr(np.clip(img, 0, 0.9) + 0.1, np.clip(img, 0, 0.9))
    np.testing.assert_allclose(psnr, 20.0, atol=1e-9)


def _pairs(n: int = 12, hr: int = 32, factor: int = 4, seed: int = 0) -> SRPairs:
    """Smooth random blobs (HR) and their block averages (LR): a learnable toy SR set."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:hr, 0:hr] / hr
    his = []
    for _ in range(n):
        cx, cy, w = rng.uniform(0.3, 0.7, 3)
        ring = np.exp(-((np.hypot(x - cx, y - cy) - 0.25 * w) ** 2) / 0.002)
        his.append(ring / ring.max())
    his = np.stack(his)[:, None].astype(np.float32)
    los = his.reshape(n, 1, hr // factor, factor, hr // factor, factor).mean(axis=(3, 5)).astype(np.float32)
    return SRPairs(los, his, [f"s{i}" for i in range(n)])


def test_bicubic_baseline_is_computed_and_imperfect():
    pairs = _pairs()
    idx = np.arange(4)
    base = bicubic_baseline(pairs, idx)
    expected = F.interpolate(torch.from_numpy(pairs.lr[idx]), size=(32, 32), mode="bicubic", align_corners=False)
    np.testing.assert_allclose(base, expected.clamp(0, 1).numpy(), atol=1e-6)
    ssim, psnr = ssim_psnr(base, pairs.hr[idx])
    assert (0.0 < ssim).all() and (ssim < 1.0).all() and np.isfinite(psnr).all()
    # a constant image is reproduced exactly by bicubic upsampling of its block average
    flat = SRPairs(np.full((1, 1, 8, 8), 0.5, np.float32), np.full((1, 1, 32, 32), 0.5, np.float32), ["c"])
    assert ssim_psnr(bicubic_baseline(flat, np.array([0])), flat.hr)[0][0] == pytest.approx(1.0)


@pytest.mark.parametrize("mode", ["frozen", "finetune"])
def test_tiny_sr_training_lowers_its_loss(mode):
    enc = load_random("vit_micro_patch8_32")
    before = [p.detach().clone() for p in enc.module.parameters()]
    pairs = _pairs()
    cfg = SuperResConfig(epochs=8, batch_size=4, lr=3e-3, width=16)
    used, head, losses = train_sr(enc, pairs, np.arange(12), cfg, mode)
    # the head starts at the bicubic baseline (zero-initialized correction), so the first epoch is bicubic's loss
    assert len(losses) == 8 and losses[-1] < 0.96 * losses[0] and losses[-1] < min(losses[:4])
    # the caller's encoder is never changed; fine-tuning trains a copy
    assert all(torch.equal(a, b) for a, b in zip(before, enc.module.parameters()))
    changed = any(not torch.equal(a, b) for a, b in zip(before, used.module.parameters()))
    assert changed == (mode == "finetune")


def test_evaluate_superres_rows_and_paired_split():
    pairs = _pairs(n=10)
    cfg = SuperResConfig(epochs=2, batch_size=4, width=8, test_fraction=0.3, modes=("frozen",))
    res = evaluate_superres([("scratch", load_random("vit_micro_patch8_32"))], pairs, cfg)
    assert [(r["model"], r["mode"]) for r in res["rows"]] == [("bicubic", "-"), ("scratch", "frozen")]
    assert res["n_test"] == 3 and res["n_train"] == 7 and res["hr_size"] == 32 and res["lr_size"] == 8
    assert all(0 < r["ssim"]["mean"] <= 1 for r in res["rows"])
    assert res["_predictions"]["scratch (frozen)"].shape == (3, 1, 32, 32)


def _write_pairs(root, rows: list[tuple[tuple, tuple]], columns=("lr_path", "hr_path")) -> None:
    import pandas as pd

    root.mkdir(parents=True, exist_ok=True)
    table = []
    for i, (lr_shape, hr_shape) in enumerate(rows):
        np.save(root / f"lr{i}.npy", np.zeros(lr_shape, np.float32))
        np.save(root / f"hr{i}.npy", np.zeros(hr_shape, np.float32))
        table.append({"lr_path": f"lr{i}.npy", "hr_path": f"hr{i}.npy", "label": "x"})
    pd.DataFrame(table)[list(columns)].to_csv(root / "labels.csv", index=False)


def test_load_pairs_and_bad_input(tmp_path):
    _write_pairs(tmp_path / "ok", [((8, 8), (32, 32))] * 3)
    pairs = load_sr_pairs(tmp_path / "ok")
    assert pairs.lr.shape == (3, 1, 8, 8) and pairs.hr.shape == (3, 1, 32, 32) and pairs.factor == 4

    _write_pairs(tmp_path / "nocol", [((8, 8), (32, 32))], columns=("lr_path", "label"))
    with pytest.raises(TesseraError, match=r"labels.csv: missing column\(s\) \['hr_path'\]") as err:
        load_sr_pairs(tmp_path / "nocol")
    assert "\n" not in str(err.value)

    _write_pairs(tmp_path / "mixed", [((8, 8), (32, 32)), ((8, 8), (30, 30))])
    with pytest.raises(TesseraError, match="line 3: LR .* differ from the first pair") as err:
        load_sr_pairs(tmp_path / "mixed")
    assert "\n" not in str(err.value)

    _write_pairs(tmp_path / "ratio", [((8, 8), (30, 30))])
    with pytest.raises(TesseraError, match="do not match") as err:
        load_sr_pairs(tmp_path / "ratio")
    assert "\n" not in str(err.value)
    with pytest.raises(TesseraError, match="do not match"):
        check_pair_shapes((1, 16, 16), (1, 16, 16), "x")


def test_head_stages_refuses_an_unreachable_size():
    enc = load_random("vit_micro_patch8_32")  # 4x4 token grid
    assert head_stages(enc, 16) == 2 and head_stages(enc, 32) == 3
    with pytest.raises(TesseraError, match="cannot reach HR 24 px"):
        head_stages(enc, 24)


@pytest.mark.parametrize("override, key", [(dict(modes=("linear",)), "modes"), (dict(loss="ssim"), "loss"),
                                           (dict(test_fraction=1.0), "test_fraction"), (dict(epochs=0), "epochs")])
def test_bad_superres_config(override, key):
    with pytest.raises(ConfigError, match=f"'{key}'"):
        SuperResConfig(**override).validate()


def test_auc_of_a_hand_computed_case():
    """Macro one-vs-rest AUC (evaluate.metrics, reused for the lensing classes) on a case worked out by hand.

    y = [0, 0, 1, 1, 2, 2]. Class 0 scores [.9, .8, .1, .2, .3, .1]: both positives above all negatives, AUC 1.
    Class 1 scores [.1, .1, .6, .3, .5, .2]: positives .6 and .3 against negatives .1, .1, .5, .2 -> .6 beats all
    4, .3 beats 3 of 4: (4 + 3) / 8 = 0.875. Class 2 scores [.0, .1, .3, .5, .2, .7]: positives .2 and .7 against
    .0, .1, .3, .5 -> .2 beats 2, .7 beats 4: 6 / 8 = 0.75. Macro mean (1 + .875 + .75) / 3 = 0.875."""
    from tessera.evaluate.metrics import roc_auc_ovr_macro

    y = np.array([0, 0, 1, 1, 2, 2])
    scores = np.array([[.9, .1, .0], [.8, .1, .1], [.1, .6, .3], [.2, .3, .5], [.3, .5, .2], [.1, .2, .7]])
    assert roc_auc_ovr_macro(y, scores) == pytest.approx(0.875)
    assert math.isclose(roc_auc_ovr_macro(np.array([0, 1]), np.array([[0.2, 0.8], [0.9, 0.1]])), 0.0)


def test_lensing_recipe_is_seed_001s_mae_on_whole_images():
    """lensing-mae: patch 4 at 64 px, mask 0.9, and reconstruction views that are the whole image unchanged."""
    from tessera.train.config import resolve_pretrain_config
    from tessera.views.generator import ViewGenerator

    cfg = resolve_pretrain_config("lensing-mae")
    assert (cfg.model.preset, cfg.model.mask_ratio) == ("vit_tiny_patch4_64", 0.9)
    assert [getattr(s, "objective", s) for s in cfg.train.stages] == ["reconstruction"]
    images = torch.rand(3, 1, 64, 64)
    views = ViewGenerator(cfg.views, "reconstruction")(images, torch.Generator().manual_seed(0)).views
    torch.testing.assert_close(views[:, 0], images, atol=1e-5, rtol=0)
