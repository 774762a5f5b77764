"""The spectrum-masked objective (seed 003 §3.2): masks cover exactly the configured segments and come from the
step's generator; the loss is the MSE on hidden valid channels only; the step goes through the model's call."""

from __future__ import annotations

import torch

from tessera.models.spectrum import SpectrumEncoder, SpectrumMaskedModel
from tessera.objectives.base import StepContext
from tessera.objectives.registry import get_objective
from tessera.objectives.spectrum import masked_inputs, segment_mask
from tessera.train.config import resolve_pretrain_config
from tessera.views.spectrum import SpectrumViews


def test_segment_masks_are_exact_and_a_pure_function_of_the_generator():
    mask, starts = segment_mask(20, 120, segments=3, width=10, generator=torch.Generator().manual_seed(5))
    assert (mask.sum(1) == 30).all() and ((starts[:, 1:] - starts[:, :-1]) >= 10).all()
    again, _ = segment_mask(20, 120, segments=3, width=10, generator=torch.Generator().manual_seed(5))
    assert torch.equal(mask, again)


def test_hidden_and_missing_channels_are_inputs_nan_and_only_hidden_valid_ones_are_targets():
    x = torch.linspace(0, 1, 60).repeat(2, 1, 1)
    x[0, 0, 5] = float("nan")
    mask = torch.zeros(2, 60, dtype=torch.bool)
    mask[:, 0:10] = True
    inputs, z, target = masked_inputs(x, mask)
    assert torch.isnan(inputs[:, :, :10]).all() and torch.isnan(inputs[0, 0, 5])
    assert torch.isfinite(inputs[:, :, 10:]).all()
    assert target[0, 0].sum() == 9 and target[1, 0].sum() == 10 and not target[0, 0, 5]


def test_step_loss_equals_the_reference_mse_on_hidden_valid_channels():
    cfg = resolve_pretrain_config("spectrum", ["model.spectrum.length=100", "model.spectrum.dim=16",
                                               "model.spectrum.depth=1", "model.spectrum.heads=2",
                                               "objective.spectrum_masked.segments=2",
                                               "objective.spectrum_masked.width=10"])
    objective = get_objective("spectrum-masked")(cfg)
    torch.manual_seed(0)
    model = objective.build_model()
    assert isinstance(model, SpectrumMaskedModel) and model.encoder.length == 100
    spectra = torch.randn(4, 1, 100).cumsum(-1)
    spectra[1, 0, 30:50] = float("nan")
    batch = SpectrumViews()(spectra)
    assert batch.views.shape == (4, 1, 1, 100) and batch.nonempty.all()
    ctx = StepContext(step=0, micro=0, max_steps=1, generator=lambda s: torch.Generator().manual_seed(100 + s))
    out = objective.step(model, batch.views, ctx)
    mask, _ = segment_mask(4, 100, 2, 10, torch.Generator().manual_seed(101))  # stream 1 of the step
    inputs, z, target = masked_inputs(spectra, mask)
    reference = ((model(inputs) - z)[target] ** 2).mean()
    assert torch.allclose(out.loss, reference) and out.parts["spectrum-masked"] == out.loss.detach()
    out.loss.backward()
    assert model.decoder.weight.grad is not None and model.encoder.patch_embed.weight.grad is not None


def test_an_all_missing_spectrum_is_empty_for_the_view_pool():
    spectra = torch.ones(3, 1, 40)
    spectra[2] = float("nan")
    assert SpectrumViews()(spectra).nonempty.tolist() == [True, True, False]
    enc = SpectrumEncoder(40, dim=8, depth=1, heads=2)
    assert SpectrumMaskedModel(enc)(spectra[:2]).shape == (2, 1, 40)
