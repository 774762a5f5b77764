"""Self-distillation losses against explicit formulas, the EMA teacher, in-place mask tokens, multi-crop geometry
and the configs that cannot work."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tessera.errors import ConfigError
from tessera.objectives.distillation import (
    byol_regression,
    centered_teacher_probs,
    dino_cross_entropy,
    ibot_patch_loss,
    koleo_loss,
    sinkhorn_knopp,
)


def test_dino_loss_equals_an_explicit_loop_that_skips_same_crop_pairs():
    g = torch.Generator().manual_seed(0)
    b, k, views, globals_ = 3, 7, 5, 2
    student = [torch.randn(b, k, generator=g) for _ in range(views)]
    teacher = [F.softmax(torch.randn(b, k, generator=g), -1) for _ in range(globals_)]
    expected, n = 0.0, 0
    for i in range(globals_):
        for j in range(views):
            if i == j:
                continue
            for row in range(b):
                q = torch.exp(student[j][row] / 0.1) / torch.exp(student[j][row] / 0.1).sum()
                expected += float(-(teacher[i][row] * torch.log(q)).sum()) / b
            n += 1
    assert n == 2 * 4
    assert float(dino_cross_entropy(student, teacher, 0.1)) == pytest.approx(expected / n, rel=1e-5)
    with pytest.raises(ValueError, match="pairs"):
        dino_cross_entropy(student[:1], teacher[:1], 0.1)


def test_centering_and_sharpening():
    logits = torch.tensor([[2.0, 0.0, 1.0], [4.0, 1.0, 1.0]])
    center = torch.tensor([[1.0, -1.0, 0.5]])
    probs = centered_teacher_probs(logits, center, 0.5)
    torch.testing.assert_close(probs, torch.softmax((logits - center) / 0.5, -1))
    entropy = lambda p: float(-(p * p.log()).sum(-1).mean())  # noqa: E731
    assert entropy(centered_teacher_probs(logits, center, 0.05)) < entropy(probs)  # lower T sharpens
    # Centre update: EMA of the batch mean with momentum 0.9 (single process: the all-reduce is the identity).
    from tessera.objectives.distillation import DINO
    from tessera.train.config import resolve_pretrain_config

    dino = DINO(resolve_pretrain_config("cpu", ["train.branch=dino"]))
    new = dino.update_center(center, logits)
    torch.testing.assert_close(new, 0.9 * center + 0.1 * logits.mean(0, keepdim=True))


def test_sinkhorn_gives_every_prototype_equal_mass():
    logits = torch.randn(12, 4, generator=torch.Generator().manual_seed(1))
    q = sinkhorn_knopp(logits, 0.5, iterations=50)
    torch.testing.assert_close(q.sum(1), torch.ones(12), atol=1e-5, rtol=0)
    torch.testing.assert_close(q.sum(0), torch.full((4,), 3.0), atol=1e-3, rtol=0)


def test_koleo_against_its_formula():
    x = torch.randn(6, 5, generator=torch.Generator().manual_seed(2))
    z = F.normalize(x, dim=-1)
    d = torch.cdist(z, z) + torch.diag(torch.full((6,), float("inf")))
    expected = -torch.log(d.min(dim=1).values).mean()
    assert float(koleo_loss(x)) == pytest.approx(float(expected), rel=1e-5)


def test_ibot_loss_uses_only_masked_positions():
    g = torch.Generator().manual_seed(3)
    student = torch.randn(2, 4, 6, generator=g)
    teacher = F.softmax(torch.randn(2, 4, 6, generator=g), -1)
    mask = torch.tensor([[True, False, True, False], [False, False, False, True]])
    loss = ibot_patch_loss(student, teacher, mask, 0.1)
    changed = student.clone()
    changed[~mask] += 5 * torch.randn(int((~mask).sum()), 6, generator=g)
    assert float(ibot_patch_loss(changed, teacher, mask, 0.1)) == pytest.approx(float(loss))
    ce = -(teacher * F.log_softmax(student / 0.1, -1)).sum(-1)
    expected = ((ce[0, 0] + ce[0, 2]) / 2 + ce[1, 3]) / 2
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)


def test_byol_regression_is_normalized_mse_and_the_objective_is_symmetric():
    g = torch.Generator().manual_seed(4)
    p, z = torch.randn(5, 8, generator=g), torch.randn(5, 8, generator=g)
    expected = ((F.normalize(p, dim=-1) - F.normalize(z, dim=-1)) ** 2).sum(-1).mean()
    assert float(byol_regression(p, z)) == pytest.approx(float(expected), rel=1e-5)
    # The symmetrized step loss is unchanged when the two views swap places.
    from tessera.objectives.base import StepContext
    from tessera.objectives.distillation import BYOL
    from tessera.train.config import resolve_pretrain_config

    cfg = resolve_pretrain_config("cpu", ["train.branch=byol", "model.preset=vit_micro_patch8_32",
                                          "objective.byol.proj_hidden=16", "objective.byol.pred_hidden=16"])
    byol = BYOL(cfg)
    torch.manual_seed(0)
    model = byol.build_model().eval()  # eval: BatchNorm running stats, so the batch order cannot matter
    views = torch.rand(3, 2, 1, 32, 32, generator=g)
    ctx = StepContext(0, 0, 10, lambda s: torch.Generator().manual_seed(s))
    a = byol.step(model, [views], ctx).loss
    b = byol.step(model, [views.flip(1)], ctx).loss
    assert a.item() == pytest.approx(b.item(), rel=1e-5)


def test_ema_update_is_exact_and_the_teacher_gets_no_gradient():
    from tessera.models.teacher import EMATeacher

    torch.manual_seed(0)
    student = {"net": torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))}
    teacher = EMATeacher(student)
    assert all(not p.requires_grad for p in teacher.parameters())
    with torch.no_grad():
        for p in student["net"].parameters():
            p.add_(torch.randn_like(p))
    before = [p.clone() for p in teacher.parameters()]
    m = 0.9
    teacher.update(student, m)
    for t0, t, s in zip(before, teacher.parameters(), student["net"].parameters()):
        assert torch.equal(t, t0 * m + s * (1 - m))
    out = teacher.net(torch.randn(2, 4)).sum() + student["net"](torch.randn(2, 4)).sum()
    out.backward()
    assert all(p.grad is None for p in teacher.parameters())
    with pytest.raises(ValueError, match="momentum"):
        teacher.update(student, 1.5)


@pytest.mark.parametrize("backbone", ["vit_mae", "dinov2"])
def test_in_place_mask_tokens_leave_the_unmasked_forward_unchanged(backbone):
    from tessera.models import ModelConfig, build_pretrain_model

    torch.manual_seed(0)
    enc = build_pretrain_model(ModelConfig(preset="vit_micro_patch8_32", backbone=backbone), branches=()).encoder.eval()
    x = torch.rand(2, 1, 32, 32)
    token = torch.randn(32) if backbone == "vit_mae" else None
    none = torch.zeros(2, 16, dtype=torch.bool)
    with torch.no_grad():
        plain = enc(x)
        unmasked = enc(x, bool_masked_pos=none, mask_token=token)
        mask = none.clone()
        mask[:, :5] = True
        masked = enc(x, bool_masked_pos=mask, mask_token=token)
    assert torch.equal(plain.patches, unmasked.patches) and torch.equal(plain.cls, unmasked.cls)
    assert masked.patches.shape == plain.patches.shape  # every position stays (in place, not dropped)
    assert not torch.allclose(masked.patches[:, :5], plain.patches[:, :5])


def test_multicrop_geometry_scales_inside_the_image_and_anchored():
    from tessera.objectives.distillation import DINO
    from tessera.train.config import resolve_pretrain_config

    cfg = resolve_pretrain_config("cpu", ["train.branch=dino", "views.anchors.strategy=center",
                                          "views.multicrop.local_crops=6"])
    dino = DINO(cfg)
    groups = dino.crop_groups()
    assert [(g.name, g.count, g.size) for g in groups] == [("global", 2, 64), ("local", 6, 32)]
    gen = dino.view_generator()
    images = torch.rand(5, 1, 120, 100) * 0.5
    batch = gen(images, torch.Generator().manual_seed(0))
    assert [tuple(v.shape) for v in batch.views] == [(5, 2, 1, 64, 64), (5, 6, 1, 32, 32)]
    torch.testing.assert_close(batch.anchors, torch.tensor([[50.0, 60.0]]).expand(5, 2))  # the centre strategy
    roi = batch.roi
    roi_area = (roi[:, 2] - roi[:, 0]) * (roi[:, 3] - roi[:, 1])
    assert (roi[:, :2] >= 0).all() and (roi[:, 2] <= 100).all() and (roi[:, 3] <= 120).all()
    for group, boxes in zip(groups, batch.boxes):
        area = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
        frac = area / roi_area[:, None]
        lo, hi = group.scale
        assert (frac >= lo - 1e-4).all() and (frac <= hi + 1e-4).all()
        assert (boxes[..., 0] >= roi[:, None, 0] - 1e-4).all() and (boxes[..., 2] <= roi[:, None, 2] + 1e-4).all()
        assert (boxes[..., 1] >= roi[:, None, 1] - 1e-4).all() and (boxes[..., 3] <= roi[:, None, 3] + 1e-4).all()
    assert all(((v >= 0) & (v <= 1)).all() for v in batch.views)


def test_rotated_crops_at_angle_zero_equal_plain_crops():
    from tessera.views.geometry import crop_resize
    from tessera.views.multicrop import rotated_crops

    x = torch.rand(2, 1, 40, 40)
    boxes = torch.tensor([[[4.0, 6.0, 24.0, 26.0]], [[0.0, 0.0, 40.0, 40.0]]])
    zero = torch.zeros(2, 1)
    a = rotated_crops(x, boxes, 10, zero, zero.bool())
    torch.testing.assert_close(a, crop_resize(x, boxes, 10), atol=1e-5, rtol=0)
    quarter = rotated_crops(x, boxes, 10, torch.full((2, 1), math.pi / 2), zero.bool())
    torch.testing.assert_close(quarter, torch.rot90(a, k=1, dims=(-2, -1)), atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    "override, key",
    [
        ("views.multicrop.local_crops=0", "views.multicrop.local_crops"),
        ("objective.dino.prototypes=1", "objective.dino.prototypes"),
        ("objective.dino.momentum=1.2", "objective.dino.momentum"),
        ("objective.dino.teacher_temp=0", "objective.dino.teacher_temp"),
        ("objective.dino.center_momentum=-0.1", "objective.dino.center_momentum"),
        ("views.multicrop.local_size=20", "views.multicrop.local_size"),
    ],
)
def test_impossible_dino_configs_are_refused_naming_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        resolve_pretrain_config_dino(override)


def resolve_pretrain_config_dino(override):
    from tessera.train.config import resolve_pretrain_config

    return resolve_pretrain_config("dino", [override])


def test_impossible_byol_configs_are_refused_naming_the_key():
    from tessera.train.config import resolve_pretrain_config

    with pytest.raises(ConfigError, match=r"objective\.byol\.momentum"):
        resolve_pretrain_config("byol", ["objective.byol.momentum=-0.5"])
    with pytest.raises(ConfigError, match=r"objective\.byol\.crop_scale"):
        resolve_pretrain_config("byol", ["objective.byol.crop_scale=[0, 1]"])
