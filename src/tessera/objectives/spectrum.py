"""Masked modelling of spectra (seed 003 §3.2, App. B2): the single-modal pretraining of the spectrum tower, as the
registered objective ``spectrum-masked`` of ``tessera pretrain`` on a spectrum store.

Each spectrum is Z-scored on its valid channels; ``segments`` contiguous, non-overlapping runs of ``width``
channels (seed 003: six of 30) are hidden (set missing, so the encoder sees them as it sees flagged channels: zero
value, zero validity); a linear decoder maps each patch token back to its channels, overlapping patches are
averaged per channel (models/spectrum.py ``SpectrumMaskedModel``), and the loss is the MSE on the hidden channels
that were valid (a flagged channel is never a target). The masks come from the step's generator (stream 1), so an
interrupted run resumes exactly. Settings: ``objective.spectrum_masked`` (segments, width, batch_size, grad_clip);
the tower: ``model.spectrum`` (length from the store, patch width 20 / stride 10, dim, depth, heads).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tessera.errors import ConfigError
from tessera.objectives.base import Objective, StepContext, StepResult


def segment_mask(batch: int, length: int, segments: int = 6, width: int = 30,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(mask (B, L) bool, starts (B, segments) long): ``segments`` non-overlapping runs of ``width`` channels,
    uniformly placed (sorted free offsets + i * width), so exactly ``segments * width`` channels are masked.
    Drawn on the generator's device."""
    free = length - segments * width
    if free < 0:
        raise ValueError(f"{segments} segments of {width} channels do not fit in {length} channels")
    device = generator.device if generator is not None else torch.device("cpu")
    offsets = torch.sort(torch.randint(0, free + 1, (batch, segments), generator=generator, device=device),
                         dim=1).values
    starts = offsets + torch.arange(segments, device=device) * width
    channel = torch.arange(length, device=device)
    inside = (channel[None, None, :] >= starts[..., None]) & (channel[None, None, :] < starts[..., None] + width)
    return inside.any(dim=1), starts


def masked_inputs(x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """x (B, C, L) raw spectra (NaN = missing), mask (B, L) bool -> (inputs (B, C, L) Z-scored with hidden and
    missing channels NaN, target z (B, C, L), targets (B, C, L) bool = hidden and valid)."""
    from tessera.models.spectrum import zscore_spectra

    z, valid, _ = zscore_spectra(x)
    hidden = mask[:, None, :].expand_as(z)
    nan = torch.full_like(z, float("nan"))
    inputs = torch.where(hidden | ~valid.bool(), nan, z)
    return inputs, z, hidden & valid.bool()


def masked_loss(model: nn.Module, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """MSE on the hidden, valid channels: x (B, C, L) raw spectra (NaN = missing), mask (B, L) bool. ``model`` maps
    Z-scored (B, C, L) with NaN = missing to a (B, C, L) reconstruction (call it, never its submodules: DDP).
    A batch with no hidden valid channel gives 0 (with gradient), not NaN."""
    inputs, z, target = masked_inputs(x, mask)
    pred = model(inputs)
    err = torch.where(target, (pred - z) ** 2, torch.zeros_like(pred))
    return err.sum() / target.sum().clamp_min(1)


@dataclass
class SpectrumMaskedSettings:
    """``objective.spectrum_masked``: seed 003 §3.2 hides six segments of 30 channels of a 7781-channel spectrum;
    on a short grid (the simulated radio spectra have 200) fewer or narrower segments keep most of it visible."""

    segments: int = 6
    width: int = 30
    batch_size: int = 32
    grad_clip: float = 1.0

    def validate(self, key: str = "objective.spectrum_masked") -> None:
        for name in ("segments", "width", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"config key '{key}.{name}': must be >= 1, got {getattr(self, name)}")
        if not self.grad_clip > 0:
            raise ConfigError(f"config key '{key}.grad_clip': must be > 0, got {self.grad_clip}")


class SpectrumMasked(Objective):
    """Masked modelling of spectra (module docstring); trains and exports :class:`SpectrumEncoder`."""

    name = "spectrum-masked"
    settings_cls = SpectrumMaskedSettings
    input_kind = "spectrum"

    @classmethod
    def validate(cls, cfg) -> None:
        s, m = getattr(cfg.objective, cls.section()), cfg.model.spectrum
        key = f"objective.{cls.section()}"
        if m.length is None:
            return  # known once the store is open (train/run.py config_for_corpus), then checked again
        if m.length < m.width:
            raise ConfigError(f"config key 'model.spectrum.width': patches of {m.width} channels do not fit the "
                              f"store's {m.length}-channel grid")
        if s.segments * s.width >= m.length:
            raise ConfigError(f"config key '{key}.segments': {s.segments} segments of {s.width} channels hide "
                              f"{s.segments * s.width} of the store's {m.length} channels; use fewer or narrower "
                              f"({key}.width) segments")

    def build_model(self) -> nn.Module:
        from tessera.models.spectrum import SpectrumMaskedModel, build_spectrum_encoder

        return SpectrumMaskedModel(build_spectrum_encoder(self.cfg.model.spectrum, self.cfg.model.in_channels))

    def crop_groups(self) -> list:
        return []  # no crops: the view is the spectrum itself (views/spectrum.py)

    def view_generator(self):
        from tessera.views.spectrum import SpectrumViews

        return SpectrumViews()

    def step(self, model: nn.Module, views: torch.Tensor, ctx: StepContext) -> StepResult:
        """views (B, 1, C, L) raw spectra -> the masked MSE; the masks from ``ctx.generator(1)``."""
        if views.ndim != 4 or views.shape[1] != 1:
            raise ValueError(f"spectrum-masked expects views of shape (B, 1, C, L), got {tuple(views.shape)}")
        x = views[:, 0]
        s = self.settings
        mask, _ = segment_mask(x.shape[0], x.shape[-1], s.segments, s.width, ctx.generator(1))
        loss = masked_loss(model, x, mask)
        return StepResult(loss=loss, parts={self.name: loss.detach()})


__all__ = ["SpectrumMasked", "SpectrumMaskedSettings", "masked_inputs", "masked_loss", "segment_mask"]
