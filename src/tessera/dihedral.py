"""The dihedral group D4 on square images: the 8 exact rotations/flips used by the training views (tessera.views)
and by evaluation's D4-averaged features (tessera.evaluate.features). Neutral ground so that evaluate does not
import views (DESIGN §1); ``tessera.views.augment`` re-exports it.

Radio sources have no preferred orientation on the sky, so every element of D4 is a label-preserving,
interpolation-free augmentation (seed 000 §6.1.1).
"""

from __future__ import annotations

import torch


def dihedral(x: torch.Tensor, k: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """Exact k x 90 deg rotation then horizontal flip, per sample (no interpolation).

    Grouped by the 8 (k, flip) elements of the dihedral group: one rot90/flip per group present.
    x: (N, C, S, S); k: (N,) in {0,1,2,3}; flip: (N,) bool -> (N, C, S, S).
    """
    code = (k * 2 + flip.long()).cpu()
    out = torch.empty_like(x)
    for c in code.unique().tolist():
        idx = (code == c).nonzero(as_tuple=True)[0].to(x.device)
        part = x[idx] if idx.numel() < x.shape[0] else x
        part = torch.rot90(part, c // 2, dims=(-2, -1))
        out[idx] = part.flip(-1) if c % 2 else part
    return out
