"""IngestConfig: how inputs become cutouts (tile size, stride, minimum size, workers, channels), or spectra."""

from __future__ import annotations

import dataclasses

from tessera.errors import ConfigError

KINDS = ("auto", "image", "spectrum")


@dataclasses.dataclass
class IngestConfig:
    """Settings of ``tessera ingest`` (seed 000 §3.1: 512x512 non-overlapping tiles, partial edge tiles dropped)."""

    tile: int = 512  # tile side in pixels
    stride: int | None = None  # None = tile (non-overlapping); smaller values overlap
    min_tile: int = 64  # planes smaller than a tile are kept whole when both sides are >= this, else skipped
    # (min_tile > tile is allowed and means: never keep a small plane)
    # Catalogue cutouts centred on their source (FIRST, FR-DEEP, MiraBest): each kept cutout is cut to its
    # central N x N after normalization, the same cut as the evaluation key `center_crop` (README: at 64 px a
    # whole 300-px FIRST field shows the median galaxy ~16 px across). None = keep the whole tile.
    center_crop: int | None = None
    workers: int = 1  # processes reading inputs in parallel (the parent writes the journal)
    source: str | None = None  # survey/source name for the manifest; None = the input argument's name
    to_gray: bool = False  # convert RGB images to one luma channel (default: keep channels as they are)
    shard_size: int = 256  # most cutouts per shard file (bounds a worker's memory: 256 x 512^2 x 2 B = 128 MiB)
    # Largest fraction of blanked (NaN/Inf) pixels a tile may have and still be kept (ZScale on its finite
    # pixels, blanks -> 0). 0 = seed 000 §3.1's rule: any non-finite pixel drops the tile.
    max_nan_fraction: float = 0.0
    # Line-art sheets (issue 20, corpus/pdf.py). PDF pages are rendered in grayscale at `dpi`.
    dpi: float = 150.0
    # Ink polarity: None = auto (PDF pages inverted so ink is bright like radio emission, other files as they
    # are); true/false force it for every input.
    invert: bool | None = None
    # Drop tiles whose fraction of ink pixels (>= half of full scale after inversion) is below this
    # ("low_ink"); 0 = off. Blank margins of a sheet are otherwise most of its tiles.
    min_ink_fraction: float = 0.0
    # "auto": linear full-scale values for PDF pages and inverted planes (ink intensity is absolute on a sheet;
    # ZScale would stretch anti-aliasing grey to full ink), ZScale otherwise; "zscale" / "linear" force it;
    # "minmax": each tile's finite range linearly to [0, 1] (strong lenses, issue 16: normalize.minmax_normalize).
    stretch: str = "auto"
    # What the store holds (DESIGN §3.2): "image" cutouts (C, H, W), "spectrum" 1-D spectra (C, L) on one grid
    # (corpus/spectra.py, corpus/spectrum_ingest.py), or "auto": the existing store's kind, else "spectrum" when
    # every input is a CSV table (images never come as CSV), else "image".
    kind: str = "auto"
    # Spectra only: channels L of the store's grid (None: the NPY inputs' length, else the longest table's sample
    # count), the grid's ends in the inputs' x unit (MHz or Angstrom; None: the span of the tables), and a
    # catalogue CSV (path,ra_deg,dec_deg; paths relative to it) giving the spectra their sky positions.
    length: int | None = None
    grid_min: float | None = None
    grid_max: float | None = None
    positions: str | None = None

    def validate(self) -> None:
        if self.tile < 1:
            raise ConfigError(f"config key 'tile': must be >= 1, got {self.tile}")
        if self.stride is not None and self.stride < 1:
            raise ConfigError(f"config key 'stride': must be >= 1, got {self.stride}")
        if self.min_tile < 1:
            raise ConfigError(f"config key 'min_tile': must be >= 1, got {self.min_tile}")
        if self.center_crop is not None and self.center_crop < 8:
            raise ConfigError(f"config key 'center_crop': must be >= 8 pixels or null, got {self.center_crop}")
        if self.workers < 1:
            raise ConfigError(f"config key 'workers': must be >= 1, got {self.workers}")
        if self.shard_size < 1:
            raise ConfigError(f"config key 'shard_size': must be >= 1, got {self.shard_size}")
        if not 0.0 <= self.max_nan_fraction < 1.0:
            raise ConfigError(f"config key 'max_nan_fraction': must be in [0, 1), got {self.max_nan_fraction}")
        if not 0.0 < self.dpi <= 2400.0:
            raise ConfigError(f"config key 'dpi': must be in (0, 2400], got {self.dpi}")
        if not 0.0 <= self.min_ink_fraction <= 1.0:
            raise ConfigError(f"config key 'min_ink_fraction': must be in [0, 1], got {self.min_ink_fraction}")
        if self.stretch not in ("auto", "zscale", "linear", "minmax"):
            raise ConfigError(f"config key 'stretch': {self.stretch!r} is not one of auto, zscale, linear, minmax")
        self._validate_spectrum()

    def _validate_spectrum(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"config key 'kind': {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.length is not None and self.length < 2:
            raise ConfigError(f"config key 'length': must be >= 2 channels, got {self.length}")
        if self.grid_min is not None and self.grid_max is not None and not self.grid_max > self.grid_min:
            raise ConfigError(f"config key 'grid_max': must be > grid_min ({self.grid_min}), got {self.grid_max}")

    @property
    def effective_stride(self) -> int:
        return self.stride if self.stride is not None else self.tile

    def content_settings(self) -> dict:
        """The settings that change what a store contains; a store can only be extended with the same ones."""
        return {
            "tile": self.tile,
            "stride": self.effective_stride,
            "min_tile": self.min_tile,
            "to_gray": self.to_gray,
            "max_nan_fraction": self.max_nan_fraction,
            **self._optional_settings(),
            **self._spectrum_settings(),
        }

    def _spectrum_settings(self) -> dict:
        """The spectrum settings, only for a spectrum store: image stores keep their content settings."""
        if self.kind != "spectrum":
            return {}
        return {"kind": self.kind, "length": self.length, "grid_min": self.grid_min, "grid_max": self.grid_max,
                "positions": self.positions}

    def _optional_settings(self) -> dict:
        """The line-art settings and the centre crop, only where they differ from the defaults: stores built
        before they existed keep resuming with the same content settings."""
        defaults = {"dpi": 150.0, "invert": None, "min_ink_fraction": 0.0, "stretch": "auto", "center_crop": None}
        return {k: getattr(self, k) for k, v in defaults.items() if getattr(self, k) != v}
