"""The dihedral group D4 on square images: the 8 exact rotations/flips used by the training views (tessera.views)
and by evaluation's D4-averaged features (tessera.evaluate.features). Neutral ground so that evaluate does not
import views (DESIGN §1); ``tessera.views.augment`` re-exports it.

Radio sources have no preferred orientation on the sky, so every element of D4 is a label-preserving,
interpolation-free augmentation (seed 000 §6.1.1).
"""

from __future__ import annotations

import torch


def dihedral(x: torch.Tensor, k: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """Exact k x 90 deg rotation then horizontal flip, per sample (no interpolation), as ONE gather of pixels:
    each of the 8 (k, flip) elements of the dihedral group is a fixed permutation of the S x S pixel indices
    (derived with torch.rot90/flip on an index image), so nothing waits on the host.

    x: (N, C, S, S); k: (N,) in {0,1,2,3}; flip: (N,) bool -> (N, C, S, S).
    """
    n, c, s, _ = x.shape
    perm = dihedral_permutations(s, x.device)[(k.to(x.device) * 2 + flip.to(x.device).long())]  # (N, S*S)
    return x.flatten(2).gather(2, perm[:, None, :].expand(n, c, s * s)).view(n, c, s, s)


_PERMUTATIONS: dict[tuple[int, str], torch.Tensor] = {}


def dihedral_permutations(size: int, device) -> torch.Tensor:
    """(8, S*S) long: row ``2 k + flip`` holds, for each output pixel, the input pixel it takes. Cached per device."""
    key = (size, str(device))
    if key not in _PERMUTATIONS:
        idx = torch.arange(size * size).view(size, size)
        rows = [torch.rot90(idx, code // 2, dims=(-2, -1)) for code in range(8)]
        rows = [r.flip(-1) if code % 2 else r for code, r in enumerate(rows)]
        _PERMUTATIONS[key] = torch.stack([r.reshape(-1) for r in rows]).to(device)
    return _PERMUTATIONS[key]
