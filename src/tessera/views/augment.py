"""Augmentation operators of seed 000 §6.1.1 / Table 3, batched with per-sample parameters.

All operators act on [0, 1] views after ZScale (seed 000 §6.1.1) and take explicit parameter tensors
(:class:`AugmentParams`), so tests can drive them directly; the unfused one-operator versions they are checked
against live with the tests (tests/views/reference_ops.py). Order (seed 000 §6.1.1, "in the order listed"):
dihedral -> asinh stretch -> affine jitter -> Gaussian noise -> banding -> flux/background perturbation,
then clamp to [0, 1]. Affine jitter is fused into the crop's grid_sample (geometry.jitter_boxes) and the
dihedral transform is applied exactly after resizing; random translation/isotropic scaling is invariant
in distribution under the dihedral group, so this placement samples the same view distribution.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# re-exported: the group is shared with evaluate (tessera/dihedral.py)
from tessera.dihedral import dihedral, dihedral_permutations  # noqa: F401
from tessera.views.config import AugmentConfig
from tessera.views.geometry import rand


def _asinh_unit(x: torch.Tensor, a: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """asinh(a x) / asinh(a) for x >= 0 (into x itself when ``inplace``): maps [0, 1] onto itself, compresses
    bright structure and lifts faint emission (the usual astronomical asinh stretch).

    asinh(y) = log(y + sqrt(y^2 + 1)) for y >= 0 (views are in [0, 1] here): a few fast vectorized passes
    instead of torch.asinh, which is ~5x slower per element on CPU. x: (N, C, S, S); a: (N, 1, 1, 1)."""
    y = x.mul_(a) if inplace else x * a
    out = y.square().add_(1.0).sqrt_().add_(y).log_()
    return y.copy_(out.div_(torch.asinh(a))) if inplace else out.div_(torch.asinh(a))


def band_lines(
    size: int, vertical: torch.Tensor, start: torch.Tensor, width: torch.Tensor, offset: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row and per-column offsets of B bands per sample (overlapping bands add up).

    vertical: (N, B) bool; start, width: (N, B) long; offset: (N, B) -> rows (N, S), cols (N, S).
    """
    pos = torch.arange(size, device=offset.device)
    inside = (pos >= start[..., None]) & (pos < (start + width)[..., None])  # (N, B, S)
    line = inside.to(offset.dtype) * offset[..., None]
    vert = vertical[..., None].to(offset.dtype)
    return (line * (1 - vert)).sum(1), (line * vert).sum(1)


def flux_threshold(x: torch.Tensor, k: float | torch.Tensor) -> torch.Tensor:
    """T = mean + k * std of each view and channel (seed 000 Table 3: T = mu + 0.3 sigma_x).

    The std (unbiased) comes from one sum and one fused sum-of-squares pass (views are bounded, so the
    one-pass formula loses nothing that matters); ~5x faster than torch.std on CPU.
    x: (N, C, S, S); k: float or (N,) -> (N, C, 1, 1).
    """
    flat = x.flatten(2)
    n = flat.shape[-1]
    total = flat.sum(-1)
    mean = total / n
    var = ((torch.linalg.vector_norm(flat, 2, dim=-1).square() - total * mean) / max(n - 1, 1)).clamp(min=0)
    k = torch.as_tensor(k, dtype=x.dtype, device=x.device)
    if k.dim():
        k = k[:, None]
    return (mean + k * var.sqrt())[..., None, None]


@dataclass
class AugmentParams:
    """Per-sample draws of one regime for N views (all tensors have leading dim N)."""

    rot: torch.Tensor  # (N,) bool, a random quarter-turn count was drawn (it may be 0)
    k: torch.Tensor  # (N,) long, rotation quarter turns
    flip: torch.Tensor  # (N,) bool
    asinh: torch.Tensor  # (N,) bool
    alpha: torch.Tensor  # (N,)
    affine: torch.Tensor  # (N,) bool
    shift: torch.Tensor  # (N, 2) in units of the view side (0 where not applied)
    scale: torch.Tensor  # (N,) side multiplier (1 where not applied)
    noise: torch.Tensor  # (N,) bool
    banding: torch.Tensor  # (N,) bool
    band_vertical: torch.Tensor  # (N, B) bool
    band_start: torch.Tensor  # (N, B) long
    band_width: torch.Tensor  # (N, B) long
    band_offset: torch.Tensor  # (N, B), zero where banding is not applied
    flux: torch.Tensor  # (N,) bool
    flux_factor: torch.Tensor  # (N,)


def sample_augment_params(
    cfg: AugmentConfig, n: int, size: int, bands: int, generator: torch.Generator, device
) -> AugmentParams:
    """Draw one regime's parameters for ``n`` views of side ``size`` with ``bands`` bands each."""

    def coin(p: float) -> torch.Tensor:
        return rand(generator, (n,), device) < p

    def between(rng: tuple[float, float], shape=(n,)) -> torch.Tensor:
        return rng[0] + (rng[1] - rng[0]) * rand(generator, shape, device)

    rot = coin(cfg.p_rot90)
    quarter_turns = (rand(generator, (n,), device) * 4).long().clamp(max=3)
    k = torch.where(rot, quarter_turns, torch.zeros(n, dtype=torch.long, device=device))
    flip = coin(cfg.p_hflip)
    asinh, alpha = coin(cfg.p_asinh), between(cfg.asinh_alpha)
    affine = coin(cfg.p_affine)
    shift = between((-cfg.translate, cfg.translate), (n, 2)) * affine[:, None]
    scale = 1 + between((-cfg.scale_jitter, cfg.scale_jitter)) * affine
    noise, band_on = coin(cfg.p_noise), coin(cfg.p_banding)
    width = (between(cfg.band_width, (n, bands)) * size).round().long().clamp(min=1, max=size)
    start = (rand(generator, (n, bands), device) * (size - width + 1)).long().clamp(min=0)
    vertical = rand(generator, (n, bands), device) < 0.5
    offset = between(cfg.band_offset, (n, bands)) * band_on[:, None]
    flux, factor = coin(cfg.p_flux), between(cfg.flux_factor)
    return AugmentParams(rot, k, flip, asinh, alpha, affine, shift, scale, noise, band_on, vertical, start, width,
                         offset, flux, factor)


def cat_params(params: list[AugmentParams]) -> AugmentParams:
    """The params of V regimes as one set for N * V views in (sample, view) order, i.e. index n * V + v.

    Band parameters are padded to the largest band count with zero-offset bands (which add exactly 0).
    """
    nb = max(p.band_offset.shape[1] for p in params)
    out = {}
    for name in AugmentParams.__dataclass_fields__:
        vals = [getattr(p, name) for p in params]
        if name.startswith("band_"):
            pad = {"band_vertical": False, "band_start": 0, "band_width": 1, "band_offset": 0.0}[name]
            vals = [torch.cat([v, torch.full((v.shape[0], nb - v.shape[1]), pad, dtype=v.dtype, device=v.device)], 1)
                    for v in vals]
        out[name] = torch.stack(vals, 1).flatten(0, 1)
    return AugmentParams(**out)


def slice_params(p: AugmentParams, sl: slice) -> AugmentParams:
    """The params of views ``sl`` (a slice along the leading view dimension)."""
    return AugmentParams(**{name: getattr(p, name)[sl] for name in AugmentParams.__dataclass_fields__})


def photometric(
    x: torch.Tensor,
    p: AugmentParams,
    noise_sigma: torch.Tensor,
    flux_k: torch.Tensor,
    noise_generator: torch.Generator | None,
    masked: bool | None = None,
) -> torch.Tensor:
    """Asinh -> noise -> banding -> flux on resized, dihedral-transformed views, then clamp to [0, 1],
    for all views in one pass per operator, with per-view regime constants, updating ``x`` IN PLACE (callers
    rely on it: they pass a slice of their view tensor).

    The operators (seed 000 §6.1.1, Table 3): asinh stretch x -> asinh(a x)/asinh(a); additive Gaussian noise
    of sigma; banding (rows/columns [start, start + width) shifted by an offset, overlapping bands add up);
    flux perturbation (pixels below T = mean + k std of the view and channel multiplied by f). Unselected
    views are left bit-for-bit unchanged by every operator. Reference one-operator-at-a-time versions are in
    tests/views/reference_ops.py. ``masked`` (default: off CPU) computes asinh and flux on every view and keeps
    the selected ones with a mask (no host sync); on CPU only the selected views are computed (fewer passes).
    ``noise_generator=None`` skips the noise draw (no regime has noise). x: (N, C, S, S) in [0, 1];
    noise_sigma, flux_k: (N,) -> x.
    """
    masked = x.device.type != "cpu" if masked is None else masked
    alpha = p.alpha[:, None, None, None].to(x.dtype)
    if masked:
        x.copy_(torch.where(p.asinh[:, None, None, None], _asinh_unit(x, alpha), x))
    else:
        idx = p.asinh.nonzero(as_tuple=True)[0]
        if idx.numel():
            x.index_copy_(0, idx, _asinh_unit(x[idx], alpha[idx], inplace=True))
    if noise_generator is not None:
        z = torch.randn(x.shape, generator=noise_generator, device=noise_generator.device, dtype=x.dtype).to(x.device)
        x.addcmul_(z, (noise_sigma * p.noise.to(x.dtype))[:, None, None, None])  # + 0 * z where not applied
        del z
    if p.band_offset.shape[1]:
        rows, cols = band_lines(x.shape[-1], p.band_vertical, p.band_start, p.band_width, p.band_offset)
        x.add_(rows[:, None, :, None]).add_(cols[:, None, None, :])  # zero lines add exactly 0
    if masked:
        _flux_inplace(x, torch.where(p.flux, p.flux_factor, torch.ones_like(p.flux_factor)), flux_k)
    else:  # only the views that draw it (p_flux = 0.5): fewer passes than computing all
        idx = p.flux.nonzero(as_tuple=True)[0]
        if idx.numel():
            x.index_copy_(0, idx, _flux_inplace(x[idx], p.flux_factor[idx], flux_k[idx]))
    return x.clamp_(0.0, 1.0)


def _flux_inplace(x: torch.Tensor, factor: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """x += x * [x < T] * (f - 1), i.e. x f below T = mean + k std and x elsewhere (f = 1: unchanged).

    [x < T] is a float 0/1 mask (clamp + ceil), which avoids slow bool tensors on CPU and any host sync.
    x: (N, C, S, S), updated in place and returned; factor, k: (N,)."""
    below = (flux_threshold(x, k) - x).clamp_(0.0, 1.0).ceil_()  # 1.0 iff x < T
    return x.addcmul_(x, below.mul_((factor.to(x.dtype) - 1)[:, None, None, None]))
