"""Reading 1-D spectra (DESIGN §3.1b): NPY arrays, or CSV and FITS tables of flux against frequency or wavelength,
resampled onto one grid per store, with non-finite values marking missing channels.

- ``.npy``: ``(L,)`` or ``(C, L)`` already on the store's grid (NaN = missing channel); no resampling.
- ``.csv`` / ``.fits`` / ``.fit`` / ``.fits.gz`` tables: an x column (frequency: a name starting ``freq``, or
  ``nu``; wavelength: ``wave...``, ``lambda``, ``wl``, or SDSS's ``loglam`` = log10 wavelength), a flux column
  (a name starting ``flux``, or ``fnu``, ``flam``, ``f_nu``, ``f_lambda``, ``s``, ``sflux``), and optionally a
  flag column (``flag``, ``flags``, ``mask``, ``and_mask``, ``bad``: non-zero = flagged) or ``ivar`` (inverse
  variance, <= 0 = flagged, as in SDSS spectra). A CSV of two other columns (or two columns without a header
  line) is read as (x, flux). FITS tables are read from their first table HDU, one row per channel or one row of
  array columns. Column units (FITS ``TUNIT``) are converted to MHz (frequency) or Angstrom (wavelength) when
  present.
- Flagged, non-finite and out-of-range channels become NaN; the encoder and the masked-modelling loss treat NaN as
  missing (:mod:`tessera.models.spectrum`).

Resampling (:func:`resample`): one grid per store, L points spanning all of the store's files (log-spaced when
x > 0), linear interpolation of each file onto it; a grid point is missing when either neighbouring sample of the
file is missing or the point lies outside the file's own range. Every file of a store must use the same x kind
(frequency or wavelength): a mixed store is an error naming the odd file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tessera.errors import TesseraError

TABLE_SUFFIXES = (".csv", ".fits", ".fit", ".fits.gz")
FREQUENCY, WAVELENGTH, UNKNOWN = "frequency", "wavelength", "x"
FLUX_NAMES = ("fnu", "flam", "f_nu", "f_lambda", "s", "sflux")
FLAG_NAMES = ("flag", "flags", "mask", "and_mask", "bad")
CANONICAL_UNIT = {FREQUENCY: "MHz", WAVELENGTH: "Angstrom"}


@dataclass
class SpectrumTable:
    """One file's samples: x (n,) ascending, flux (n,) with NaN at missing channels, the x kind and its column."""

    x: np.ndarray
    flux: np.ndarray
    kind: str
    x_column: str


def suffix(path: Path) -> str:
    name = path.name.lower()
    return ".fits.gz" if name.endswith(".fits.gz") else path.suffix.lower()


def _x_kind(name: str) -> str | None:
    n = name.lower()
    if n.startswith("freq") or n == "nu":
        return FREQUENCY
    if n.startswith("wave") or n in ("lambda", "wl", "loglam"):
        return WAVELENGTH
    return None


def _find(names: list[str], test) -> str | None:
    return next((c for c in names if test(c.lower())), None)


def _pick_columns(path: Path, names: list[str]) -> tuple[str, str, str, str | None]:
    """(x column, x kind, flux column, flag column or None) by name; one-line errors naming file and columns."""
    x_col = _find(names, lambda n: _x_kind(n) is not None)
    flux_col = _find(names, lambda n: n.startswith("flux") or n in FLUX_NAMES)
    flag_col = _find(names, lambda n: n in FLAG_NAMES or n == "ivar")
    if x_col is None and flux_col is None and len(names) == 2 and suffix(path) == ".csv":
        return names[0], UNKNOWN, names[1], None  # the two-column (x, flux) CSV
    if x_col is None:
        raise TesseraError(f"{path}: no frequency or wavelength column (a name starting 'freq' or 'wave', 'nu', "
                           f"'lambda', 'loglam'); columns: {', '.join(names)}")
    if flux_col is None:
        raise TesseraError(f"{path}: no flux column (a name starting 'flux', or one of {', '.join(FLUX_NAMES)}); "
                           f"columns: {', '.join(names)}")
    return x_col, _x_kind(x_col), flux_col, flag_col


def _numeric(path: Path, name: str, values) -> np.ndarray:
    try:
        return np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise TesseraError(f"{path}: column '{name}' is not numeric") from None


def _to_canonical(path: Path, name: str, kind: str, values: np.ndarray, unit) -> np.ndarray:
    """x values in their FITS unit -> MHz or Angstrom; no unit: left as they are."""
    if name.lower() == "loglam":
        values = 10.0**values  # SDSS: log10 of the wavelength in Angstrom
        unit = None
    if unit is None or kind == UNKNOWN or str(unit).strip() == "":
        return values
    import astropy.units as u

    try:
        return (values * u.Unit(str(unit))).to_value(CANONICAL_UNIT[kind], equivalencies=u.spectral())
    except (ValueError, u.UnitsError):
        raise TesseraError(f"{path}: column '{name}' has unit '{unit}', not a {kind} unit") from None


def _is_number(text) -> bool:
    try:
        float(text)
    except (TypeError, ValueError):
        return False
    return True


def _read_csv(path: Path) -> tuple[list[str], dict, dict]:
    import pandas as pd

    try:
        table = pd.read_csv(path)
        if len(table.columns) and all(_is_number(c) for c in table.columns):
            table = pd.read_csv(path, header=None)  # no header line: the first row is data
    except (ValueError, pd.errors.ParserError) as exc:
        raise TesseraError(f"{path}: not a readable CSV table ({exc})") from None
    return [str(c) for c in table.columns], {str(c): table[c].to_numpy() for c in table.columns}, {}


def _read_fits(path: Path) -> tuple[list[str], dict, dict]:
    from astropy.io import fits

    try:
        with fits.open(path, memmap=False) as hdus:
            hdu = next((h for h in hdus if isinstance(h, (fits.BinTableHDU, fits.TableHDU))), None)
            if hdu is None:
                raise TesseraError(f"{path}: no table HDU (spectra are read from FITS tables)")
            cols = hdu.columns
            data = {c.name: np.asarray(hdu.data[c.name]) for c in cols}
            units = {c.name: c.unit for c in cols}
    except OSError as exc:
        raise TesseraError(f"{path}: not a readable FITS file ({exc})") from None
    return list(data), data, units


def read_spectrum_table(path: str | Path) -> SpectrumTable:
    """One CSV or FITS spectrum table (module docstring) -> its samples, sorted by x, flags as NaN."""
    path = Path(path)
    names, data, units = _read_csv(path) if suffix(path) == ".csv" else _read_fits(path)
    x_col, kind, flux_col, flag_col = _pick_columns(path, names)
    x = _to_canonical(path, x_col, kind, _numeric(path, x_col, data[x_col]), units.get(x_col))
    flux = _numeric(path, flux_col, data[flux_col])
    if len(x) != len(flux):
        raise TesseraError(f"{path}: columns '{x_col}' and '{flux_col}' differ in length ({len(x)} vs {len(flux)})")
    if flag_col is not None:
        flags = _numeric(path, flag_col, data[flag_col])
        if len(flags) != len(flux):
            raise TesseraError(f"{path}: column '{flag_col}' has {len(flags)} values for {len(flux)} channels")
        bad = flags <= 0 if flag_col.lower() == "ivar" else flags != 0
        flux = np.where(bad, np.nan, flux)
    keep = np.isfinite(x)
    if keep.sum() < 2:
        raise TesseraError(f"{path}: column '{x_col}' has fewer than 2 finite values")
    order = np.argsort(x[keep], kind="stable")
    return SpectrumTable(x[keep][order], np.where(np.isfinite(flux), flux, np.nan)[keep][order], kind, x_col)


def spaced_grid(lo: float, hi: float, length: int) -> np.ndarray:
    """(L,) points from ``lo`` to ``hi``: log-spaced when lo > 0 (radio spectra are power laws), else linear."""
    return np.geomspace(lo, hi, length) if lo > 0 else np.linspace(lo, hi, length)


def grid_for(tables: dict[Path, SpectrumTable], length: int) -> np.ndarray:
    """(L,) grid spanning every table's x range (:func:`spaced_grid`)."""
    lo = min(float(t.x[0]) for t in tables.values())
    hi = max(float(t.x[-1]) for t in tables.values())
    if not hi > lo:
        raise TesseraError(f"spectra {', '.join(map(str, list(tables)[:3]))}: x range is a single point ({lo})")
    return spaced_grid(lo, hi, length)


def check_one_kind(tables: dict[Path, SpectrumTable], where: str) -> None:
    """Every table of a store on the same x kind (frequency or wavelength)."""
    first_path, first = next(iter(tables.items()))
    for p, t in tables.items():
        if t.kind != first.kind:
            raise TesseraError(f"{where}: {p} gives flux against {t.kind} (column '{t.x_column}'), {first_path} "
                               f"against {first.kind}; one store takes one kind")


def resample(table: SpectrumTable, grid: np.ndarray) -> np.ndarray:
    """(L,) float32 flux on ``grid``; NaN outside the table's range and next to a missing sample."""
    return np.interp(grid, table.x, table.flux, left=np.nan, right=np.nan).astype(np.float32)


def read_spectra_files(paths: list[Path], length: int, where: str) -> tuple[list[np.ndarray], np.ndarray | None]:
    """Spectra files -> ([(C, L) float32 per file], the tables' shared grid or None when all are NPY).

    NPY arrays are taken as they are (the caller checks their shape); tables are resampled onto one grid."""
    arrays: dict[Path, np.ndarray] = {}
    tables: dict[Path, SpectrumTable] = {}
    for p in paths:
        if suffix(p) == ".npy":
            a = np.load(p).astype(np.float32)
            arrays[p] = a[None] if a.ndim == 1 else a
        elif suffix(p) in TABLE_SUFFIXES:
            tables[p] = read_spectrum_table(p)
        else:
            raise TesseraError(f"{p}: spectra are read from .npy, .csv or FITS table files")
    grid = None
    if tables:
        check_one_kind(tables, where)
        grid = grid_for(tables, length)
        for p, t in tables.items():
            arrays[p] = resample(t, grid)[None]
    return [arrays[p] for p in paths], grid


__all__ = ["SpectrumTable", "read_spectrum_table", "read_spectra_files", "resample", "grid_for"]
