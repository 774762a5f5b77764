"""Configs of ``tessera simulate radio`` and ``tessera simulate morphology``.

Both share the instrument (:class:`InstrumentConfig`: pixel scale, restoring beam, frequency, thermal noise),
so mosaics and labeled cutouts carry the same physics. Defaults describe a MeerKAT/FIRST-like L-band
continuum survey: 1.5"/pixel, a 7.5" restoring beam (5 pixels FWHM), 20 uJy/beam rms at 1.4 GHz.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from tessera.errors import ConfigError

MORPHOLOGY_CLASSES = ("FRI", "FRII", "Compact", "Bent")
EXTENDED_CLASSES = ("FRI", "FRII", "Bent")
# Images smaller than this many restoring-beam FWHMs cannot hold an extended source with its beam margin.
MIN_SIZE_IN_BEAMS = 8
MIN_SIZE_PX = 32


def _check_positive(obj, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if not (value > 0 and math.isfinite(value)):
            raise ConfigError(f"config key '{name}': must be > 0, got {value!r}")


def _check_probability(obj, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"config key '{name}': must be a probability in [0, 1], got {value!r}")


def _check_range(obj, name: str, low_bound: float = 0.0) -> None:
    low, high = getattr(obj, name)
    if not (low_bound < low <= high):
        raise ConfigError(
            f"config key '{name}': expected [low, high] with {low_bound} < low <= high, got {[low, high]}"
        )


@dataclass
class InstrumentConfig:
    """Pixel grid, restoring beam, observing frequency and thermal noise shared by all simulations."""

    seed: int = 0
    size: int = 256  # image side in pixels
    pixel_scale_arcsec: float = 1.5
    beam_fwhm_arcsec: float = 7.5  # restoring beam major-axis FWHM (BMAJ)
    beam_minor_arcsec: float | None = None  # BMIN; None = circular beam
    beam_pa_deg: float = 0.0  # BPA, degrees east of north
    frequency_hz: float = 1.4e9
    bandwidth_hz: float = 1.0e8  # CDELT of the FREQ axis when a cube axis is written
    noise_rms_jy: float = 2.0e-5  # thermal noise rms of the restored image, Jy/beam
    projection: Literal["SIN", "TAN"] = "SIN"

    @property
    def beam_minor(self) -> float:
        return self.beam_fwhm_arcsec if self.beam_minor_arcsec is None else self.beam_minor_arcsec

    @property
    def beam_fwhm_px(self) -> float:
        return self.beam_fwhm_arcsec / self.pixel_scale_arcsec

    @property
    def min_size(self) -> int:
        """Smallest image side (pixels) that holds a source plus a beam margin."""
        return max(MIN_SIZE_PX, math.ceil(MIN_SIZE_IN_BEAMS * self.beam_fwhm_px))

    def validate(self) -> None:
        _check_positive(self, "pixel_scale_arcsec", "beam_fwhm_arcsec", "frequency_hz", "bandwidth_hz", "noise_rms_jy")
        if self.beam_minor_arcsec is not None and not (0 < self.beam_minor_arcsec <= self.beam_fwhm_arcsec):
            raise ConfigError(
                f"config key 'beam_minor_arcsec': must be in (0, beam_fwhm_arcsec={self.beam_fwhm_arcsec}], "
                f"got {self.beam_minor_arcsec}"
            )
        if self.beam_fwhm_px < 1.5:
            raise ConfigError(
                f"config key 'beam_fwhm_arcsec': the beam ({self.beam_fwhm_px:.2f} px) must span at least 1.5 pixels "
                f"(pixel_scale_arcsec={self.pixel_scale_arcsec}); an undersampled beam is not a radio image"
            )
        if self.size < self.min_size:
            raise ConfigError(
                f"config key 'size': {self.size} px is too small; the minimum is {self.min_size} px "
                f"({MIN_SIZE_IN_BEAMS} beams of {self.beam_fwhm_px:.1f} px, at least {MIN_SIZE_PX})"
            )
        if self.seed < 0:
            raise ConfigError(f"config key 'seed': must be >= 0, got {self.seed}")


@dataclass
class SimulateRadioConfig(InstrumentConfig):
    """Survey-like mosaics: compact population, extended radio galaxies, artefacts, and their catalogue."""

    size: int = 1024
    mosaics: int = 1
    field_ra_deg: float | None = None  # field centre; None = random per mosaic
    field_dec_deg: float | None = None
    # Compact (unresolved or barely resolved) population, dN/dS ~ S^-alpha between the flux limits.
    compact_density_deg2: float = 2500.0
    flux_alpha: float = 1.8
    flux_min_jy: float = 5.0e-5
    flux_max_jy: float = 5.0e-2
    compact_max_fwhm_beams: float = 0.6  # intrinsic FWHM of compact sources, up to this many beams
    # Extended radio galaxies (FRI, FRII, bent tails).
    extended_density_deg2: float = 150.0
    extended_flux_alpha: float = 1.6
    extended_flux_min_jy: float = 1.0e-3
    extended_flux_max_jy: float = 1.0
    extended_size_arcsec: tuple[float, float] = (30.0, 300.0)  # largest angular size, log-uniform
    extended_mix: dict[str, float] = field(default_factory=lambda: {"FRI": 0.35, "FRII": 0.4, "Bent": 0.25})
    # Artefacts.
    nan_border_prob: float = 0.8  # irregular coverage edge with NaN outside
    sidelobe_snr: float = 1000.0  # sources with peak above this many sigma get sidelobe stripes
    sidelobe_level: float = 0.01  # stripe amplitude as a fraction of the source peak
    cube_axis_prob: float = 0.25  # write a degenerate FREQ (NAXIS=3) or FREQ+STOKES (NAXIS=4) axis
    cube_naxis: int = 0  # 0 = random choice of 3 or 4 when a cube axis is written

    def validate(self) -> None:
        super().validate()
        if self.mosaics <= 0:
            raise ConfigError(f"config key 'mosaics': must be a positive integer, got {self.mosaics}")
        if self.compact_density_deg2 < 0 or self.extended_density_deg2 < 0:
            raise ConfigError("config keys 'compact_density_deg2'/'extended_density_deg2': must be >= 0")
        _check_positive(self, "flux_alpha", "flux_min_jy", "extended_flux_alpha", "extended_flux_min_jy")
        _check_positive(self, "compact_max_fwhm_beams", "sidelobe_snr")
        if self.flux_max_jy < self.flux_min_jy:
            raise ConfigError(f"config key 'flux_max_jy': {self.flux_max_jy} is below flux_min_jy={self.flux_min_jy}")
        if self.extended_flux_max_jy < self.extended_flux_min_jy:
            raise ConfigError(
                f"config key 'extended_flux_max_jy': {self.extended_flux_max_jy} is below "
                f"extended_flux_min_jy={self.extended_flux_min_jy}"
            )
        _check_range(self, "extended_size_arcsec")
        unknown = set(self.extended_mix) - set(EXTENDED_CLASSES)
        if unknown or not self.extended_mix:
            raise ConfigError(f"config key 'extended_mix': classes must be among {EXTENDED_CLASSES}, got "
                              f"{sorted(unknown)}")
        if any(v < 0 for v in self.extended_mix.values()) or sum(self.extended_mix.values()) <= 0:
            raise ConfigError("config key 'extended_mix': weights must be >= 0 with a positive sum")
        _check_probability(self, "nan_border_prob", "cube_axis_prob", "sidelobe_level")
        if self.cube_naxis not in (0, 3, 4):
            raise ConfigError(f"config key 'cube_naxis': must be 0 (random), 3 or 4, got {self.cube_naxis}")
        if self.field_dec_deg is not None and not -90 < self.field_dec_deg < 90:
            raise ConfigError(f"config key 'field_dec_deg': must be in (-90, 90), got {self.field_dec_deg}")


@dataclass
class SimulateMorphologyConfig(InstrumentConfig):
    """Labeled single-source cutouts (FRI, FRII, Compact, Bent) with varied SNR, size, angle, noise and offset."""

    size: int = 128
    per_class: int = 100
    classes: tuple[str, ...] = MORPHOLOGY_CLASSES
    # Peak SNR, log-uniform. A labeled morphology set is drawn from sources bright enough to classify: visual
    # FRI/FRII catalogues (FR-DEEP, MiraBest, FRICAT) keep objects whose extended emission is seen above 3 sigma over
    # many beams, i.e. peak SNR of tens to thousands. Below ~30 an FRI's fading jets and an FRII's lobes sink into the
    # noise and the galaxy reads as its core or hotspots alone (a 'Compact'); the old floor of 8 did exactly that.
    snr_range: tuple[float, float] = (30.0, 3000.0)
    noise_factor_range: tuple[float, float] = (0.5, 2.0)  # noise rms = noise_rms_jy x this, log-uniform
    # Largest angular size / cutout side (extended classes). A labeled cutout is cut around its galaxy (FR-DEEP and
    # MiraBest centre 150 px stamps on sources that fill much of them), and the FR class is only defined for a
    # source resolved into many beams (the criterion is where the brightness peaks along the extent). 0.5 of a
    # 96 px cutout is ~10 beams of 5 px, still ~3.5 patches of 8 px after the cpu model's resize to 64 px; the old
    # floor of 0.3 left ~6 beams, of which the part above the noise was often 2-3 beams: no morphology left.
    extent_fraction_range: tuple[float, float] = (0.5, 0.85)
    max_shift_fraction: float = 0.06  # off-centre shift of the host, fraction of the side
    contaminants_mean: float = 1.0  # Poisson mean number of unrelated faint compact sources

    def validate(self) -> None:
        super().validate()
        if self.per_class <= 0:
            raise ConfigError(f"config key 'per_class': must be a positive integer, got {self.per_class}")
        bad = [c for c in self.classes if c not in MORPHOLOGY_CLASSES]
        if bad or not self.classes or len(set(self.classes)) != len(self.classes):
            raise ConfigError(f"config key 'classes': distinct names among {MORPHOLOGY_CLASSES} expected, got "
                              f"{list(self.classes)}")
        _check_range(self, "snr_range")
        _check_range(self, "noise_factor_range")
        _check_range(self, "extent_fraction_range")
        if self.extent_fraction_range[1] > 0.95:
            raise ConfigError("config key 'extent_fraction_range': the upper bound must be <= 0.95 so sources fit")
        if not 0 <= self.max_shift_fraction <= 0.25:
            raise ConfigError(f"config key 'max_shift_fraction': must be in [0, 0.25], got {self.max_shift_fraction}")
        if self.contaminants_mean < 0:
            raise ConfigError(f"config key 'contaminants_mean': must be >= 0, got {self.contaminants_mean}")


# ---------------------------------------------------------------- strong lensing (seed 001, issue 16)
LENSING_CLASSES = ("no_sub", "cdm", "axion")  # DeepLense's three dark-matter scenarios (seed 001 §3)


@dataclass
class SimulateLensingConfig:
    """Galaxy-galaxy strong lenses (``tessera simulate lensing``): SIE + external shear, elliptical Sérsic source,
    Gaussian PSF, Gaussian background noise; substructure by class (see :mod:`tessera.simulate.lensing`).

    Angles are arcseconds, masses solar masses. The macro-lens and source ranges are drawn identically for every
    class, so the classes differ only in substructure. The substructure masses are the knobs of difficulty
    (``sub_mass_range``, ``sub_mean``, ``vortex_mass_range``, with ``snr_range``).

    Calibration (issue 16, benchmarks/lensing_calibration.py; measured numbers in the README): with the first
    defaults (6 subhalos of 1e9-1e11, vortex 1e10-1e11) the noiseless cdm - no_sub difference on matched macro
    lenses was max |delta| 0.09 of the peak (median; 0.03 at the 10th percentile), about 2-5 noise sigma per pixel,
    and a from-scratch ViT stayed at chance. The substructure is now heavier: 15 subhalos of 3e9-3e11 and a
    vortex of 3e10-3e11 (median max |delta| 0.45 and 0.48 of the peak). The mean truncated subhalo mass in
    all, ~1.2e11, is ~20 % of the 6.3e11 inside a 1.3" Einstein ring, far above the ~1 % of observed lenses: a
    few thousand training images (a CPU budget) need a signal that DeepLense's 10^4-10^5 images do not. The
    vortex has 32 clumps (was 16) so that the heavier line stays a line.

    Heavier substructure alone did not make the classes learnable: what hid it was the macro lens's variety
    (a from-scratch CNN, 1000 per class, 12 epochs: macro AUC 0.62 with the first macro ranges; 0.75 with the
    source near the caustic centre; 0.76 with SNR 50-150 or subhalos of 1e10-3e11 on top; 0.80 with rounder lenses
    and less shear; 0.87 with all of today's ranges). Arcs from an offset source, lens ellipticity and shear
    all make brightness variations along the ring that look like substructure, so the macro ranges are
    narrow (near-complete Einstein rings): the task is the perturbation of an almost round ring. Evaluate and
    ingest these images with ``stretch=minmax`` (ZScale saturates the ring and erases the flux perturbations).
    """

    seed: int = 0
    per_class: int = 100
    size: int = 64  # HR image side, pixels (seed 001: 64x64)
    classes: tuple[str, ...] = LENSING_CLASSES
    pixel_scale_arcsec: float = 0.1
    psf_fwhm_arcsec: float = 0.2
    z_lens: float = 0.5
    z_source: float = 1.0
    # Macro lens: SIE (Einstein radius, axis ratio, position angle uniform) + external shear (magnitude uniform).
    theta_e_range: tuple[float, float] = (1.1, 1.5)
    axis_ratio_range: tuple[float, float] = (0.9, 1.0)
    shear_range: tuple[float, float] = (0.0, 0.01)
    lens_offset_arcsec: float = 0.1  # lens centre uniform in +-this
    # Source: elliptical Sérsic near the caustic centre (offset uniform in a disc of this radius), so near-complete
    # Einstein rings form (arcs from larger offsets mimic substructure: see the calibration above).
    source_offset_arcsec: float = 0.05
    source_radius_range: tuple[float, float] = (0.1, 0.3)  # Sérsic half-light radius
    source_n_range: tuple[float, float] = (1.0, 2.5)
    source_axis_ratio_range: tuple[float, float] = (0.6, 1.0)
    snr_range: tuple[float, float] = (20.0, 60.0)  # peak (noiseless) / noise sigma, log-uniform
    # CDM: Poisson number of truncated-NFW subhalos, dN/dm ~ m^slope between the mass limits, placed uniformly in
    # an annulus around the Einstein ring (only subhalos near the images perturb them: seed 001 §3, DeepLense).
    sub_mean: float = 15.0
    sub_mass_range: tuple[float, float] = (3.0e9, 3.0e11)
    sub_mass_slope: float = -1.9
    sub_concentration: float = 15.0
    sub_truncation: float = 5.0  # r_trunc = this x Rs
    sub_annulus: tuple[float, float] = (0.5, 1.5)  # in units of theta_E
    # Axion-like vortex: a line of mass (DeepLense's vortex) = a chain of equal TNFW clumps along a straight
    # segment whose centre lies near the Einstein ring, at a random orientation.
    vortex_mass_range: tuple[float, float] = (3.0e10, 3.0e11)  # total mass of the line, log-uniform
    vortex_length_range: tuple[float, float] = (0.5, 1.2)  # in units of theta_E
    vortex_clumps: int = 32  # 16 before the heavier vortex: its clumps (Rs ~ m^(1/3)) then blurred the line
    vortex_radius_range: tuple[float, float] = (0.8, 1.2)  # centre distance from the lens, units of theta_E
    lr_factor: int = 4  # HR side / LR side: 64 -> 16 (seed 001's super-resolution pairs)

    def validate(self) -> None:
        if self.seed < 0:
            raise ConfigError(f"config key 'seed': must be >= 0, got {self.seed}")
        if self.per_class <= 0:
            raise ConfigError(f"config key 'per_class': must be a positive integer, got {self.per_class}")
        bad = [c for c in self.classes if c not in LENSING_CLASSES]
        if bad or not self.classes or len(set(self.classes)) != len(self.classes):
            raise ConfigError(
                f"config key 'classes': distinct names among {LENSING_CLASSES} expected, got {list(self.classes)}"
            )
        if self.size < 16:
            raise ConfigError(f"config key 'size': must be >= 16 px, got {self.size}")
        if self.lr_factor < 1 or self.size % self.lr_factor:
            raise ConfigError(f"config key 'lr_factor': must be >= 1 and divide size={self.size}, got {self.lr_factor}")
        _check_positive(self, "pixel_scale_arcsec", "psf_fwhm_arcsec", "sub_concentration", "sub_truncation")
        if not 0 < self.z_lens < self.z_source:
            raise ConfigError(
                f"config keys 'z_lens'/'z_source': need 0 < z_lens < z_source, got {self.z_lens}, {self.z_source}"
            )
        for name in ("theta_e_range", "source_radius_range", "source_n_range", "snr_range", "sub_mass_range",
                     "sub_annulus", "vortex_mass_range", "vortex_length_range", "vortex_radius_range"):
            _check_range(self, name)
        for name in ("axis_ratio_range", "source_axis_ratio_range"):
            _check_range(self, name)
            if getattr(self, name)[1] > 1.0:
                raise ConfigError(f"config key '{name}': axis ratios must be <= 1, got {list(getattr(self, name))}")
        low, high = self.shear_range
        if not 0.0 <= low <= high < 0.5:
            raise ConfigError(
                f"config key 'shear_range': expected [low, high] with 0 <= low <= high < 0.5, got {[low, high]}"
            )
        if self.lens_offset_arcsec < 0 or self.source_offset_arcsec < 0:
            raise ConfigError("config keys 'lens_offset_arcsec'/'source_offset_arcsec': must be >= 0")
        if self.sub_mean < 0:
            raise ConfigError(f"config key 'sub_mean': must be >= 0, got {self.sub_mean}")
        if self.vortex_clumps < 2:
            raise ConfigError(f"config key 'vortex_clumps': a line needs >= 2 clumps, got {self.vortex_clumps}")
        half_field = self.size * self.pixel_scale_arcsec / 2
        if self.theta_e_range[1] * 1.3 > half_field:
            raise ConfigError(
                f"config key 'theta_e_range': rings up to {self.theta_e_range[1]}\" do not fit the "
                f"{2 * half_field:.2f}\" field (size x pixel_scale_arcsec); keep theta_E below {half_field / 1.3:.2f}\""
            )
