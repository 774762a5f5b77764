"""Ingesting 1-D spectra into a store (DESIGN §3.2): the spectrum side of ``tessera ingest --spectra``.

A spectrum store has the layout of an image CutoutStore (corpus/layout.py: journal, shards, manifest, skipped list,
report, lock; resumable and appendable the same way, by corpus/ingest.py), plus

- ``store.json`` with ``kind = "spectrum"``, ``ndim = 1``, the grid's length, x kind (frequency / wavelength /
  channel index) and unit, and ``grid.npy``, the (L,) grid every spectrum of the store is on. The grid is fixed
  when the store is created (:func:`plan_grid`: L points spanning the first ingest's tables, log-spaced when
  x > 0, corpus/spectra.py ``grid_for``; or ``grid_min``/``grid_max``/``length``), so appending never moves it;
- shards of float32 ``(N, C, L)`` (raw flux: no normalization, the encoder Z-scores each spectrum itself; float32
  because float16 underflows at the flux densities of optical spectra, ~1e-17 erg/s/cm²/Å), NaN = missing.

One input gives one spectrum (a ``(L,)``/``(C, L)`` NPY, a CSV or FITS table) or several (an ``(N, C, L)`` NPY: one
row each, ``plane`` = the row). Manifest rows: ``x = y = 0``, ``h = 1``, ``w = L``, ``channels = C``, ``hdu`` the
FITS table's HDU (0 otherwise), RA/Dec from the ``positions`` catalogue or the FITS header (``RA``/``DEC``,
``PLUG_RA``/``PLUG_DEC``, ``OBJRA``/``OBJDEC``), NaN when neither gives one; raw statistics over the valid channels.
A file that cannot be read, whose x kind differs from the store's, or an NPY not on the grid is skipped with a
one-line reason (the rest of the batch is kept); a spectrum with no valid channel on the grid is dropped
(``all_missing``).
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tessera.corpus.config import IngestConfig
from tessera.corpus.layout import CONFIG, GRID, SHARDS, STORE_INFO
from tessera.corpus.spectra import (
    CANONICAL_UNIT,
    TABLE_SUFFIXES,
    SpectrumTable,
    grid_for,
    read_spectrum_table,
    resample,
    spaced_grid,
    suffix,
)
from tessera.errors import TesseraError
from tessera.io import atomic_open, atomic_write_text

INDEX = "index"  # the x kind of a grid known only as channel numbers (NPY-only stores)
HEADER_POSITIONS = (("RA", "DEC"), ("PLUG_RA", "PLUG_DEC"), ("OBJRA", "OBJDEC"))


@dataclass
class SpectrumGrid:
    """The store's grid: x (L,) float64 ascending, its kind (frequency, wavelength, x, index) and unit (or None)."""

    x: np.ndarray
    kind: str
    unit: str | None

    def info(self) -> dict[str, Any]:
        """The store.json of a spectrum store on this grid (corpus/layout.py)."""
        return {"kind": "spectrum", "ndim": 1, "length": int(len(self.x)), "x_kind": self.kind, "x_unit": self.unit}


# ---------------------------------------------------------------- the grid


def load_grid(store: Path) -> SpectrumGrid | None:
    """The grid saved with ``store`` (None when the store has none yet)."""
    info_path, grid_path = Path(store) / STORE_INFO, Path(store) / GRID
    if not (info_path.is_file() and grid_path.is_file()):
        return None
    info = json.loads(info_path.read_text())
    if info.get("kind") != "spectrum":
        return None
    return SpectrumGrid(np.load(grid_path, allow_pickle=False), info["x_kind"], info.get("x_unit"))


def save_grid(store: Path, grid: SpectrumGrid) -> None:
    """Write ``grid.npy`` then ``store.json`` atomically (the info names a grid only once the grid is durable)."""
    with atomic_open(Path(store) / GRID) as fh:
        np.save(fh, np.asarray(grid.x, dtype=np.float64), allow_pickle=False)
    atomic_write_text(Path(store) / STORE_INFO, json.dumps(grid.info(), indent=2))


def _npy_length(path: Path) -> int | None:
    try:
        return int(np.load(path, mmap_mode="r", allow_pickle=False).shape[-1])
    except (OSError, ValueError, IndexError):
        return None


def plan_grid(files: list[Path], cfg: IngestConfig) -> SpectrumGrid:
    """The grid of a new store from its first inputs: tables -> ``cfg.length`` (else the longest table's sample
    count, else the NPY length) points spanning the tables of the first table's x kind (or ``grid_min`` ..
    ``grid_max``); NPY only -> channel indices 0..L-1. Unreadable files are left to the per-file step."""
    tables: dict[Path, SpectrumTable] = {}
    npy_length = None
    for p in files:
        if suffix(p) in TABLE_SUFFIXES:
            try:
                tables[p] = read_spectrum_table(p)
            except TesseraError:
                continue  # skipped, with its reason, when the file itself is ingested
        elif suffix(p) == ".npy" and npy_length is None:
            npy_length = _npy_length(p)
    if tables:
        kind = next(iter(tables.values())).kind
        same = {p: t for p, t in tables.items() if t.kind == kind}
        length = cfg.length or npy_length or max(len(t.x) for t in same.values())
        x = grid_for(same, length)
        if cfg.grid_min is not None or cfg.grid_max is not None:
            lo = x[0] if cfg.grid_min is None else cfg.grid_min
            hi = x[-1] if cfg.grid_max is None else cfg.grid_max
            x = spaced_grid(lo, hi, length)
        return SpectrumGrid(np.asarray(x, dtype=np.float64), kind, CANONICAL_UNIT.get(kind))
    length = cfg.length or npy_length
    if length is None:
        raise TesseraError("no readable spectrum among the inputs (.npy, .csv or FITS tables of flux)")
    return SpectrumGrid(np.arange(length, dtype=np.float64), INDEX, None)


def ensure_grid(store: Path, files: list[Path], cfg: IngestConfig) -> SpectrumGrid:
    """The store's grid: the saved one, or a new one planned from ``files`` and saved."""
    grid = load_grid(store)
    if grid is None:
        grid = plan_grid(files, cfg)
        save_grid(store, grid)
    return grid


# ---------------------------------------------------------------- positions


@functools.lru_cache(maxsize=4)
def _catalogue(path: str, mtime_ns: int) -> dict[str, tuple[float, float]]:
    import pandas as pd

    table = pd.read_csv(path)
    missing = [c for c in ("path", "ra_deg", "dec_deg") if c not in table.columns]
    if missing:
        raise TesseraError(f"{path}: positions catalogue lacks column(s) {', '.join(missing)} (path,ra_deg,dec_deg)")
    base = Path(path).parent
    return {str((base / str(p)).resolve()): (float(r), float(d))
            for p, r, d in zip(table["path"], table["ra_deg"], table["dec_deg"])}


def catalogue_position(catalogue: str | None, path: Path) -> tuple[float, float] | None:
    if catalogue is None:
        return None
    return _catalogue(str(catalogue), os.stat(catalogue).st_mtime_ns).get(str(Path(path).resolve()))


def fits_position_and_hdu(path: Path) -> tuple[tuple[float, float] | None, int]:
    """(RA, Dec) in degrees from the first header holding one of :data:`HEADER_POSITIONS`, and the index of the
    first table HDU (the one corpus/spectra.py reads)."""
    from astropy.io import fits

    position, table_hdu = None, 0
    with fits.open(path, memmap=False) as hdus:
        for i, hdu in enumerate(hdus):
            if isinstance(hdu, (fits.BinTableHDU, fits.TableHDU)) and not table_hdu:
                table_hdu = i
            for ra_key, dec_key in HEADER_POSITIONS:
                if position is None and ra_key in hdu.header and dec_key in hdu.header:
                    try:
                        position = (float(hdu.header[ra_key]), float(hdu.header[dec_key]))
                    except (TypeError, ValueError):
                        pass
    return position, table_hdu


# ---------------------------------------------------------------- one input


def read_spectra(path: Path, grid: SpectrumGrid) -> np.ndarray:
    """One input's spectra on ``grid``: (N, C, L) float32, NaN = missing (module docstring); TesseraError naming
    the file when it cannot be read or does not fit the store."""
    length = len(grid.x)
    if suffix(path) == ".npy":
        try:
            a = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise TesseraError(f"{path}: not a readable NPY array ({exc})") from None
        if a.dtype.kind not in "fiu" or a.ndim not in (1, 2, 3):
            raise TesseraError(f"{path}: a spectrum NPY is a numeric (L,), (C, L) or (N, C, L) array, got "
                               f"{a.dtype} {a.shape}")
        a = a.reshape((1,) * (3 - a.ndim) + a.shape).astype(np.float32)
        if a.shape[-1] != length:
            raise TesseraError(f"{path}: {a.shape[-1]} channels, the store's grid has {length} (an NPY spectrum "
                               "must already be on the store's grid)")
        return np.where(np.isfinite(a), a, np.nan).astype(np.float32)
    if suffix(path) not in TABLE_SUFFIXES:
        raise TesseraError(f"{path}: spectra are read from .npy, .csv or FITS table files")
    if grid.kind == INDEX:
        raise TesseraError(f"{path}: the store's grid is channel numbers (made from NPY spectra), a table's "
                           "frequencies or wavelengths cannot be placed on it")
    table = read_spectrum_table(path)
    if table.kind != grid.kind:
        raise TesseraError(f"{path}: gives flux against {table.kind} (column '{table.x_column}'), the store's grid "
                           f"is {grid.kind}; one store takes one kind")
    return resample(table, grid.x)[None, None]


def _rows(spectra: np.ndarray, shards, base: dict, hdu: int, position, dropped: dict) -> list[dict]:
    rows = []
    ra, dec = position if position is not None else (np.nan, np.nan)
    for k, spectrum in enumerate(spectra):
        finite = spectrum[np.isfinite(spectrum)]
        if finite.size == 0:
            dropped["all_missing"] = dropped.get("all_missing", 0) + 1
            continue
        shard, offset = shards.add(spectrum.astype(np.float32))
        rows.append({**base, "hdu": hdu, "dataset": "", "plane": k, "x": 0, "y": 0, "h": 1,
                     "w": int(spectrum.shape[-1]), "channels": int(spectrum.shape[0]), "ra": float(ra),
                     "dec": float(dec), "raw_min": float(finite.min()), "raw_max": float(finite.max()),
                     "raw_mean": float(finite.mean(dtype=np.float64)), "raw_std": float(finite.std(dtype=np.float64)),
                     "raw_median": float(np.median(finite)), "shard": shard, "offset": offset})
    return rows


def process_spectrum_input(path: str, key: str, source: str, cfg: IngestConfig, store: str) -> dict:
    """Read one spectrum file onto the store's grid and write its shard; returns its journal record (the same
    fields as corpus/ingest.py ``process_input``; an unreadable or unfitting file gives a "skipped" record)."""
    from tessera.corpus.ingest import _ShardBuffers

    st = os.stat(path)
    fmt = {".npy": "npy", ".csv": "csv"}.get(suffix(Path(path)), "fits")
    record: dict[str, Any] = {"path": path, "key": key, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                              "source": source, "format": fmt, "status": "done", "reason": "", "planes": 0,
                              "tiles": 0, "dropped": {}, "plane_skips": [], "notes": [], "shards": [], "rows": []}
    grid = load_grid(Path(store))
    if grid is None:
        raise TesseraError(f"{store}: a spectrum store without its grid ({GRID}); re-ingest with --overwrite")
    shards = _ShardBuffers(Path(store) / SHARDS, key, cfg.shard_size)
    dropped: dict[str, int] = {}
    try:
        spectra = read_spectra(Path(path), grid)
        position, hdu = (None, 0)
        if fmt == "fits":
            position, hdu = fits_position_and_hdu(Path(path))
        position = catalogue_position(cfg.positions, Path(path)) or position
        base = {"path": path, "source": source, "format": fmt, "input_key": key}
        rows = _rows(spectra, shards, base, hdu, position, dropped)
        shards.close()
    except (TesseraError, OSError) as exc:
        record.update(status="skipped", reason=str(exc) if isinstance(exc, TesseraError) else f"{path}: {exc}")
        return record
    record.update(planes=len(spectra), rows=rows, tiles=len(rows), shards=shards.names, dropped=dropped)
    if not rows:
        record.update(status="skipped", reason=f"{path}: no valid channel on the store's grid "
                      f"({grid.x[0]:.6g}-{grid.x[-1]:.6g} {grid.unit or grid.kind})")
    return record


def resolve_kind(cfg: IngestConfig, store: Path | None, files: list[Path]) -> str:
    """``cfg.kind`` with "auto" decided (IngestConfig.kind): the store's own kind (store.json, else its saved config;
    stores made before either said are image stores), else "spectrum" when every input is a CSV table, else
    "image"."""
    if cfg.kind != "auto":
        return cfg.kind
    from tessera.corpus.store import read_store_info

    if store is not None and (Path(store) / STORE_INFO).is_file():
        return read_store_info(store)["kind"]
    if store is not None and (Path(store) / CONFIG).is_file():
        from tessera.config import load_saved_config

        saved = load_saved_config(IngestConfig, Path(store)).kind  # "auto" in stores made before store.json existed
        return saved if saved != "auto" else "image"
    if files and all(suffix(Path(p)) == ".csv" for p in files):
        return "spectrum"
    return "image"


__all__ = ["SpectrumGrid", "ensure_grid", "load_grid", "plan_grid", "process_spectrum_input", "read_spectra",
           "resolve_kind"]
