"""Typed configuration of the radio-aware view recipe (seed 000 §6.1, §6.1.1 Table 3, §7.1, §7.1.1).

Every probability and range of the recipe is a field here, with seed 000's value as its default, so an
ablation is a ``key=value`` override (e.g. ``views.mild.p_asinh=0``, ``views.regime=none``).
Ranges are ``(low, high)`` tuples sampled uniformly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from tessera.errors import ConfigError



def anchor_strategies() -> tuple[str, ...]:
    """The registered anchor strategies (``tessera.views.anchors.ANCHOR_REGISTRY``): validation reads the
    registry itself, so a strategy added with ``register_anchor`` is accepted by the config too."""
    from tessera.views.anchors import ANCHOR_REGISTRY  # lazy: anchors.py imports this module

    return tuple(ANCHOR_REGISTRY)


def _check_range(name: str, rng: tuple[float, float], lo: float | None = None, hi: float | None = None) -> None:
    """A (low, high) range must be ordered and, where given, inside [lo, hi]."""
    a, b = rng
    if a > b:
        raise ConfigError(f"config key '{name}': range {list(rng)} has low > high")
    if lo is not None and a < lo:
        raise ConfigError(f"config key '{name}': {a} is below {lo}")
    if hi is not None and b > hi:
        raise ConfigError(f"config key '{name}': {b} is above {hi}")


def _key(prefix: str, name: str) -> str:
    """The full dotted key of ``name`` inside the section ``prefix`` ("" at the top level)."""
    return f"{prefix}.{name}" if prefix else name


def _check_prob(name: str, p: float) -> None:
    if not 0.0 <= p <= 1.0:
        raise ConfigError(f"config key '{name}': probability {p} is not in [0, 1]")


@dataclass
class AnchorConfig:
    """ROI anchor proposal (seed 000 §6.1 item 2). ``strategy`` picks a registered proposer (anchors.py)."""

    strategy: str = "radio"  # "radio" (seed 000's recipe), "center", "uniform" (non-radio data: line-art, lensing)
    z_grid: int = 16  # (i) tile grid searched for high-significance peaks
    z_top_k: int = 3  # K_z
    z_min_separation: int = 2  # minimum separation of peaks, in tiles (Chebyshev distance)
    z_floor: float = 2.5  # minimum z-score of a peak
    mean_grid: int = 8  # (ii) tile grid scored by mean absolute intensity
    mean_top_k: int = 5  # K_mean
    p_mean: float = 0.5  # probability of choosing the mean-based candidate set
    peak_fraction: float = 0.8  # keep anchors whose local peak exceeds this fraction of the global peak

    def validate(self, prefix: str = "views.anchors") -> None:
        known = anchor_strategies()
        if self.strategy not in known:
            raise ConfigError(f"config key '{_key(prefix, 'strategy')}': {self.strategy!r} is not one of "
                              f"{', '.join(known)}")
        for name in ("z_grid", "z_top_k", "mean_grid", "mean_top_k"):
            if getattr(self, name) < 1:
                raise ConfigError(f"config key '{_key(prefix, name)}': must be >= 1")
        if self.z_min_separation < 1:
            raise ConfigError(f"config key '{_key(prefix, 'z_min_separation')}': must be >= 1 tile")
        _check_prob(_key(prefix, "p_mean"), self.p_mean)
        if not 0.0 <= self.peak_fraction <= 1.0:
            raise ConfigError(f"config key '{_key(prefix, 'peak_fraction')}': {self.peak_fraction} is not in [0, 1]")


@dataclass
class AugmentConfig:
    """One augmentation regime (a column of seed 000 Table 3). Operators run in this field order."""

    # Dihedral: k x 90 deg with k uniform in {0,1,2,3} (applied with p_rot90), then a horizontal flip.
    p_rot90: float = 1.0
    p_hflip: float = 0.5
    # Asinh contrast stretch x -> asinh(alpha x) / asinh(alpha): compresses bright structure, lifts faint emission.
    p_asinh: float = 0.35
    asinh_alpha: tuple[float, float] = (3.0, 12.0)
    # Affine jitter: translation up to +-translate of the view side, isotropic scale in [1 - d, 1 + d].
    p_affine: float = 1.0
    translate: float = 0.03
    scale_jitter: float = 0.05
    # Additive pixelwise Gaussian noise.
    p_noise: float = 1.0
    noise_sigma: float = 0.02
    # Banding: `bands` random horizontal or vertical bands, each with additive offset in band_offset.
    p_banding: float = 1.0
    bands: int = 2
    band_offset: tuple[float, float] = (-0.3, 0.3)
    band_width: tuple[float, float] = (0.02, 0.08)  # fraction of the view side (not given in the seed)
    # Flux/background perturbation: pixels below T = mean + flux_threshold_k * std (per view and channel)
    # are multiplied by a factor in flux_factor.
    p_flux: float = 0.5
    flux_threshold_k: float = 0.3
    flux_factor: tuple[float, float] = (0.7, 0.95)

    def validate(self, prefix: str = "") -> None:
        """Probabilities in [0, 1] and ordered ranges; ``prefix`` is the section's dotted key (``views.mild``)."""
        for name in ("p_rot90", "p_hflip", "p_asinh", "p_affine", "p_noise", "p_banding", "p_flux"):
            _check_prob(_key(prefix, name), getattr(self, name))
        _check_range(_key(prefix, "asinh_alpha"), self.asinh_alpha, lo=1e-6)
        if not 0.0 <= self.translate < 0.5:
            raise ConfigError(f"config key '{_key(prefix, 'translate')}': {self.translate} is not in [0, 0.5)")
        if not 0.0 <= self.scale_jitter < 1.0:
            raise ConfigError(f"config key '{_key(prefix, 'scale_jitter')}': {self.scale_jitter} is not in [0, 1)")
        if self.noise_sigma < 0:
            raise ConfigError(f"config key '{_key(prefix, 'noise_sigma')}': must be >= 0")
        if self.bands < 0:
            raise ConfigError(f"config key '{_key(prefix, 'bands')}': must be >= 0")
        _check_range(_key(prefix, "band_offset"), self.band_offset)
        _check_range(_key(prefix, "band_width"), self.band_width, lo=0.0, hi=1.0)
        _check_range(_key(prefix, "flux_factor"), self.flux_factor, lo=0.0)


def _strong() -> AugmentConfig:
    """Seed 000 Table 3, "Strong" column (the additional contrastive view)."""
    return AugmentConfig(
        p_asinh=0.50,
        asinh_alpha=(3.0, 20.0),
        translate=0.05,
        scale_jitter=0.08,
        noise_sigma=0.04,
        bands=3,
        flux_factor=(0.5, 0.9),
    )


def _global_crop_regime() -> AugmentConfig:
    """Global crops of the self-distillation recipes: the BYOL radio recipe of Slijepcevic et al. 2024
    (``inigoval/byol``, notes/small-scale-ssl.md): large crops, rotations and flips always, mild contrast and
    brightness changes (here asinh contrast and the flux/background factor), light noise, no banding."""
    return AugmentConfig(
        p_rot90=1.0, p_hflip=0.5, p_asinh=0.3, asinh_alpha=(2.0, 6.0), p_affine=0.0, p_noise=0.5,
        noise_sigma=0.01, p_banding=0.0, bands=0, p_flux=0.3, flux_factor=(0.85, 1.0),
    )


def _local_crop_regime() -> AugmentConfig:
    """Local crops: the same operators, a little stronger (DINO's locals get the harsher photometric draw)."""
    return AugmentConfig(
        p_rot90=1.0, p_hflip=0.5, p_asinh=0.4, asinh_alpha=(2.0, 10.0), p_affine=0.0, p_noise=0.5,
        noise_sigma=0.02, p_banding=0.0, bands=0, p_flux=0.4, flux_factor=(0.7, 1.0),
    )


@dataclass
class LineartConfig:
    """The ``lineart`` regime (views/lineart.py; issue 20, seed 002 §4): no blur, no contrast remapping, no
    dihedral transforms by default (sheets have a canonical orientation), small scale jitter, 1-pixel line-
    thickness jitter, a small ink gain and light noise."""

    p_rot180: float = 0.0  # a half turn keeps text upright-or-inverted only; an option, off by default
    translate: float = 0.03
    scale_jitter: float = 0.08
    p_thicken: float = 0.25  # 1-pixel dilation
    p_thin: float = 0.25  # 1-pixel erosion that keeps 1-pixel lines
    p_noise: float = 0.5
    noise_sigma: float = 0.02
    ink_gain: tuple[float, float] = (0.8, 1.0)  # ink intensity scale (toner, scan contrast)
    max_supersample: int = 8  # crops are sampled at up to this many times the view size, then max-pooled

    def validate(self, prefix: str | None = None) -> None:
        if prefix is None:
            return
        for name in ("p_rot180", "p_thicken", "p_thin", "p_noise"):
            _check_prob(f"{prefix}.{name}", getattr(self, name))
        if self.p_thicken + self.p_thin > 1.0:
            raise ConfigError(f"config key '{prefix}.p_thin': p_thicken + p_thin must be <= 1")
        if not 0.0 <= self.translate < 0.5:
            raise ConfigError(f"config key '{prefix}.translate': {self.translate} is not in [0, 0.5)")
        if not 0.0 <= self.scale_jitter < 1.0:
            raise ConfigError(f"config key '{prefix}.scale_jitter': {self.scale_jitter} is not in [0, 1)")
        if self.noise_sigma < 0:
            raise ConfigError(f"config key '{prefix}.noise_sigma': must be >= 0")
        _check_range(f"{prefix}.ink_gain", self.ink_gain, lo=0.0, hi=1.0)
        if self.max_supersample < 1:
            raise ConfigError(f"config key '{prefix}.max_supersample': must be >= 1")


@dataclass
class MultiCropConfig:
    """Multi-crop views of the self-distillation objectives (views/multicrop.py): ``global_crops`` crops of
    ``global_scale`` and ``local_crops`` crops of ``local_scale`` of the anchored ROI (area fractions), globals at
    the model's input size, locals at ``local_size`` (None = half of it). Defaults: 2 globals at 0.7-1.0 and
    8 locals at 0.2-0.5 (notes/small-scale-ssl.md; AstroCLIP uses the same counts). ImageNet DINO uses
    0.4-1.0 / 0.05-0.4 of the whole image; radio cutouts are mostly empty sky, hence crops of the ROI.
    ``full_rotation``: rotate every crop by a uniform angle (sources have no orientation on the sky)."""

    global_crops: int = 2
    global_scale: tuple[float, float] = (0.70, 1.00)
    local_crops: int = 8
    local_scale: tuple[float, float] = (0.20, 0.50)
    local_size: int | None = None
    full_rotation: bool = True
    global_regime: AugmentConfig = field(default_factory=_global_crop_regime)
    local_regime: AugmentConfig = field(default_factory=_local_crop_regime)

    def validate(self, prefix: str = "views.multicrop") -> None:
        if self.global_crops < 1:
            raise ConfigError(f"config key '{_key(prefix, 'global_crops')}': must be >= 1, got {self.global_crops}")
        if self.local_crops < 0:
            raise ConfigError(f"config key '{_key(prefix, 'local_crops')}': must be >= 0, got {self.local_crops}")
        _check_range(_key(prefix, "global_scale"), self.global_scale, lo=1e-6, hi=1.0)
        _check_range(_key(prefix, "local_scale"), self.local_scale, lo=1e-6, hi=1.0)
        if self.local_size is not None and self.local_size < 1:
            raise ConfigError(f"config key '{_key(prefix, 'local_size')}': must be >= 1 or null, got {self.local_size}")
        self.global_regime.validate(_key(prefix, "global_regime"))
        self.local_regime.validate(_key(prefix, "local_regime"))

    def resolved_local_size(self, output_size: int) -> int:
        return self.local_size if self.local_size is not None else max(1, output_size // 2)


@dataclass
class NonEmptyConfig:
    """The non-empty criterion (seed 000 §7.1.1 names it but does not define it; this is ours).

    A view is non-empty when at least ``min_fraction`` of its pixels exceed ``threshold`` in some channel.
    It is evaluated on the [0, 1] geometric view before photometric augmentation, so additive noise or
    banding cannot make blank sky look informative. The defaults are loose on purpose: FIRST cutouts of
    compact sources have only ~0.03% of pixels above 0.1, and rejection must not bias against them.
    The same criterion drives the bounded resampling of uninformative ROI crops (§6.1).
    """

    threshold: float = 0.1
    min_fraction: float = 0.0002

    def validate(self, prefix: str = "views.nonempty") -> None:
        if not 0.0 <= self.threshold < 1.0:
            raise ConfigError(f"config key '{_key(prefix, 'threshold')}': {self.threshold} is not in [0, 1)")
        if not 0.0 <= self.min_fraction <= 1.0:
            raise ConfigError(f"config key '{_key(prefix, 'min_fraction')}': {self.min_fraction} is not in [0, 1]")


@dataclass
class ViewConfig:
    """The full view recipe: geometry (seed 000 §6.1, §7.1) and augmentations (Table 3)."""

    output_size: int | None = 224  # S: views are resized to the model input size (None in a pretrain config: follow it)
    # "none": plain resized crops (no augmentation), for ablations; "lineart": construction sheets (lineart below)
    regime: Literal["paper", "none", "lineart"] = "paper"
    interpolation: Literal["bilinear", "bicubic", "nearest"] = "bilinear"
    anchors: AnchorConfig = field(default_factory=AnchorConfig)
    # Reconstruction branch (§6.1)
    p_global: float = 0.2  # wide-field crop from the full cutout
    global_scale: tuple[float, float] = (0.70, 1.00)
    roi_side: tuple[float, float] = (0.55, 0.80)  # ROI side as a fraction of the cutout side
    recon_scale: tuple[float, float] = (0.50, 0.70)  # "global-tight" crop inside the ROI (area fraction)
    crop_attempts: int = 5  # bounded resampling of an uninformative ROI crop
    # Contrastive branch (§7.1): V = 2 views in fixed order (wide, additional)
    wide_scale: tuple[float, float] = (0.50, 0.70)
    extra_scale: tuple[float, float] = (0.20, 0.35)
    min_ioa: float = 0.70  # IoA(additional, wide) >= min_ioa (Eq. 7)
    ioa_attempts: int = 10  # rejection draws before placing the additional view inside the wide view
    contrastive_wide_bands: int = 0  # Table 3: banding disabled (B = 0) on the contrastive wide view
    mild: AugmentConfig = field(default_factory=AugmentConfig)
    strong: AugmentConfig = field(default_factory=_strong)
    nonempty: NonEmptyConfig = field(default_factory=NonEmptyConfig)
    multicrop: MultiCropConfig = field(default_factory=MultiCropConfig)  # self-distillation crop groups
    lineart: LineartConfig = field(default_factory=LineartConfig)  # the "lineart" regime's operators
    max_attempts: int = 5  # dataset-level resampling of a different cutout (§7.1.1)

    def validate(self, prefix: str = "views") -> None:
        """Every key of the view recipe; errors carry the full dotted key (``views.output_size``; ``prefix`` is
        "" for a ViewConfig resolved on its own)."""
        k = lambda name: _key(prefix, name)  # noqa: E731  (a one-letter key formatter keeps the checks on one line)
        if self.output_size is not None and self.output_size < 1:  # None: filled in from the model later
            raise ConfigError(f"config key '{k('output_size')}': must be >= 1")
        self.anchors.validate(k("anchors"))
        _check_prob(k("p_global"), self.p_global)
        for name in ("global_scale", "roi_side", "recon_scale", "wide_scale", "extra_scale"):
            _check_range(k(name), getattr(self, name), lo=1e-6, hi=1.0)
        if not 0.0 <= self.min_ioa <= 1.0:
            raise ConfigError(f"config key '{k('min_ioa')}': {self.min_ioa} is not in [0, 1]")
        if self.extra_scale[1] > self.wide_scale[0] and self.min_ioa > 0:
            # The fallback places the additional view inside the wide view; it must fit there.
            raise ConfigError(
                f"config key '{k('extra_scale')}': its upper end must not exceed wide_scale's lower end "
                "(the additional view has to fit inside the wide view)"
            )
        for name in ("crop_attempts", "ioa_attempts"):
            if getattr(self, name) < 1:
                raise ConfigError(f"config key '{k(name)}': must be >= 1")
        if self.max_attempts < 0:
            raise ConfigError(f"config key '{k('max_attempts')}': must be >= 0")
        if self.contrastive_wide_bands < 0:
            raise ConfigError(f"config key '{k('contrastive_wide_bands')}': must be >= 0")
        for name in ("mild", "strong", "nonempty", "multicrop", "lineart"):
            getattr(self, name).validate(k(name))
