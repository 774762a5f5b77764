"""Reconstruction losses (seed 000 Eq. 2-6) against straightforward references."""

from __future__ import annotations

import pytest
import torch

from tessera.models import build_pretrain_model
from tessera.models.adapter import InputAdapter
from tessera.models.config import ModelConfig
from tessera.objectives.reconstruction import ReconstructionLoss, brightness_weights


def _batch(n=2, length=6, p=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    pred = torch.randn(n, length, p, generator=g, dtype=torch.float64)
    target01 = torch.rand(n, length, p, generator=g, dtype=torch.float64)
    mask = torch.zeros(n, length, dtype=torch.float64)
    mask[:, ::2] = 1
    return pred, target01, mask


def reference(pred, target, mask, target01, kind, w1=0.1, wb=0.1, eps=1e-6):
    n, length, p = pred.shape
    sq, count = 0.0, 0
    for i in range(n):
        for j in range(length):
            if mask[i, j] > 0:
                sq += float(((pred[i, j] - target[i, j]) ** 2).sum()) / p
                count += 1
    loss = sq / count
    if kind == "l2_l1":
        loss += w1 * float((pred - target).abs().mean())
    if kind == "l2_bl1":
        acc = 0.0
        for i in range(n):
            w = target01[i].abs() / (target01[i].abs().mean() + eps)
            acc += float((w * (pred[i] - target[i]).abs()).mean())
        loss += wb * acc / n
    return loss


@pytest.mark.parametrize("kind", ["l2", "l2_l1", "l2_bl1"])
def test_matches_reference(kind):
    pred, target01, mask = _batch()
    target = (target01 - 0.45) / 0.22
    loss, parts = ReconstructionLoss(kind)(pred, target, mask, target01)
    assert loss.item() == pytest.approx(reference(pred, target, mask, target01, kind), rel=1e-10)
    assert parts["loss"].item() == pytest.approx(loss.item())
    assert {"l2": {"mse"}, "l2_l1": {"mse", "l1"}, "l2_bl1": {"mse", "bl1"}}[kind] <= set(parts)


def test_mse_ignores_visible_patches():
    pred, target01, mask = _batch()
    loss_fn = ReconstructionLoss("l2")
    base, _ = loss_fn(pred, target01, mask, target01)
    changed = pred.clone()
    changed[mask == 0] += 5.0  # visible patches do not enter Eq. 2
    assert loss_fn(changed, target01, mask, target01)[0].item() == pytest.approx(base.item())


def test_brightness_weights_unit_mean_and_follow_brightness():
    _, target01, _ = _batch()
    w = brightness_weights(target01)
    torch.testing.assert_close(w.mean(dim=(1, 2)), torch.ones(2, dtype=torch.float64), atol=1e-5, rtol=0)
    assert torch.all((w[target01 > 0.8]).mean() > w[target01 < 0.2].mean())


def test_bl1_weights_come_from_target01_not_normalized_input():
    """A bright source on black sky: weights must peak on the source, as computed from the [0,1] view."""
    torch.manual_seed(0)
    model = build_pretrain_model(ModelConfig(preset="vit_micro_patch8_32"), branches=("reconstruction",))
    model.encoder.adapter = InputAdapter.build("imagenet", 1)  # a normalizing adapter (grey ImageNet stats)
    x = torch.zeros(2, 1, 32, 32)
    x[:, :, 8:16, 8:16] = 1.0
    out = model(x, "reconstruction")
    loss_fn = ReconstructionLoss("l2_bl1")
    right, parts = loss_fn(out["pred"], out["target"], out["mask"], out["target01"])
    wrong, wrong_parts = loss_fn(out["pred"], out["target"], out["mask"], out["target"])  # normalized as weights
    assert not torch.isclose(parts["bl1"], wrong_parts["bl1"])
    w_right = brightness_weights(out["target01"])
    w_wrong = brightness_weights(out["target"])
    # Correct weights: zero on black sky, high on the source; normalized-input weights are nonzero on the sky.
    assert w_right[:, 0].abs().max() == 0 and w_right.max() > 1
    assert w_wrong[:, 0].min() > 0.5


def test_shape_errors():
    pred, target01, mask = _batch()
    loss_fn = ReconstructionLoss("l2_bl1")
    with pytest.raises(ValueError, match="target shape"):
        loss_fn(pred, target01[:, :3], mask, target01)
    with pytest.raises(ValueError, match="mask must be"):
        loss_fn(pred, target01, mask[:, :3], target01)
    with pytest.raises(ValueError, match="target01"):
        loss_fn(pred, target01, mask, None)
    with pytest.raises(ValueError, match="unknown"):
        ReconstructionLoss("l3")


def test_gradient_reaches_decoder_on_real_data(shared_data):
    import numpy as np
    from PIL import Image

    paths = sorted((shared_data / "first_radio_galaxies").rglob("*.png"))[:2]
    x = torch.from_numpy(np.stack([np.asarray(Image.open(p).convert("L"), dtype=np.float32) / 255 for p in paths]))
    x = torch.nn.functional.interpolate(x[:, None], size=(32, 32), mode="bicubic", align_corners=False).clamp(0, 1)
    torch.manual_seed(0)
    model = build_pretrain_model(ModelConfig(preset="vit_micro_patch8_32"), branches=("reconstruction",))
    out = model(x, "reconstruction")
    loss, parts = ReconstructionLoss("l2_bl1")(out["pred"], out["target"], out["mask"], out["target01"])
    loss.backward()
    assert torch.isfinite(loss) and parts["bl1"] > 0
    assert model.decoder.decoder_pred.weight.grad.abs().sum() > 0
    assert model.encoder.backbone.embeddings.patch_embeddings.projection.weight.grad.abs().sum() > 0


def test_whitespace_split_separates_ink_and_background_error():
    """Issue 20 / seed 002 §4: the MSE of masked patches split by ink; share = background's part of the sum."""
    from tessera.objectives.reconstruction import whitespace_split

    target01 = torch.zeros(1, 4, 3)
    target01[0, 0] = 1.0  # patch 0 is ink
    target = target01.clone()
    pred = target.clone()
    pred[0, 0] += 0.5  # error 0.25 on the ink patch
    pred[0, 1] += 1.0  # error 1.0 on a background patch
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])  # patch 3 is visible: not counted
    out = whitespace_split(pred, target, mask, target01)
    assert out["mse_ink"].item() == pytest.approx(0.25)
    assert out["mse_background"].item() == pytest.approx(0.5)  # (1.0 + 0.0) / 2 masked background patches
    assert out["whitespace_share"].item() == pytest.approx(1.0 / 1.25)
    assert out["ink_patches"].item() == pytest.approx(1 / 3)
