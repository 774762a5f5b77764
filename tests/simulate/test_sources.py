"""Source models and rendering primitives: flux conservation, beam orientation, analytic vs numeric peaks."""

from __future__ import annotations

import numpy as np
import pytest

from tessera.simulate.sources import (
    add_component,
    beam_kernel,
    compact_peak,
    largest_angular_size,
    make_compact,
    make_extended,
    power_law_fluxes,
    source_peak,
)


def _second_moments(img: np.ndarray) -> tuple[float, float]:
    yy, xx = np.mgrid[0 : img.shape[0], 0 : img.shape[1]]
    w = img / img.sum()
    cx, cy = (w * xx).sum(), (w * yy).sum()
    return float((w * (xx - cx) ** 2).sum()), float((w * (yy - cy) ** 2).sum())


def test_beam_position_angle_is_east_of_north():
    """BPA = 0: major axis north-south (along y); BPA = 90: east-west (along x), as in FITS headers."""
    vx, vy = _second_moments(beam_kernel(4.0, 2.0, 0.0))
    assert vy == pytest.approx(16.0, rel=0.02) and vx == pytest.approx(4.0, rel=0.02)
    vx, vy = _second_moments(beam_kernel(4.0, 2.0, 90.0))
    assert vx == pytest.approx(16.0, rel=0.02) and vy == pytest.approx(4.0, rel=0.02)
    # PA 45 east of north points up and to the left (-x, +y): x and y anti-correlate.
    k = beam_kernel(4.0, 2.0, 45.0)
    yy, xx = np.mgrid[0 : k.shape[0], 0 : k.shape[1]] - k.shape[0] // 2
    assert (k * xx * yy).sum() < 0
    assert k.max() == 1.0


@pytest.mark.parametrize("sigma", [0.1, 0.5, 3.0])
def test_component_carries_its_flux_even_when_narrower_than_a_pixel(sigma):
    sky = np.zeros((64, 64))
    add_component(sky, 30.37, 20.81, 2.5, sigma, sigma * 0.5, 0.3)
    assert sky.sum() == pytest.approx(2.5, rel=1e-9)
    iy, ix = np.unravel_index(sky.argmax(), sky.shape)
    assert abs(ix - 30.37) <= 1 and abs(iy - 20.81) <= 1


def test_component_at_edge_loses_the_outside_part():
    sky = np.zeros((32, 32))
    add_component(sky, 0.0, 16.0, 1.0, 2.0, 2.0, 0.0)
    assert 0.4 < sky.sum() < 0.65


def test_compact_peak_analytic_matches_rendered():
    rng = np.random.default_rng(0)
    kernel = beam_kernel(2.5, 2.0, 20.0)
    for _ in range(5):
        src = make_compact(rng, 10.0, 10.0, 1.0, 6.0)
        assert compact_peak(src, 2.5, 2.0, 20.0) == pytest.approx(source_peak(src, kernel), rel=0.03)


def test_power_law_bounds_and_slope():
    fluxes = power_law_fluxes(np.random.default_rng(1), 20000, 2.5, 1e-3, 1e3)
    assert fluxes.min() >= 1e-3 and fluxes.max() <= 1e3
    assert 1 + len(fluxes) / np.log(fluxes / 1e-3).sum() == pytest.approx(2.5, abs=0.05)


@pytest.mark.parametrize("label", ["FRI", "FRII", "Bent"])
def test_extended_models_have_requested_flux_and_size(label):
    src = make_extended(np.random.default_rng(2), label, 50.0, 60.0, 0.3, 80.0, 2.0)
    assert src.components[:, 2].sum() == pytest.approx(0.3)
    assert (src.components[:, 2] > 0).all()
    assert largest_angular_size(src.components) == pytest.approx(80.0, rel=1e-6)
    assert src.label == label and (src.subclass in {"WAT", "NAT"}) == (label == "Bent")


def _tail_end_angles(comps: np.ndarray) -> tuple[float, float]:
    """Directions (deg from +y towards +x) from the host to the far end of each tail of a local-frame Bent layout:
    row 0 is the core, then the +x tail, then the -x tail (equal lengths)."""
    n = (len(comps) - 1) // 2
    first, second = comps[1 : 1 + n], comps[1 + n :]
    return tuple(float(np.degrees(np.arctan2(t[-1, 0], t[-1, 1]))) for t in (first, second))


def test_tailed_sources_have_the_opening_angles_of_their_subclass():
    """Owen & Rudnick 1976: NAT below 90 deg, WAT above; both tails on the same side (the wind's), never straight."""
    from tessera.simulate.sources import (
        NAT_HALF_OPENING_DEG,
        WAT_HALF_OPENING_DEG,
        bent_components,
    )

    seen = set()
    for i in range(30):
        comps, subclass = bent_components(np.random.default_rng([5, i]), 3.0)
        a, b = _tail_end_angles(comps)
        low, high = WAT_HALF_OPENING_DEG if subclass == "WAT" else NAT_HALF_OPENING_DEG
        assert a == pytest.approx(-b, abs=2 * (high - low)) and a > 0 > b  # a V/U opening towards +y
        assert 2 * low - 1e-6 <= a - b <= 2 * high + 1e-6, (subclass, a - b)
        assert (a - b > 90) == (subclass == "WAT")
        seen.add(subclass)
    assert seen == {"WAT", "NAT"}


def test_fri_jets_bend_point_symmetrically_never_into_a_c():
    """A C (both jets bent to one side) is the Bent class's ram-pressure signature; an FRI curves into an S or Z."""
    from tessera.simulate.sources import fri_components

    for i in range(20):
        comps = fri_components(np.random.default_rng([6, i]), 3.0)[1:]  # drop the core
        up, down = comps[comps[:, 1] > 0], comps[comps[:, 1] < 0]
        far_up, far_down = up[np.argmax(up[:, 1])], down[np.argmin(down[:, 1])]
        assert far_up[0] * far_down[0] <= 0  # the far ends lie on opposite sides of the axis
