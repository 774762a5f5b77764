"""The objectives' batch interface carries paired two-modality batches: `tessera align`'s step is
objectives.alignment.Alignment.step on a PairedViews batch, equal to the explicit CLIP loss of the towers."""

from __future__ import annotations

import pytest
import torch

from tessera.align.trainer import build_model
from tessera.objectives.alignment import Alignment, clip_loss, pair_accuracy
from tessera.objectives.base import PairedViews, StepContext
from tests.align.test_align_run import _cfg, _image_spectrum_pairs


def test_alignment_step_on_paired_views_is_the_clip_loss_of_the_towers(tmp_path):
    cfg = _cfg(_image_spectrum_pairs(tmp_path))
    model = build_model(cfg)
    torch.manual_seed(0)
    views = PairedViews(torch.rand(4, 1, 32, 32), torch.randn(4, 1, 40), ("image", "spectrum"))
    ctx = StepContext(step=0, micro=0, max_steps=1, generator=lambda s: torch.Generator().manual_seed(s))
    objective = Alignment(cfg)
    out = objective.step(model, views, ctx)
    za, zb = model(views.a, views.b)
    assert torch.allclose(out.loss, clip_loss(za, zb, model.scale))
    assert out.parts["pair_accuracy"] == pair_accuracy(za, zb) and out.parts["align"] == out.loss.detach()
    assert (objective.batch_size(), objective.grad_clip()) == (cfg.train.batch_size, cfg.train.grad_clip)
    out.loss.backward()
    assert all(p.grad is not None for p in model.a.head.parameters())


def test_paired_views_need_one_row_per_pair():
    with pytest.raises(ValueError, match="one row per pair"):
        PairedViews(torch.rand(4, 1, 8, 8), torch.randn(3, 1, 40))
