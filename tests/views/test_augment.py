"""Augmentation operators (seed 000 §6.1.1, Table 3): p = 1 always / p = 0 never, exact dihedral,
banding and flux change only what they should, and the per-view regimes of the contrastive branch."""

from __future__ import annotations

import pytest
import torch

from tessera.views.augment import dihedral, flux_threshold
from tessera.views.generator import ViewGenerator

from ._helpers import quiet_config
from .reference_ops import asinh_stretch, banding, flux_perturbation

N = 48


@pytest.fixture(scope="module")
def images():
    return torch.rand(N, 1, 40, 40, generator=torch.Generator().manual_seed(0)) * 0.8 + 0.1


def run(cfg, images, branch="reconstruction", seed=5):
    return ViewGenerator(cfg, branch)(images, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    "key", ["p_asinh", "p_noise", "p_banding", "p_flux", "p_affine", "p_hflip"]
)
def test_p_one_always_applies_and_p_zero_never(images, key):
    """Same seed -> same crops; an operator at p = 1 changes every view, at p = 0 none."""
    base = run(quiet_config(), images).views
    on = run(quiet_config(**{key: 1.0}), images)
    off = run(quiet_config(**{key: 0.0}), images)
    changed = (on.views - base).abs().flatten(1).amax(1) > 1e-6
    assert changed.all(), f"{key}=1 left {(~changed).sum()} of {N} views unchanged"
    assert torch.equal(off.views, base)
    flag = key[2:]
    assert on.applied[flag].all() and not off.applied[flag].any()


def test_rotation_probability_and_uniform_quarter_turns(images):
    many = torch.rand(800, 1, 8, 8)
    on = run(quiet_config(size=8, p_rot90=1.0), many)
    counts = torch.bincount(on.k.flatten(), minlength=4).float() / 800
    assert (counts > 0.18).all() and (counts < 0.32).all()  # k uniform in {0,1,2,3}
    off = run(quiet_config(size=8, p_rot90=0.0), many)
    assert (off.k == 0).all()
    half = run(quiet_config(size=8, p_hflip=0.5), many)
    assert 0.42 < half.flip.float().mean() < 0.58


def test_dihedral_is_exact():
    x = torch.rand(8, 2, 6, 6)
    k = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    flip = torch.tensor([False] * 4 + [True] * 4)
    out = dihedral(x, k, flip)
    for i in range(8):
        expect = torch.rot90(x[i], int(k[i]), dims=(-2, -1))
        expect = expect.flip(-1) if flip[i] else expect
        assert torch.equal(out[i], expect)


def test_generator_dihedral_equals_rot90_flip_of_plain_view(images):
    plain = run(quiet_config(), images)
    rot = run(quiet_config(p_rot90=1.0, p_hflip=0.5), images)
    assert torch.equal(rot.views[:, 0], dihedral(plain.views[:, 0], rot.k[:, 0], rot.flip[:, 0]))


def test_asinh_maps_unit_interval_onto_itself_and_lifts_faint_emission():
    x = torch.linspace(0, 1, 101).reshape(1, 1, 1, 101).repeat(2, 1, 1, 1)
    y = asinh_stretch(x, torch.tensor([10.0, 10.0]), torch.tensor([True, False]))
    assert y[0, 0, 0, 0] == 0 and torch.isclose(y[0, 0, 0, -1], torch.tensor(1.0))
    assert (y[0].diff(dim=-1) > 0).all() and (y[0, 0, 0, 1:-1] > x[0, 0, 0, 1:-1]).all()
    assert torch.equal(y[1], x[1])


def test_banding_changes_only_band_rows_and_columns_by_their_offset():
    x = torch.full((2, 1, 10, 10), 0.5)
    vertical = torch.tensor([[False], [True]])
    start, width = torch.tensor([[3], [6]]), torch.tensor([[2], [3]])
    offset = torch.tensor([[0.2], [-0.25]])
    y = banding(x, vertical, start, width, offset) - x
    assert torch.allclose(y[0, 0, 3:5], torch.full((2, 10), 0.2)) and (y[0, 0, :3] == 0).all() and (y[0, 0,
        5:] == 0).all()
    assert torch.allclose(y[1, 0, :, 6:9], torch.full((10, 3), -0.25)) and (y[1, 0, :, :6] == 0).all() and (y[1, 0, :,
        9:] == 0).all()


def test_banding_count_per_view_follows_table3(images):
    """Contrastive: the wide view has B = 0 bands, the additional view B = 3."""
    base = run(quiet_config(), images, "contrastive").views
    band = run(quiet_config(p_banding=1.0), images, "contrastive").views
    assert torch.equal(band[:, 0], base[:, 0])
    assert ((band[:, 1] - base[:, 1]).abs().flatten(1).amax(1) > 0).all()


def test_flux_scales_pixels_below_threshold_and_keeps_the_rest():
    x = torch.rand(4, 2, 12, 12)
    factor = torch.tensor([0.7, 0.8, 0.9, 0.5])
    y = flux_perturbation(x, factor, torch.tensor([True, True, True, False]), k=0.3)
    t = flux_threshold(x, 0.3)
    below = x < t
    f = factor[:, None, None, None].expand_as(x)
    assert torch.allclose(y[:3][below[:3]], (x * f)[:3][below[:3]])
    assert torch.equal(y[:3][~below[:3]], x[:3][~below[:3]])
    assert torch.equal(y[3], x[3])
    # T = mean + 0.3 std of each view and channel
    assert torch.allclose(t[1, 1, 0, 0], x[1, 1].mean() + 0.3 * x[1, 1].std())


def test_regime_none_gives_plain_crops(images):
    import dataclasses

    paper = quiet_config()
    plain = run(dataclasses.replace(paper, regime="none", mild=quiet_config(p_noise=1.0, p_asinh=1.0).mild), images)
    assert torch.equal(plain.views, run(paper, images).views)
    assert plain.applied == {}


def test_noise_has_the_configured_sigma():
    flat = torch.full((16, 1, 64, 64), 0.5)
    cfg = quiet_config(size=64, p_noise=1.0)
    out = run(cfg, flat).views
    assert abs((out - 0.5).std().item() - cfg.mild.noise_sigma) < 0.002
