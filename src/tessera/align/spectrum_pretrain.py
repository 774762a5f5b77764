"""Masked modelling of spectra (seed 003 §3.2, App. B2): the single-modal pretraining of a spectrum tower.

Each spectrum is Z-scored on its valid channels; six contiguous, non-overlapping segments of 30 channels are
hidden (set missing, so the encoder sees them as it sees flagged channels: zero value, zero validity); a linear
decoder maps each patch token back to its 20 channels, overlapping patches are averaged per channel, and the loss
is the MSE on the hidden channels that were valid (a flagged channel is never a target).

Why not an objective of ``tessera pretrain`` (yet): the engine trains on a CutoutStore of images through view
generators, and making it take spectra is a structural change of several packages, not a registry line:

1. a spectrum store (``corpus``): shards of ``(C, L)`` float32 on one grid with NaN = missing, the grid saved
   with it, a manifest with provenance and RA/Dec (``corpus/spectra.py`` reads the files; nothing writes a
   store), and an ingest entry point for it;
2. ``train/run.py``: ``Run.open`` opens only ``CutoutStore``; ``config_for_corpus`` and ``Run.export`` assume a
   ViT (``model.in_channels``, ``export_model``); a spectrum run needs its model section (length, width,
   stride, dim, depth) and ``export_spectrum``;
3. ``train/loader.py``: ``read_cutouts`` turns a 2-D array into ``(1, H, W)``, so a ``(C, L)`` spectrum would
   become ``(1, C, L)``; the store must say its array rank;
4. ``views``: ``views_from_pool`` needs a generator returning ``.views`` / ``.nonempty``; a 1-D generator
   (the spectra themselves plus segment masks drawn from the step's generator; "empty" = no valid channel);
5. ``models``: ``build_pretrain_model`` builds only image encoders; the objective would build
   :class:`SpectrumMaskedModel` itself, and the collapse monitor's ``encoder(views[:, 0]).readout`` then works
   on ``(B, V, C, L)`` views;
6. the objective (``objectives/spectrum.py``): settings (segments, width, batch size, grad clip), ``step`` =
   :func:`masked_loss` with the mask from ``ctx.generator``, registered in ``objectives/registry.py``.

Until then this small loop reuses the engine's AdamW/cosine and checkpoint helpers and writes RUN/model/ with
:func:`tessera.models.spectrum.export_spectrum`, which ``tessera align --b RUN/model`` reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from tessera.models.spectrum import SpectrumEncoder, export_spectrum, zscore_spectra
from tessera.train.checkpoint import save_checkpoint
from tessera.train.optim import build_optimizer, build_scheduler


def segment_mask(batch: int, length: int, segments: int = 6, width: int = 30,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(mask (B, L) bool, starts (B, segments) long): ``segments`` non-overlapping runs of ``width`` channels,
    uniformly placed (sorted free offsets + i * width), so exactly ``segments * width`` channels are masked."""
    free = length - segments * width
    if free < 0:
        raise ValueError(f"{segments} segments of {width} channels do not fit in {length} channels")
    offsets = torch.sort(torch.randint(0, free + 1, (batch, segments), generator=generator), dim=1).values
    starts = offsets + torch.arange(segments) * width
    channel = torch.arange(length)
    inside = (channel[None, None, :] >= starts[..., None]) & (channel[None, None, :] < starts[..., None] + width)
    return inside.any(dim=1), starts


class SpectrumMaskedModel(nn.Module):
    """Encoder + linear patch decoder: x (B, C, L) -> reconstruction (B, C, L) of the Z-scored spectrum."""

    def __init__(self, encoder: SpectrumEncoder):
        super().__init__()
        self.encoder = encoder
        self.decoder = nn.Linear(encoder.dim, encoder.in_channels * encoder.width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        enc = self.encoder
        tokens, _ = enc.token_sequence(x)
        patches = self.decoder(tokens[:, 2:])  # (B, P, C * width)
        b, p = patches.shape[:2]
        patches = patches.view(b, p, enc.in_channels, enc.width)
        out = x.new_zeros(b, enc.in_channels, enc.length)
        count = x.new_zeros(enc.length)
        for i in range(p):  # overlapping patches: average the predictions of every patch covering a channel
            lo = i * enc.stride
            out[..., lo : lo + enc.width] += patches[:, i]
            count[lo : lo + enc.width] += 1
        return out / count.clamp_min(1)


def masked_loss(model: SpectrumMaskedModel, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """MSE on the hidden, valid channels: x (B, C, L) raw spectra (NaN = missing), mask (B, L) bool."""
    z, valid, _ = zscore_spectra(x)
    hidden = mask[:, None, :].expand_as(z)
    inputs = torch.where(hidden, torch.full_like(z, float("nan")), torch.where(valid.bool(), z, float("nan")))
    target = hidden & valid.bool()
    pred = model(inputs)
    return ((pred - z) ** 2)[target].mean()


@dataclass
class SpectrumPretrainConfig:
    steps: int = 200
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_fraction: float = 0.05
    segments: int = 6
    width: int = 30
    seed: int = 0


def pretrain_spectra(encoder: SpectrumEncoder, spectra: torch.Tensor, out: str | Path,
                     cfg: SpectrumPretrainConfig | None = None) -> list[float]:
    """Train ``encoder`` by masked modelling on spectra (N, C, L); write RUN/model and a final checkpoint.
    Returns the loss of every step."""
    cfg = cfg or SpectrumPretrainConfig()
    out = Path(out)
    model = SpectrumMaskedModel(encoder).train()
    device = torch.device("cpu")
    opt = build_optimizer(model, cfg.lr, cfg.weight_decay, (0.9, 0.95), device)
    sched = build_scheduler(opt, cfg.steps, cfg.warmup_fraction, cfg.lr, 0.0)
    g = torch.Generator().manual_seed(cfg.seed)
    losses = []
    for _ in range(cfg.steps):
        idx = torch.randint(0, len(spectra), (cfg.batch_size,), generator=g)
        mask, _ = segment_mask(cfg.batch_size, encoder.length, cfg.segments, cfg.width, g)
        loss = masked_loss(model, spectra[idx], mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    save_checkpoint(out / "checkpoints", cfg.steps, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                                     "scheduler": sched.state_dict()})
    export_spectrum(encoder, out / "model")
    return losses
