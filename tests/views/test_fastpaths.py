"""The CPU fast paths of the batched generator compute the same thing as the straightforward operators:
reshape-based radio anchor statistics vs adaptive pooling, the byte-mask bright-cell table vs an exact count,
the dihedral transform folded into the sampling grid vs rot90/flip, and the fused in-place photometric pass
vs the public operators applied one by one."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tessera.views.anchors import fast_candidates, mean_tile_candidates, zscore_peak_candidates
from tessera.views.augment import dihedral, photometric, sample_augment_params
from tessera.views.config import AnchorConfig, ViewConfig
from tessera.views.geometry import bright_integral, crop_resize
from .reference_ops import asinh_stretch, banding, flux_perturbation, gaussian_noise


def test_fast_radio_candidates_equal_adaptive_pooling():
    g = torch.Generator().manual_seed(3)
    x = torch.rand(6, 128, 128, generator=g) * 0.1
    x[0, 40:44, 70:75] = 0.9  # one bright source
    x[1] = 0.5  # flat
    x[2] = 0.0  # empty
    x[3, 5, 100], x[3, 90, 20] = 1.0, 0.95
    cfg = AnchorConfig()
    z_xy, z_local, z_valid, m_xy, m_local, gpeak, peak_xy, flat = fast_candidates(x, cfg)
    ref_z = zscore_peak_candidates(x, cfg)
    ref_m = mean_tile_candidates(x, cfg)
    for got, ref in zip((z_xy, z_local, z_valid, m_xy, m_local), (*ref_z, *ref_m)):
        assert torch.equal(got, ref)
    gmax, gidx = x.flatten(1).max(1)
    assert torch.equal(gpeak, gmax)
    assert torch.equal(peak_xy[[0, 3]], torch.stack([(gidx % 128).float() + 0.5, (gidx // 128).float() + 0.5], -1)[[0,
        3]])
    assert flat.tolist() == [False, True, True, False, False, False]


def test_bright_cell_table_counts_exactly():
    x = torch.rand(3, 2, 37, 45, generator=torch.Generator().manual_seed(1))
    for cell in (1, 3, 4):
        sat = bright_integral(x, 0.3, cell)
        ind = (x > 0.3).any(1).float()
        ind = F.pad(ind, (0, (-45) % cell, 0, (-37) % cell))
        counts = F.avg_pool2d(ind[:, None], cell, divisor_override=1)[:, 0]
        assert torch.equal(sat[:, 1:, 1:], counts.cumsum(2).cumsum(1))
        assert (sat[:, 0] == 0).all() and (sat[:, :, 0] == 0).all()


def test_dihedral_in_the_sampling_grid_is_exact_for_all_eight_elements():
    x = torch.rand(8, 2, 40, 37, generator=torch.Generator().manual_seed(2))
    boxes = torch.tensor([[3.2, 4.1, 30.7, 31.6], [-2.0, 1.0, 20.0, 23.0]]).expand(8, 2, 4).clone()
    k = torch.arange(8).div(2, rounding_mode="floor")[:, None].expand(8, 2)
    flip = (torch.arange(8) % 2).bool()[:, None].expand(8, 2)
    plain = crop_resize(x, boxes, 17)
    turned = crop_resize(x, boxes, 17, k=k, flip=flip)
    expect = dihedral(plain.flatten(0, 1), k.flatten(), flip.flatten()).reshape(plain.shape)
    assert torch.equal(turned, expect)


def test_fused_photometric_pass_matches_the_operators_one_by_one():
    cfg = ViewConfig().strong
    n, s = 24, 20
    x = torch.rand(n, 1, s, s, generator=torch.Generator().manual_seed(4))
    p = sample_augment_params(cfg, n, s, cfg.bands, torch.Generator().manual_seed(5), "cpu")
    sigma = torch.full((n,), cfg.noise_sigma)
    k = torch.full((n,), cfg.flux_threshold_k)
    got = photometric(x.clone(), p, sigma, k, torch.Generator().manual_seed(6))
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(6))
    ref = asinh_stretch(x, p.alpha, p.asinh)
    ref = gaussian_noise(ref, cfg.noise_sigma, p.noise, z)
    ref = banding(ref, p.band_vertical, p.band_start, p.band_width, p.band_offset)
    ref = flux_perturbation(ref, p.flux_factor, p.flux, cfg.flux_threshold_k).clamp(0, 1)
    assert p.asinh.any() and (~p.asinh).any() and p.flux.any() and (~p.flux).any()
    assert torch.allclose(got, ref, atol=1e-5)
