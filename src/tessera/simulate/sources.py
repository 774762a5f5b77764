"""Radio source models shared by the mosaics and the labeled cutouts.

A source is a set of elliptical Gaussian components of the *intrinsic* sky (Jy per pixel, before the restoring
beam), given relative to its host galaxy in pixels. Components are rendered analytically on a small local window,
normalized so each component carries exactly its flux (a Gaussian narrower than a pixel would otherwise lose or
gain flux by sampling), and the sky is convolved with the restoring beam once, afterwards.

Geometry convention (FITS images, north up, east left since CDELT1 < 0): pixel ``x`` is the column, ``y`` the
row, both 0-based; a position angle (PA) is measured from north (+y) through east (-x), so the unit vector of
PA ``t`` is ``(-sin t, cos t)`` in (x, y).

Morphologies (Fanaroff & Riley 1974; Rudnick & Owen 1976 for tailed sources):
- Compact: a point source or a barely resolved Gaussian (most of the radio sky at survey depth).
- FRI: core-brightened; a bright core and two-sided jets whose surface brightness fades and which flare outward.
- FRII: edge-brightened; a faint core and two lobes whose brightest parts are compact hotspots at the outer ends.
- Bent: tailed FRI-like sources in a cluster wind; wide-angle tails (WAT, jets leave opposite and bend the same
  way into a U/V) and narrow-angle tails (NAT, both tails swept back into a narrow V behind a bright head).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.signal import fftconvolve

FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))
MIN_SIGMA_PX = 0.35  # narrower components are unresolved; sampling them this narrow keeps them point-like
COLUMNS = ("dx", "dy", "flux", "sigma_major", "sigma_minor", "pa")  # one row per component; pa in radians


@dataclass
class Source:
    """One radio source. ``components: (K, 6)`` rows ``COLUMNS`` (offsets from the host in pixels, Jy, px, rad)."""

    label: str  # FRI, FRII, Compact, Bent
    subclass: str  # e.g. WAT / NAT for Bent, else the label
    x: float  # host position, pixels (0-based column)
    y: float  # host position, pixels (0-based row)
    flux_jy: float  # integrated flux density (sum of the components)
    size_px: float  # largest angular size (compact: intrinsic FWHM major axis)
    pa_deg: float  # position angle of the source axis (tails: the direction the tails point), east of north
    components: np.ndarray

    def scaled(self, flux_jy: float) -> Source:
        """The same source with its components rescaled to a total of ``flux_jy``."""
        comps = self.components.copy()
        comps[:, 2] *= flux_jy / comps[:, 2].sum()
        return Source(self.label, self.subclass, self.x, self.y, flux_jy, self.size_px, self.pa_deg, comps)

    def moved(self, x: float, y: float) -> Source:
        return Source(self.label, self.subclass, x, y, self.flux_jy, self.size_px, self.pa_deg, self.components)

    def extent(self) -> tuple[float, float, float, float]:
        """Bounding box of the component centres relative to the host: (xmin, xmax, ymin, ymax) pixels."""
        dx, dy = self.components[:, 0], self.components[:, 1]
        return float(dx.min()), float(dx.max()), float(dy.min()), float(dy.max())


# --------------------------------------------------------------------------------------------- beam and rendering


def beam_sigmas_px(major_arcsec: float, minor_arcsec: float, pixel_scale_arcsec: float) -> tuple[float, float]:
    """Restoring beam Gaussian sigmas (major, minor) in pixels from FWHMs in arcsec."""
    return major_arcsec / pixel_scale_arcsec * FWHM_TO_SIGMA, minor_arcsec / pixel_scale_arcsec * FWHM_TO_SIGMA


def beam_kernel(sigma_major: float, sigma_minor: float, pa_deg: float) -> np.ndarray:
    """Restoring beam on pixels, peak 1, so a point source of S Jy becomes a peak of S Jy/beam. -> (k, k), k odd."""
    half = int(math.ceil(5.0 * sigma_major))
    coords = np.arange(-half, half + 1, dtype=np.float64)
    dx, dy = np.meshgrid(coords, coords)
    return _elliptical_gaussian(dx, dy, sigma_major, sigma_minor, math.radians(pa_deg))


def beam_area_px(sigma_major: float, sigma_minor: float) -> float:
    """Beam solid angle in pixels (2 pi sigma_maj sigma_min): Jy/beam x pixels / area = Jy."""
    return 2.0 * math.pi * sigma_major * sigma_minor


def _elliptical_gaussian(dx: np.ndarray, dy: np.ndarray, sa: float, sb: float, pa: float) -> np.ndarray:
    """exp(-(a^2/sa^2 + b^2/sb^2)/2) with a along PA ``pa`` (rad, east of north = towards -x) and b across it."""
    ux, uy = -math.sin(pa), math.cos(pa)
    along = dx * ux + dy * uy
    across = dx * uy - dy * ux
    return np.exp(-0.5 * ((along / sa) ** 2 + (across / sb) ** 2))


def add_component(sky: np.ndarray, x: float, y: float, flux: float, sa: float, sb: float, pa: float) -> None:
    """Add one Gaussian carrying ``flux`` Jy centred at pixel (x, y) into ``sky: (H, W)``, in place.

    Evaluated on a local window of +-4.5 sigma only; normalized on the full window, so the part falling outside
    ``sky`` is lost (as for a source at the edge of a real image)."""
    sa, sb = max(sa, MIN_SIGMA_PX), max(sb, MIN_SIGMA_PX)
    half = int(math.ceil(4.5 * max(sa, sb))) + 1
    ix, iy = int(round(x)), int(round(y))
    xs = np.arange(ix - half, ix + half + 1)
    ys = np.arange(iy - half, iy + half + 1)
    g = _elliptical_gaussian(xs[None, :] - x, ys[:, None] - y, sa, sb, pa)
    g *= flux / g.sum()
    h, w = sky.shape
    x0, x1 = max(0, xs[0]), min(w, xs[-1] + 1)
    y0, y1 = max(0, ys[0]), min(h, ys[-1] + 1)
    if x0 >= x1 or y0 >= y1:
        return
    sky[y0:y1, x0:x1] += g[y0 - ys[0] : y1 - ys[0], x0 - xs[0] : x1 - xs[0]]


def render_source(sky: np.ndarray, source: Source, offset: tuple[float, float] = (0.0, 0.0)) -> None:
    """Add all components of ``source`` into ``sky: (H, W)`` (Jy/pixel); ``offset`` shifts the canvas origin."""
    ox, oy = offset
    for dx, dy, flux, sa, sb, pa in source.components:
        add_component(sky, source.x + dx + ox, source.y + dy + oy, flux, sa, sb, pa)


def source_peak(source: Source, kernel: np.ndarray) -> float:
    """Peak (Jy/beam) of the source alone after the restoring beam: rendered on its own stamp and convolved.

    ``kernel: (k, k)`` is :func:`beam_kernel`. Exact truth for the catalogue, free of noise and neighbours."""
    xmin, xmax, ymin, ymax = source.extent()
    margin = int(math.ceil(4.5 * max(source.components[:, 3].max(), MIN_SIGMA_PX))) + kernel.shape[0] // 2 + 2
    fx, fy = source.x % 1.0, source.y % 1.0  # keep the sub-pixel phase of the real position
    ox, oy = margin - math.floor(xmin), margin - math.floor(ymin)
    w = int(math.ceil(xmax - xmin)) + 2 * margin + 2
    h = int(math.ceil(ymax - ymin)) + 2 * margin + 2
    stamp = np.zeros((h, w))
    render_source(stamp, source.moved(fx, fy), offset=(ox, oy))
    return float(fftconvolve(stamp, kernel, mode="same").max())


def compact_peak(source: Source, sigma_major: float, sigma_minor: float, beam_pa_deg: float) -> float:
    """Analytic peak (Jy/beam) of a one-component source: Gaussian * Gaussian beam (peak 1).

    With covariances Cs (source) and Cb (beam): peak = S sqrt(det Cb / det(Cs + Cb))."""
    _, _, flux, sa, sb, pa = source.components[0]
    cov_b = _covariance(sigma_major, sigma_minor, math.radians(beam_pa_deg))
    cov_s = _covariance(max(sa, MIN_SIGMA_PX), max(sb, MIN_SIGMA_PX), pa)
    return float(flux * math.sqrt(np.linalg.det(cov_b) / np.linalg.det(cov_s + cov_b)))


def _covariance(sa: float, sb: float, pa: float) -> np.ndarray:
    u = np.array([-math.sin(pa), math.cos(pa)])
    v = np.array([math.cos(pa), math.sin(pa)])
    return sa**2 * np.outer(u, u) + sb**2 * np.outer(v, v)


# --------------------------------------------------------------------------------------------- populations


def power_law_fluxes(rng: np.random.Generator, n: int, alpha: float, s_min: float, s_max: float) -> np.ndarray:
    """``n`` flux densities with dN/dS ~ S^-alpha on [s_min, s_max], by inverting the CDF. -> (n,)"""
    u = rng.random(n)
    if s_max <= s_min:
        return np.full(n, s_min)
    if abs(alpha - 1.0) < 1e-9:
        return s_min * (s_max / s_min) ** u
    a = 1.0 - alpha
    return (s_min**a + u * (s_max**a - s_min**a)) ** (1.0 / a)


def log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


# --------------------------------------------------------------------------------------------- morphologies
# Every model builds its components in a local frame (source axis along +y, offsets in pixels), with total
# flux 1, then :func:`_finish` rescales the layout to the requested largest angular size and rotates it to PA.


def _chain(s: np.ndarray, t: np.ndarray, weights: np.ndarray, width: np.ndarray, spacing: float) -> np.ndarray:
    """Components along a path: positions (t, s) local (t across, s along the axis), flux weights, widths.

    The along-path sigma is at least the spacing, so the chain reads as continuous emission, not beads."""
    ds = np.gradient(s) if len(s) > 1 else np.zeros(1)
    dt = np.gradient(t) if len(t) > 1 else np.zeros(1)
    # Local PA of the path: direction (dt, ds) in (x, y); PA = atan2(-dx, dy).
    pa = np.arctan2(-dt, ds)
    along = np.maximum(width * 0.8, spacing)
    return np.stack([t, s, weights, along, width, pa], axis=1)


def _jet(rng, length: float, beam_sigma: float, side: int, fade: float, flare: float, curl: float) -> np.ndarray:
    """An FRI-like jet from near the core to ``length`` px along ``side`` (+1/-1): fading surface brightness and
    flaring width. ``curl`` bends it; both jets of a source bend point-symmetrically (an S or Z shape, as jet
    precession makes), never to the same side: a mirror-symmetric (C/U) bend is what ram pressure does to a tailed
    source (Rudnick & Owen 1976), i.e. the Bent class."""
    spacing = max(0.6 * beam_sigma, 1.0)
    n = max(6, int(length / spacing))
    s = np.linspace(1.5 * beam_sigma, length, n)
    frac = s / length
    t = curl * length * frac**2
    width = 0.4 + flare * length * frac
    weights = np.exp(-frac / fade) * (0.85 + 0.3 * rng.random(n))
    return _chain(side * s, side * t, weights, width, spacing)


def fri_components(rng: np.random.Generator, beam_sigma: float) -> np.ndarray:
    """FRI in a unit-scale layout (LAS ~ 100 px): bright core, two fading, flaring jets (core-brightened)."""
    length = 50.0
    core_frac = rng.uniform(0.15, 0.4)
    asym = rng.uniform(0.5, 1.0)  # Doppler boosting makes one jet brighter
    curl = rng.normal(0.0, 0.08)  # mild S-shaped curvature (point-symmetric, see _jet)
    fade, flare = rng.uniform(0.3, 0.7), rng.uniform(0.06, 0.16)
    # S or its mirror image Z. (This draw once chose an S or a C shape; an FRI is never C-shaped now, and keeping
    # the draw keeps every other cutout of a seed as it was, so earlier measurements stay comparable.)
    curl *= 1.0 if rng.random() < 0.5 else -1.0
    jets = []
    for side, share in ((1, 1.0), (-1, asym)):
        jet = _jet(rng, length * rng.uniform(0.85, 1.0), beam_sigma, side, fade, flare, curl)
        jet[:, 2] *= share * (1.0 - core_frac) / (1.0 + asym) / jet[:, 2].sum()
        jets.append(jet)
    core = np.array([[0.0, 0.0, core_frac, 0.3, 0.3, 0.0]])
    return np.concatenate([core, *jets])


def frii_components(rng: np.random.Generator, beam_sigma: float) -> np.ndarray:
    """FRII in a unit-scale layout: faint core, two lobes brightening outward, compact hotspots at the ends."""
    core_frac = rng.uniform(0.005, 0.06)
    asym = rng.uniform(0.6, 1.0)
    parts = [np.array([[0.0, 0.0, core_frac, 0.3, 0.3, 0.0]])]
    for side, share in ((1, 1.0), (-1, asym)):
        arm = 50.0 * rng.uniform(0.8, 1.0)
        tilt = math.radians(rng.normal(0.0, 4.0))  # lobes are rarely exactly collinear
        lobe_flux = share * (1.0 - core_frac) / (1.0 + asym)
        hot_frac = rng.uniform(0.2, 0.45)
        # Lobe body: blobs from mid-arm to the end, brighter outward, wide, slightly irregular.
        n = max(8, int(arm * 0.6 / max(0.6 * beam_sigma, 1.0)))
        s = np.linspace(arm * rng.uniform(0.3, 0.55), arm * 0.95, n)
        frac = s / arm
        width = arm * rng.uniform(0.07, 0.14) * (1.3 - 0.5 * frac) + 0.5
        t = rng.normal(0.0, 0.03 * arm, n)
        weights = frac**2 * (0.7 + 0.6 * rng.random(n))
        lobe = _chain(s, t, weights, width, max(0.6 * beam_sigma, 1.0))
        lobe[:, 2] *= (1.0 - hot_frac) * lobe_flux / lobe[:, 2].sum()
        hotspot = np.array([[rng.normal(0, 0.01 * arm), arm * rng.uniform(0.95, 1.02), hot_frac * lobe_flux,
                             rng.uniform(0.3, 0.9) * beam_sigma, rng.uniform(0.2, 0.6) * beam_sigma, 0.0]])
        comps = np.concatenate([lobe, hotspot])
        if rng.random() < 0.3:  # a faint jet feeding the hotspot
            js = np.linspace(1.5 * beam_sigma, arm * 0.9, max(6, int(arm / 2)))
            jet = _chain(js, np.zeros_like(js), np.ones_like(js), np.full_like(js, 0.5), 1.0)
            jet[:, 2] *= 0.03 * lobe_flux / jet[:, 2].sum()
            comps[:, 2] *= 0.97
            comps = np.concatenate([comps, jet])
        parts.append(_rotate(_flip(comps, side), tilt))
    return np.concatenate(parts)


# Opening angle of a tailed source: the angle at the host between the directions to the two tail ends. Owen &
# Rudnick (1976) call a source a narrow-angle tail (NAT) below ~90 deg, a wide-angle tail (WAT) above, and catalogues
# of tailed sources keep only clearly bent ones (WATCAT, Missaglia et al. 2019; Pal & Kumari 2022): a WAT opened to
# 160-180 deg is a straight FRI in a survey image. Half-opening angles (deg) per tail, drawn uniformly:
WAT_HALF_OPENING_DEG = (45.0, 70.0)  # opening 90-140 deg: a wide C/U
NAT_HALF_OPENING_DEG = (6.0, 30.0)  # opening 12-60 deg: a narrow V behind a bright head
WAT_BEND_DEG = (40.0, 90.0)  # jet-to-tail bend: jets leave near-perpendicular to the tails, then turn
NAT_BEND_DEG = (0.0, 15.0)


def _tail(rng, length: float, beam_sigma: float, half_opening: float, bend: float, fade: float, flare: float,
          n: int) -> np.ndarray:
    """One tail in the local frame (tails point along +y), turning by ``bend`` rad towards +y along its length,
    rotated so the direction from the host to its end is ``half_opening`` rad from +y (towards +x). -> (n, 6)"""
    u = np.linspace(0.0, 1.0, n)
    heading = bend * (1.0 - u**1.5)  # angle from the final direction, towards +x; the bend sharpens downstream
    step = length / n
    t = np.concatenate([[0.0], np.cumsum(np.sin(heading) * step)[:-1]]) + math.sin(bend) * 1.5 * beam_sigma
    s = np.concatenate([[0.0], np.cumsum(np.cos(heading) * step)[:-1]]) + math.cos(bend) * 1.5 * beam_sigma
    # Rotating the whole tail about the host changes every heading by the same angle, so this sets the chord exactly.
    turn = half_opening - math.atan2(t[-1], s[-1])
    c, s_ = math.cos(turn), math.sin(turn)
    t, s = t * c + s * s_, -t * s_ + s * c
    weights = np.exp(-u / fade) * (0.85 + 0.3 * rng.random(n))
    width = 0.4 + flare * length * u
    spacing = max(0.6 * beam_sigma, 1.0)
    return np.stack([t, s, weights, np.maximum(width * 0.8, spacing), width, -(heading + turn)], axis=1)


def bent_components(rng: np.random.Generator, beam_sigma: float) -> tuple[np.ndarray, str]:
    """Tailed source in a unit-scale layout, tails pointing along +y: wide-angle (WAT) or narrow-angle (NAT), with
    the opening angles above (both tails swept to the same side by the cluster wind: a C, U or V, never an S)."""
    subclass = "WAT" if rng.random() < 0.5 else "NAT"
    core_frac = rng.uniform(0.1, 0.3) if subclass == "WAT" else rng.uniform(0.2, 0.45)
    opening, bends = ((WAT_HALF_OPENING_DEG, WAT_BEND_DEG) if subclass == "WAT"
                      else (NAT_HALF_OPENING_DEG, NAT_BEND_DEG))
    length = 60.0
    n = max(10, int(length / max(0.6 * beam_sigma, 1.0)))
    fade, flare = rng.uniform(0.25, 0.5), rng.uniform(0.05, 0.14)
    parts = [np.array([[0.0, 0.0, core_frac, 0.3, 0.3, 0.0]])]
    for side in (1, -1):
        half, bend = math.radians(rng.uniform(*opening)), math.radians(rng.uniform(*bends))
        comps = _tail(rng, length * rng.uniform(0.8, 1.0), beam_sigma, half, bend, fade, flare, n)
        comps[:, 0] *= side  # the mirror image for the other tail (its local PA mirrors too)
        comps[:, 5] *= side
        comps[:, 2] *= 0.5 * (1.0 - core_frac) / comps[:, 2].sum() * rng.uniform(0.7, 1.0)
        parts.append(comps)
    comps = np.concatenate(parts)
    comps[1:, 2] *= (1.0 - core_frac) / comps[1:, 2].sum()
    return comps, subclass


def _flip(comps: np.ndarray, side: int) -> np.ndarray:
    out = comps.copy()
    if side < 0:
        out[:, 0] *= -1
        out[:, 1] *= -1
    return out


def _rotate(comps: np.ndarray, pa: float) -> np.ndarray:
    """Rotate local (t, s) offsets and component PAs by ``pa`` radians (east of north: +y towards -x)."""
    out = comps.copy()
    c, s_ = math.cos(pa), math.sin(pa)
    t, s = comps[:, 0], comps[:, 1]
    # s-axis (north) maps to (-sin pa, cos pa); t-axis (x) maps to (cos pa, sin pa).
    out[:, 0] = t * c - s * s_
    out[:, 1] = t * s_ + s * c
    out[:, 5] = comps[:, 5] + pa
    return out


def largest_angular_size(comps: np.ndarray) -> float:
    """Largest separation between component centres, pixels."""
    xy = comps[:, :2]
    d = xy[:, None, :] - xy[None, :, :]
    return float(np.sqrt((d**2).sum(-1)).max())


def _finish(comps: np.ndarray, las_px: float, pa_deg: float) -> np.ndarray:
    """Rescale a unit layout to largest angular size ``las_px`` (positions and widths), then rotate to PA."""
    out = comps.copy()
    scale = las_px / max(largest_angular_size(comps), 1e-9)
    out[:, [0, 1, 3, 4]] *= scale
    return _rotate(out, math.radians(pa_deg))


def make_extended(
    rng: np.random.Generator, label: str, x: float, y: float, flux_jy: float, las_px: float, beam_sigma_px: float
) -> Source:
    """An FRI, FRII or Bent source of total ``flux_jy`` and largest angular size ``las_px`` at a random PA."""
    pa_deg = float(rng.uniform(0.0, 360.0))
    # Widths in the unit layout are set against a beam scaled to that layout, so the look does not depend on LAS.
    unit_beam = beam_sigma_px * 100.0 / las_px
    if label == "FRI":
        comps, subclass = fri_components(rng, unit_beam), "FRI"
    elif label == "FRII":
        comps, subclass = frii_components(rng, unit_beam), "FRII"
    elif label == "Bent":
        comps, subclass = bent_components(rng, unit_beam)
    else:
        raise ValueError(f"unknown extended class {label!r}; expected FRI, FRII or Bent")
    comps = _finish(comps, las_px, pa_deg)
    comps[:, 2] *= flux_jy / comps[:, 2].sum()
    return Source(label, subclass, x, y, flux_jy, las_px, pa_deg, comps)


def make_compact(rng: np.random.Generator, x: float, y: float, flux_jy: float, max_fwhm_px: float) -> Source:
    """A point-like source: intrinsic elliptical Gaussian of FWHM up to ``max_fwhm_px`` (0 = unresolved)."""
    fwhm = float(rng.uniform(0.0, max_fwhm_px))
    ratio = float(rng.uniform(0.4, 1.0))
    pa_deg = float(rng.uniform(0.0, 180.0))
    sa = fwhm * FWHM_TO_SIGMA
    comps = np.array([[0.0, 0.0, flux_jy, sa, sa * ratio, math.radians(pa_deg)]])
    return Source("Compact", "Compact", x, y, flux_jy, fwhm, pa_deg, comps)
