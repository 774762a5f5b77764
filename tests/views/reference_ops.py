"""The unfused augmentation operators of seed 000 §6.1.1 / Table 3, one operator per call: the yardstick the fused
in-place pass ``tessera.views.augment.photometric`` is checked against (tests/views/test_fastpaths.py), and
the operators whose p = 1 / p = 0 behaviour tests/views/test_augment.py checks directly.

Moved here from ``tessera/views/augment.py`` (issue 18: one production path; reference implementations live
with the tests that use them).
"""

from __future__ import annotations

import torch

from tessera.views.augment import band_lines, flux_threshold


def asinh_stretch(x: torch.Tensor, alpha: torch.Tensor, apply: torch.Tensor) -> torch.Tensor:
    """x -> asinh(alpha x) / asinh(alpha) where ``apply`` (torch.asinh itself: an independent check of the fused
    log-form in tessera.views.augment). x: (N, C, S, S); alpha: (N,); apply: (N,) bool -> (N, C, S, S)."""
    a = alpha[:, None, None, None].to(x.dtype)
    return torch.where(apply[:, None, None, None], torch.asinh(a * x) / torch.asinh(a), x)


def gaussian_noise(
    x: torch.Tensor, sigma: float | torch.Tensor, apply: torch.Tensor, noise: torch.Tensor
) -> torch.Tensor:
    """Add pixelwise Gaussian noise of standard deviation ``sigma`` (a float or per sample (N,)) where ``apply``.

    Unselected samples get + 0 * noise, which leaves them bit-for-bit unchanged.
    x, noise (standard normal): (N, C, S, S); apply: (N,) bool -> (N, C, S, S).
    """
    scale = (torch.as_tensor(sigma, dtype=x.dtype, device=x.device) * apply.to(x.dtype))
    return torch.addcmul(x, noise, scale.expand(apply.shape)[:, None, None, None])


def band_map(
    size: int, vertical: torch.Tensor, start: torch.Tensor, width: torch.Tensor, offset: torch.Tensor
) -> torch.Tensor:
    """Additive map of B bands per sample: rows (horizontal band) or columns (vertical band)
    ``[start, start + width)`` shifted by ``offset`` (overlapping bands add up).

    vertical: (N, B) bool; start, width: (N, B) long; offset: (N, B) (0 for inactive bands) -> (N, 1, S, S).
    """
    rows, cols = band_lines(size, vertical, start, width, offset)
    return (rows[:, :, None] + cols[:, None, :])[:, None]


def banding(
    x: torch.Tensor, vertical: torch.Tensor, start: torch.Tensor, width: torch.Tensor, offset: torch.Tensor
) -> torch.Tensor:
    """Banding artefacts (striping of imperfectly calibrated data): add ``band_map`` to every channel.

    x: (N, C, S, S); band parameters as in :func:`band_map` -> (N, C, S, S).
    """
    return x + band_map(x.shape[-1], vertical, start, width, offset)


def flux_perturbation(
    x: torch.Tensor, factor: torch.Tensor, apply: torch.Tensor, k: float | torch.Tensor
) -> torch.Tensor:
    """Multiplicative attenuation of lower-intensity pixels (below T = mean + k std) by ``factor``:
    dims faint background/diffuse flux while leaving bright emission untouched.

    Computed as x * (b f + (1 - b)) with b = [x < T] as a float 0/1 mask (exact: x f below, x elsewhere;
    unselected samples use f = 1), which avoids slow bool tensors on CPU and any host sync.
    x: (N, C, S, S); factor: (N,); apply: (N,) bool; k: float or (N,) -> (N, C, S, S).
    """
    f = torch.where(apply, factor.to(x.dtype), torch.ones_like(factor, dtype=x.dtype))[:, None, None, None]
    below = (flux_threshold(x, k) - x).clamp_(0.0, 1.0).ceil_()  # 1.0 iff x < T
    mult = torch.rsub(below, 1.0).addcmul_(below, f)
    return x * mult
