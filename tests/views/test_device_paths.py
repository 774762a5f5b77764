"""The accelerator branches of the views, run on CPU: the masked photometric pass (no index selection, no host
sync) equals the CPU index-selection pass and, like it, updates the caller's tensor in place; the dihedral
gather equals rot90/flip for every group element."""

from __future__ import annotations

import torch

from tessera.views.augment import dihedral, photometric, sample_augment_params
from tessera.views.config import ViewConfig


def test_masked_photometric_pass_equals_the_selected_pass_and_updates_in_place():
    cfg = ViewConfig().strong
    n, s = 16, 12
    x = torch.rand(n, 1, s, s, generator=torch.Generator().manual_seed(0))
    p = sample_augment_params(cfg, n, s, cfg.bands, torch.Generator().manual_seed(1), "cpu")
    sigma, k = torch.full((n,), cfg.noise_sigma), torch.full((n,), cfg.flux_threshold_k)
    assert p.asinh.any() and (~p.asinh).any() and p.flux.any() and (~p.flux).any()
    selected, masked = x.clone(), x.clone()
    photometric(selected, p, sigma, k, torch.Generator().manual_seed(2), masked=False)
    photometric(masked, p, sigma, k, torch.Generator().manual_seed(2), masked=True)  # the return value is dropped,
    assert not torch.equal(masked, x)  # as the generators drop it: the views themselves must change
    assert torch.allclose(masked, selected, atol=1e-6)


def test_dihedral_gather_equals_rot90_and_flip():
    x = torch.rand(8, 2, 5, 5, generator=torch.Generator().manual_seed(3))
    k = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    flip = torch.tensor([False] * 4 + [True] * 4)
    out = dihedral(x, k, flip)
    for i in range(8):
        ref = torch.rot90(x[i], int(k[i]), dims=(-2, -1))
        ref = ref.flip(-1) if flip[i] else ref
        assert torch.equal(out[i], ref)
