"""Galaxy-galaxy strong lenses with dark-matter substructure (seed 001, issue 16): ``tessera simulate lensing``.

Images are made with ``lenstronomy`` (the simulator of the DeepLense sets seed 001 trains on): a singular
isothermal ellipsoid (SIE) with external shear lenses an elliptical Sérsic source; the image is convolved with a
Gaussian PSF and gets Gaussian background noise. The three classes differ only in substructure:

- ``no_sub``: the macro lens alone.
- ``cdm``: a Poisson number of truncated-NFW subhalos (lenstronomy ``TNFW``), masses from dN/dm ~ m^slope
  between the configured limits, placed uniformly (in area) in an annulus around the Einstein ring; the NFW
  scale radius and normalization follow from mass and concentration at the lens and source redshifts
  (``LensCosmo.nfw_physical2angle``), truncated at ``sub_truncation`` x Rs (tidal stripping).
- ``axion``: lenstronomy has no vortex profile. DeepLense describes the axion-like (ultralight) dark matter
  substructure as vortices, i.e. lines of mass; we model one vortex as a *chain of equal TNFW clumps evenly
  spaced along a straight segment* (length a fraction of theta_E, random orientation) whose centre lies near the
  Einstein ring. The total mass is drawn log-uniformly, comparable with a CDM population's total, so the classes
  differ in the arrangement and mass function of the substructure rather than in its amount.

Every image is in units of its own noiseless peak (peak = 1); the noise sigma is 1 / SNR. Alongside the
classification image (``<class>/<class>_NNNNN.npy``, noisy, DeepLense's layout of one NPY per image in class
folders) each sample gets a matched super-resolution pair: ``sr/hr/...npy`` the noiseless HR image (in [0, 1])
and ``sr/lr/...npy`` its ``lr_factor`` x ``lr_factor`` block average plus noise at the low-resolution level,
sigma_LR = sigma_HR / lr_factor (the same exposure binned: averaging lr_factor^2 independent pixels divides the
noise by lr_factor), so the bicubic baseline is well defined. ``labels.csv`` holds ``path,label,hr_path,lr_path``
and every lens, source, noise and substructure parameter as numeric columns (``LABEL_COLUMNS``).

Sample i of class k uses the random stream ``(seed, k, i)``, with the macro lens and the source drawn first and
from the same ranges for every class: the classes share one macro-lens distribution, and adding samples never
changes earlier ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from tessera.config import save_config
from tessera.outputs import prepare_output_dir
from tessera.simulate.config import LENSING_CLASSES, SimulateLensingConfig

MACRO_COLUMNS = [
    "theta_e", "lens_q", "lens_phi", "lens_e1", "lens_e2", "lens_x", "lens_y", "shear", "shear_phi",
    "gamma1", "gamma2", "source_x", "source_y", "source_r_sersic", "source_n_sersic", "source_q", "source_phi",
    "source_e1", "source_e2",
]  # fmt: skip
SUB_COLUMNS = [
    "snr", "noise_sigma", "lr_noise_sigma", "n_sub", "sub_mass_total", "sub_mass_max",
    "vortex_mass", "vortex_length", "vortex_angle", "vortex_x", "vortex_y",
]  # fmt: skip
LABEL_COLUMNS = ["path", "label", "hr_path", "lr_path", *MACRO_COLUMNS, *SUB_COLUMNS]
CSV_FLOAT_FORMAT = "%.9g"


@dataclass
class LensSystem:
    """One lens: the macro-lens and substructure profiles (lenstronomy names and kwargs), the source kwargs, and
    the truth that goes into labels.csv (``info``). ``n_macro``: how many leading profiles are the macro lens."""

    label: str
    lens_models: list[str]
    kwargs_lens: list[dict]
    kwargs_source: list[dict]
    n_macro: int
    info: dict = field(default_factory=dict)

    @property
    def sub_models(self) -> list[str]:
        return self.lens_models[self.n_macro :]

    @property
    def sub_kwargs(self) -> list[dict]:
        return self.kwargs_lens[self.n_macro :]


# ---------------------------------------------------------------- parameter draws
def _uniform_disc(rng: np.random.Generator, radius: float) -> tuple[float, float]:
    r, phi = radius * math.sqrt(rng.uniform()), rng.uniform(0, 2 * math.pi)
    return r * math.cos(phi), r * math.sin(phi)


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def draw_macro(rng: np.random.Generator, cfg: SimulateLensingConfig) -> dict:
    """Macro lens (SIE + shear) and source (elliptical Sérsic) parameters, in MACRO_COLUMNS; the same draws, in
    the same order, for every class."""
    from lenstronomy.Util.param_util import phi_q2_ellipticity, shear_polar2cartesian

    p: dict = {"theta_e": float(rng.uniform(*cfg.theta_e_range))}
    p["lens_q"], p["lens_phi"] = float(rng.uniform(*cfg.axis_ratio_range)), float(rng.uniform(0, math.pi))
    p["lens_e1"], p["lens_e2"] = map(float, phi_q2_ellipticity(p["lens_phi"], p["lens_q"]))
    p["lens_x"], p["lens_y"] = map(float, rng.uniform(-cfg.lens_offset_arcsec, cfg.lens_offset_arcsec, 2))
    p["shear"], p["shear_phi"] = float(rng.uniform(*cfg.shear_range)), float(rng.uniform(0, math.pi))
    p["gamma1"], p["gamma2"] = map(float, shear_polar2cartesian(p["shear_phi"], p["shear"]))
    dx, dy = _uniform_disc(rng, cfg.source_offset_arcsec)
    p["source_x"], p["source_y"] = p["lens_x"] + dx, p["lens_y"] + dy
    p["source_r_sersic"] = float(rng.uniform(*cfg.source_radius_range))
    p["source_n_sersic"] = float(rng.uniform(*cfg.source_n_range))
    p["source_q"], p["source_phi"] = float(rng.uniform(*cfg.source_axis_ratio_range)), float(rng.uniform(0, math.pi))
    p["source_e1"], p["source_e2"] = map(float, phi_q2_ellipticity(p["source_phi"], p["source_q"]))
    return p


@lru_cache(maxsize=8)
def _lens_cosmo(z_lens: float, z_source: float):
    from lenstronomy.Cosmo.lens_cosmo import LensCosmo

    return LensCosmo(z_lens=z_lens, z_source=z_source)


def tnfw_kwargs(mass: float, x: float, y: float, cfg: SimulateLensingConfig) -> dict:
    """lenstronomy TNFW kwargs of a subhalo of ``mass`` (M_sun, M200) at (x, y) arcsec: Rs and alpha_Rs from the
    NFW mass and concentration at (z_lens, z_source), truncated at ``sub_truncation`` x Rs."""
    rs, alpha_rs = _lens_cosmo(cfg.z_lens, cfg.z_source).nfw_physical2angle(mass, cfg.sub_concentration)
    rs, alpha_rs = float(rs), float(alpha_rs)
    return {"Rs": rs, "alpha_Rs": alpha_rs, "r_trunc": cfg.sub_truncation * rs, "center_x": x, "center_y": y}


def power_law_masses(rng: np.random.Generator, n: int, low: float, high: float, slope: float) -> np.ndarray:
    """n masses from dN/dm ~ m^slope on [low, high] by inverse-CDF sampling: (n,)."""
    u = rng.uniform(size=n)
    if abs(slope + 1.0) < 1e-9:
        return low * (high / low) ** u
    a = slope + 1.0
    return (low**a + u * (high**a - low**a)) ** (1.0 / a)


def draw_cdm(rng: np.random.Generator, cfg: SimulateLensingConfig, macro: dict) -> tuple[list[dict], dict]:
    """CDM subhalos: (TNFW kwargs list, truth). At least one subhalo, so every ``cdm`` image has substructure."""
    n = max(1, int(rng.poisson(cfg.sub_mean)))
    masses = power_law_masses(rng, n, *cfg.sub_mass_range, cfg.sub_mass_slope)
    lo, hi = (a * macro["theta_e"] for a in cfg.sub_annulus)
    radii = np.sqrt(rng.uniform(lo**2, hi**2, n))  # uniform in area within the annulus
    phis = rng.uniform(0, 2 * math.pi, n)
    kwargs = [
        tnfw_kwargs(float(m), macro["lens_x"] + r * math.cos(f), macro["lens_y"] + r * math.sin(f), cfg)
        for m, r, f in zip(masses, radii, phis)
    ]
    return kwargs, {"n_sub": n, "sub_mass_total": float(masses.sum()), "sub_mass_max": float(masses.max())}


def draw_vortex(rng: np.random.Generator, cfg: SimulateLensingConfig, macro: dict) -> tuple[list[dict], dict]:
    """An axion-like vortex: ``vortex_clumps`` equal TNFW clumps evenly spaced on a segment (see module doc)."""
    theta_e = macro["theta_e"]
    mass = _log_uniform(rng, *cfg.vortex_mass_range)
    length = float(rng.uniform(*cfg.vortex_length_range)) * theta_e
    radius = float(rng.uniform(*cfg.vortex_radius_range)) * theta_e
    where, angle = float(rng.uniform(0, 2 * math.pi)), float(rng.uniform(0, math.pi))
    cx, cy = macro["lens_x"] + radius * math.cos(where), macro["lens_y"] + radius * math.sin(where)
    t = np.linspace(-0.5, 0.5, cfg.vortex_clumps) * length
    xs, ys = cx + t * math.cos(angle), cy + t * math.sin(angle)
    kwargs = [tnfw_kwargs(mass / cfg.vortex_clumps, float(x), float(y), cfg) for x, y in zip(xs, ys)]
    info = {"n_sub": cfg.vortex_clumps, "sub_mass_total": mass, "sub_mass_max": mass / cfg.vortex_clumps,
            "vortex_mass": mass, "vortex_length": length, "vortex_angle": angle, "vortex_x": cx, "vortex_y": cy}
    return kwargs, info


def macro_system(label: str, macro: dict) -> LensSystem:
    """The macro lens and source of ``macro`` (MACRO_COLUMNS) without substructure."""
    kwargs_lens = [
        {"theta_E": macro["theta_e"], "e1": macro["lens_e1"], "e2": macro["lens_e2"],
         "center_x": macro["lens_x"], "center_y": macro["lens_y"]},
        {"gamma1": macro["gamma1"], "gamma2": macro["gamma2"], "ra_0": macro["lens_x"], "dec_0": macro["lens_y"]},
    ]  # fmt: skip
    kwargs_source = [{"amp": 1.0, "R_sersic": macro["source_r_sersic"], "n_sersic": macro["source_n_sersic"],
                      "e1": macro["source_e1"], "e2": macro["source_e2"],
                      "center_x": macro["source_x"], "center_y": macro["source_y"]}]
    return LensSystem(label, ["SIE", "SHEAR"], kwargs_lens, kwargs_source, n_macro=2, info=dict(macro))


def draw_system(label: str, rng: np.random.Generator, cfg: SimulateLensingConfig) -> LensSystem:
    """A lens of class ``label``: macro lens and source (drawn first, class-independent), then its substructure."""
    if label not in LENSING_CLASSES:
        raise ValueError(f"unknown lensing class {label!r}; expected one of {LENSING_CLASSES}")
    system = macro_system(label, draw_macro(rng, cfg))
    empty = {"n_sub": 0, "sub_mass_total": 0.0, "sub_mass_max": 0.0, "vortex_mass": 0.0, "vortex_length": 0.0,
             "vortex_angle": 0.0, "vortex_x": 0.0, "vortex_y": 0.0}
    system.info.update(empty)
    if label == "no_sub":
        return system
    subs, info = (draw_cdm if label == "cdm" else draw_vortex)(rng, cfg, system.info)
    system.lens_models += ["TNFW"] * len(subs)
    system.kwargs_lens += subs
    system.info.update(info)
    return system


# ---------------------------------------------------------------- rendering
def pixel_grid(size: int, pixel_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Angular coordinates (arcsec) of pixel centres, centred on the image: x, y each (size, size); x grows with
    the column index, y with the row index."""
    c = (np.arange(size) - (size - 1) / 2.0) * pixel_scale
    return np.meshgrid(c, c)


def _image_model(system: LensSystem, cfg: SimulateLensingConfig, size: int, pixel_scale: float):
    from lenstronomy.Data.imaging_data import ImageData
    from lenstronomy.Data.psf import PSF
    from lenstronomy.ImSim.image_model import ImageModel
    from lenstronomy.LensModel.lens_model import LensModel
    from lenstronomy.LightModel.light_model import LightModel

    half = (size - 1) / 2.0 * pixel_scale
    data = ImageData(image_data=np.zeros((size, size)), ra_at_xy_0=-half, dec_at_xy_0=-half,
                     transform_pix2angle=np.array([[pixel_scale, 0.0], [0.0, pixel_scale]]))
    psf = PSF(psf_type="GAUSSIAN", fwhm=cfg.psf_fwhm_arcsec, pixel_size=pixel_scale)
    return ImageModel(data, psf, lens_model_class=LensModel(system.lens_models),
                      source_model_class=LightModel(["SERSIC_ELLIPSE"]),
                      kwargs_numerics={"supersampling_factor": 2})


def render_clean(system: LensSystem, cfg: SimulateLensingConfig) -> np.ndarray:
    """Noiseless lensed image, PSF-convolved, scaled to peak 1: (size, size) float64 (row = y, column = x)."""
    model = _image_model(system, cfg, cfg.size, cfg.pixel_scale_arcsec)
    image = np.asarray(model.image(kwargs_lens=system.kwargs_lens, kwargs_source=system.kwargs_source), np.float64)
    peak = float(image.max())
    if not peak > 0:
        raise ValueError(f"a {system.label} lens rendered an empty image (source outside the field?)")
    return np.clip(image / peak, 0.0, None)


def convergence_map(system: LensSystem, cfg: SimulateLensingConfig, substructure_only: bool = False) -> np.ndarray:
    """Convergence kappa on the image's pixel grid: (size, size). ``substructure_only``: the subhalos / vortex alone
    (all zeros for ``no_sub``)."""
    from lenstronomy.LensModel.lens_model import LensModel

    if substructure_only:
        models, kwargs = system.sub_models, system.sub_kwargs
    else:
        models, kwargs = system.lens_models, system.kwargs_lens
    x, y = pixel_grid(cfg.size, cfg.pixel_scale_arcsec)
    if not models:
        return np.zeros_like(x)
    return np.asarray(LensModel(models).kappa(x.ravel(), y.ravel(), kwargs), dtype=np.float64).reshape(x.shape)


def block_average(image: np.ndarray, factor: int) -> np.ndarray:
    """Mean over non-overlapping factor x factor blocks: (H, W) -> (H / factor, W / factor)."""
    h, w = image.shape
    if h % factor or w % factor:
        raise ValueError(f"image {image.shape} is not divisible into {factor}x{factor} blocks")
    return image.reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3))


def substructure_signal(cfg: SimulateLensingConfig, n: int = 50, seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """How strong the substructure is against the noise, on matched macro lenses (the calibration diagnostic).

    For lens j < n, every class is drawn from the same stream ``(seed, j)``: the macro lens and source come first
    (``draw_system``), so the three systems share them exactly and differ only in substructure. Returns, per
    substructure class, ``max_delta`` (n,): max |image - no_sub image| (both noiseless, peak 1, the classifier's
    units) and ``l2_delta`` (n,): ||image - no_sub image||_2. ``l2_delta / sigma`` is the matched-filter SNR of
    the substructure at noise sigma, the best any detector that knew the macro lens could do; a classifier that
    does not know it must tell substructure from macro-lens variety, so needs far more than a few sigma."""
    out: dict[str, dict[str, list[float]]] = {c: {"max_delta": [], "l2_delta": []} for c in LENSING_CLASSES[1:]}
    for j in range(n):
        base = render_clean(draw_system("no_sub", np.random.default_rng([seed, j]), cfg), cfg)
        for label in out:
            delta = render_clean(draw_system(label, np.random.default_rng([seed, j]), cfg), cfg) - base
            out[label]["max_delta"].append(float(np.abs(delta).max()))
            out[label]["l2_delta"].append(float(np.sqrt((delta**2).sum())))
    return {label: {k: np.asarray(v) for k, v in d.items()} for label, d in out.items()}


@dataclass
class LensSample:
    """One simulated sample: ``image`` (size, size) noisy HR; ``hr`` (size, size) noiseless HR in [0, 1];
    ``lr`` (size/f, size/f) block-averaged HR plus LR-level noise; ``info`` the truth (MACRO_COLUMNS + SUB_COLUMNS)."""

    image: np.ndarray
    hr: np.ndarray
    lr: np.ndarray
    info: dict
    system: LensSystem


def render_sample(label: str, rng: np.random.Generator, cfg: SimulateLensingConfig) -> LensSample:
    """Draw and render one lens of class ``label`` with its noise and its LR/HR pair."""
    system = draw_system(label, rng, cfg)
    clean = render_clean(system, cfg)
    snr = _log_uniform(rng, *cfg.snr_range)
    sigma = 1.0 / snr  # the clean peak is 1
    image = clean + rng.standard_normal(clean.shape) * sigma
    lr_sigma = sigma / cfg.lr_factor  # the same exposure binned lr_factor x lr_factor (module docstring)
    lr = block_average(clean, cfg.lr_factor) + rng.standard_normal((cfg.size // cfg.lr_factor,) * 2) * lr_sigma
    system.info.update({"snr": snr, "noise_sigma": sigma, "lr_noise_sigma": lr_sigma})
    return LensSample(image.astype(np.float32), clean.astype(np.float32), lr.astype(np.float32), system.info, system)


def simulate_lensing(cfg: SimulateLensingConfig, out_dir: str | Path, overwrite: bool = False) -> Path:
    """Write ``cfg.per_class`` samples per class (``<class>/``, ``sr/hr/``, ``sr/lr/`` NPY files), ``labels.csv``
    (``LABEL_COLUMNS``, paths relative to it) and ``config.yaml``; return the labels.csv path."""
    cfg.validate()
    out = prepare_output_dir(out_dir, overwrite=overwrite)
    save_config(cfg, out)
    for sub in ("sr/hr", "sr/lr", *cfg.classes):
        (out / sub).mkdir(parents=True)
    rows = []
    for label in cfg.classes:
        k = LENSING_CLASSES.index(label)
        for i in range(cfg.per_class):
            sample = render_sample(label, np.random.default_rng([cfg.seed, k, i]), cfg)
            name = f"{label}_{i:05d}.npy"
            paths = {"path": f"{label}/{name}", "hr_path": f"sr/hr/{name}", "lr_path": f"sr/lr/{name}"}
            for key, arr in (("path", sample.image), ("hr_path", sample.hr), ("lr_path", sample.lr)):
                np.save(out / paths[key], arr)
            rows.append({**paths, "label": label, **sample.info})
    path = out / "labels.csv"
    pd.DataFrame(rows, columns=LABEL_COLUMNS).to_csv(path, index=False, float_format=CSV_FLOAT_FORMAT)
    return path
