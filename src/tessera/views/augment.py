"""Augmentation operators of seed 000 §6.1.1 / Table 3, batched with per-sample parameters.

All operators act on [0, 1] views after ZScale (seed 000 §6.1.1) and take explicit parameter tensors,
so they are pure functions that tests can drive directly. Order (seed 000 §6.1.1, "in the order listed"):
dihedral -> asinh stretch -> affine jitter -> Gaussian noise -> banding -> flux/background perturbation,
then clamp to [0, 1]. Affine jitter is fused into the crop's grid_sample (geometry.jitter_boxes) and the
dihedral transform is applied exactly after resizing; random translation/isotropic scaling is invariant
in distribution under the dihedral group, so this placement samples the same view distribution.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tessera.dihedral import dihedral  # noqa: F401  (re-exported: the group is shared with evaluate)
from tessera.views.config import AugmentConfig
from tessera.views.geometry import rand


def asinh_stretch(x: torch.Tensor, alpha: torch.Tensor, apply: torch.Tensor) -> torch.Tensor:
    """x -> asinh(alpha x) / asinh(alpha) where ``apply``: maps [0, 1] onto itself, compresses bright
    structure and lifts faint emission (the usual astronomical asinh stretch).

    asinh(y) = log(y + sqrt(y^2 + 1)) for y >= 0 (views are in [0, 1] here): a few fast vectorized
    passes instead of torch.asinh, which is ~5x slower per element on CPU. On CPU only the selected
    samples are computed; on an accelerator all are computed and selected with a mask (no host sync).
    x: (N, C, S, S); alpha: (N,); apply: (N,) bool -> (N, C, S, S).
    """
    a = alpha[:, None, None, None].to(x.dtype)
    if x.device.type != "cpu":
        return torch.where(apply[:, None, None, None], _asinh_unit(x, a), x)
    idx = apply.nonzero(as_tuple=True)[0]
    if idx.numel() == 0:
        return x
    out = x.clone()
    out[idx] = _asinh_unit(x[idx], a[idx])
    return out


def _asinh_unit(x: torch.Tensor, a: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """asinh(a x) / asinh(a) for x >= 0 (into x itself when ``inplace``). x: (N, C, S, S); a: (N, 1, 1, 1)."""
    y = x.mul_(a) if inplace else x * a
    out = y.square().add_(1.0).sqrt_().add_(y).log_()
    return y.copy_(out.div_(torch.asinh(a))) if inplace else out.div_(torch.asinh(a))


def gaussian_noise(x: torch.Tensor, sigma: float | torch.Tensor, apply: torch.Tensor,
                   noise: torch.Tensor) -> torch.Tensor:
    """Add pixelwise Gaussian noise of standard deviation ``sigma`` (a float or per sample (N,)) where ``apply``.

    Unselected samples get + 0 * noise, which leaves them bit-for-bit unchanged.
    x, noise (standard normal): (N, C, S, S); apply: (N,) bool -> (N, C, S, S).
    """
    scale = (torch.as_tensor(sigma, dtype=x.dtype, device=x.device) * apply.to(x.dtype))
    return torch.addcmul(x, noise, scale.expand(apply.shape)[:, None, None, None])


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
    k = torch.where(rot, (rand(generator, (n,), device) * 4).long().clamp(max=3), torch.zeros(n, dtype=torch.long,
        device=device))
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
) -> torch.Tensor:
    """Asinh -> noise -> banding -> flux on resized, dihedral-transformed views, then clamp to [0, 1],
    for all views in one pass per operator, with per-view regime constants, updating ``x`` in place.

    Same operators as :func:`asinh_stretch`, :func:`gaussian_noise`, :func:`banding` and
    :func:`flux_perturbation` (up to float rounding of the in-place forms), but without full-size
    temporaries: on CPU, freshly allocated view-sized buffers cost page faults comparable to the math.
    Unselected views are left bit-for-bit unchanged by every operator.
    ``noise_generator=None`` skips the noise draw (no regime has noise). x: (N, C, S, S) in [0, 1];
    noise_sigma, flux_k: (N,) -> x (N, C, S, S) in [0, 1].
    """
    if x.device.type == "cpu":
        idx = p.asinh.nonzero(as_tuple=True)[0]
        if idx.numel():
            x.index_copy_(0, idx, _asinh_unit(x[idx], p.alpha[idx][:, None, None, None].to(x.dtype), inplace=True))
    else:
        x = asinh_stretch(x, p.alpha, p.asinh)
    if noise_generator is not None:
        z = torch.randn(x.shape, generator=noise_generator, device=noise_generator.device, dtype=x.dtype).to(x.device)
        x.addcmul_(z, (noise_sigma * p.noise.to(x.dtype))[:, None, None, None])  # + 0 * z where not applied
        del z
    if p.band_offset.shape[1]:
        rows, cols = band_lines(x.shape[-1], p.band_vertical, p.band_start, p.band_width, p.band_offset)
        x.add_(rows[:, None, :, None]).add_(cols[:, None, None, :])  # zero lines add exactly 0
    if x.device.type == "cpu":  # only the views that draw it (p_flux = 0.5): fewer passes than masking all
        idx = p.flux.nonzero(as_tuple=True)[0]
        if idx.numel():
            x.index_copy_(0, idx, _flux_inplace(x[idx], p.flux_factor[idx], flux_k[idx]))
    else:
        f = torch.where(p.flux, p.flux_factor, torch.ones_like(p.flux_factor))
        _flux_inplace(x, f, flux_k)
    return x.clamp_(0.0, 1.0)


def _flux_inplace(x: torch.Tensor, factor: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """x += x * [x < T] * (f - 1), i.e. x f below T = mean + k std and x elsewhere (f = 1: unchanged).

    x: (N, C, S, S), updated in place and returned; factor, k: (N,)."""
    below = (flux_threshold(x, k) - x).clamp_(0.0, 1.0).ceil_()  # 1.0 iff x < T
    return x.addcmul_(x, below.mul_((factor.to(x.dtype) - 1)[:, None, None, None]))
