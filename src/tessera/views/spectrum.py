"""The 1-D view path (DESIGN §3.1b): a spectrum's "view" is the spectrum itself.

Seed 003 §3.2 pretrains the spectrum tower by masked modelling of the raw spectrum, with no augmentation; the
masks are the objective's (objectives/spectrum.py, drawn from the step's generator). This generator only gives the
engine what ``views_from_pool`` needs: ``.views`` and ``.nonempty`` ("empty" = no valid channel, so a spare
spectrum takes its place as an empty image view would)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class SpectrumViewBatch:
    """views (N, 1, C, L) float32 (NaN = missing channel); nonempty (N,) bool: at least one finite channel."""

    views: torch.Tensor
    nonempty: torch.Tensor


class SpectrumViews:
    """``(spectra (N, C, L), generator) -> SpectrumViewBatch``; the generator is unused (no random view)."""

    def __call__(self, spectra, generator: torch.Generator | None = None) -> SpectrumViewBatch:
        if not isinstance(spectra, torch.Tensor) or spectra.ndim != 3:
            shape = tuple(spectra.shape) if isinstance(spectra, torch.Tensor) else type(spectra).__name__
            raise ValueError(f"spectrum views take one (N, C, L) tensor of spectra on one grid, got {shape}")
        x = spectra.float()
        return SpectrumViewBatch(views=x[:, None], nonempty=torch.isfinite(x).flatten(1).any(dim=1))
