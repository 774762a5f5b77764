"""Paired data for alignment: the same objects seen by two instruments or modalities.

Specs (``--pairs``):

- ``frdeep-pairs:PATH``: FR-DEEP's FIRST (tower a) and NVSS (tower b) images of the same objects, through the
  evaluation issue's loader (:func:`tessera.evaluate.pairs.load_frdeep_pairs`: both cut to their common sky field
  by default, ``data.common_field``), FRI/FRII as the class target;
- ``match:A,B``: two stores joined on sky position within ``data.match_radius_arcsec`` (``--match-radius``,
  :func:`match_positions`), each a catalogue CSV ``path,ra_deg,dec_deg[,targets...]`` or a CutoutStore directory
  (the manifest's ``ra``/``dec``, DESIGN §3.2); unmatched rows and rows without a sky position are listed in
  ``excluded`` (and in RUN/split.json); targets come from A when it is a catalogue;
- a CSV ``path_a,path_b[,targets...]`` (paths relative to the CSV): each column is read as its tower's input kind,
  images as ``tessera evaluate`` reads labeled images (ZScale to [0, 1], DESIGN §3.1), spectra from ``.npy``
  (``(L,)`` or ``(C, L)`` on the tower's grid, NaN = missing channel) or CSV/FITS tables of flux against frequency
  or wavelength with optional flags (:mod:`tessera.corpus.spectra`: resampled linearly onto one grid per column,
  L points spanning all files' x range, log-spaced when x > 0, NaN outside a file's own range and at flagged
  channels). Numeric extra columns are regression targets, the ``label`` column (else the one text column) the
  class target; other text columns are kept out of both.

Missing files are one error listing them, before anything is read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from tessera.errors import TesseraError

FRDEEP_PAIRS = "frdeep-pairs:"
MATCH = "match:"


@dataclass
class PairedData:
    """N pairs on the towers' input grids: ``xa`` (N, ...) and ``xb`` (N, ...) float32 (images (N, C, S, S) in
    [0, 1], spectra (N, C, L) with NaN = missing); ``targets``: name -> (N,) float (regression); ``labels`` (N,)
    int and ``classes`` when a class target exists; ``objects``: one identifier per pair."""

    xa: torch.Tensor
    xb: torch.Tensor
    objects: list[str]
    targets: dict[str, np.ndarray] = field(default_factory=dict)
    labels: np.ndarray | None = None
    classes: list[str] | None = None
    excluded: list[dict] = field(default_factory=list)
    names: tuple[str, str] = ("a", "b")

    def __len__(self) -> int:
        return int(self.xa.shape[0])

    def subset(self, idx) -> "PairedData":
        idx = np.asarray(idx, dtype=np.int64)
        t = torch.as_tensor(idx)
        return PairedData(self.xa[t], self.xb[t], [self.objects[i] for i in idx],
                          {k: v[idx] for k, v in self.targets.items()},
                          None if self.labels is None else self.labels[idx], self.classes, self.excluded, self.names)


def resize_images(images: list[np.ndarray], size: int, where: str) -> torch.Tensor:
    """(C, H, W) arrays of any sizes -> (N, C, size, size), bicubic then clamped to [0, 1] (as Encoder.prepare).
    The channels are the data's (DESIGN §5.7); the tower's input adapter replicates them."""
    out = []
    for i, img in enumerate(images):
        x = torch.from_numpy(np.asarray(img, dtype=np.float32))[None]
        if out and x.shape[1] != out[0].shape[1]:
            raise TesseraError(f"{where}: pair {i} has {x.shape[1]} channel(s), pair 0 has {out[0].shape[1]}")
        if tuple(x.shape[-2:]) != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False).clamp_(0.0, 1.0)
        out.append(x)
    return torch.cat(out, dim=0)


def _frdeep(spec: str, tower_a, tower_b, common_field: bool, max_pairs: int | None, seed: int) -> PairedData:
    from tessera.evaluate.pairs import load_frdeep_pairs

    if tower_a.input_kind != "image" or tower_b.input_kind != "image":
        raise TesseraError(f"--pairs {spec}: FIRST/NVSS pairs are images, but tower a is a {tower_a.input_kind} tower "
                           f"and tower b a {tower_b.input_kind} tower")
    # with max_pairs, read only a seeded class-balanced subset (ceil(max_pairs / 2) per class): FITS reading and
    # the WCS cut dominate the cost of a small run
    per_class = None if max_pairs is None else -(-max_pairs // 2)
    data = load_frdeep_pairs(spec[len(FRDEEP_PAIRS):], max_per_class=per_class, seed=seed, common_field=common_field)
    xa = resize_images(data.train.images, tower_a.image_size, f"{spec} (FIRST)")
    xb = resize_images(data.test.images, tower_b.image_size, f"{spec} (NVSS)")
    return PairedData(xa, xb, [str(o) for o in data.train.meta["object"]], {}, np.asarray(data.train.labels),
                      list(data.train.classes), data.excluded, names=tuple(data.survey_names))


def read_spectra(paths: list[Path], length: int, channels: int, where: str) -> torch.Tensor:
    """Spectra files -> (N, C, L) float32 on one grid (:mod:`tessera.corpus.spectra`); NaN = missing channel."""
    from tessera.corpus.spectra import read_spectra_files

    arrays, _ = read_spectra_files(paths, length, where)
    for p, a in zip(paths, arrays):
        if a.shape != (channels, length):
            raise TesseraError(f"{where} feeds a spectrum tower: {p} has shape {a.shape}, the tower takes "
                               f"({channels}, {length})")
    return torch.from_numpy(np.stack(arrays))


def _read_column(paths: list[Path], tower, where: str) -> torch.Tensor:
    if tower.input_kind == "spectrum":
        return read_spectra(paths, tower.image_size, int(tower.backbone.in_channels), where)
    from tessera.evaluate.datasets import Record, read_normalized

    try:
        images = [read_normalized(Record(source=str(p), label="", path=p), None) for p in paths]
    except TesseraError as exc:  # e.g. a spectrum column given to an image tower
        raise TesseraError(f"{where} feeds an image tower: {exc}") from None
    return resize_images(images, tower.image_size, where)


def _resolve(base: Path, paths) -> list[Path]:
    return [p if Path(p).is_absolute() else base / p for p in map(Path, paths)]


def _check_files(where: Path, paths: list[Path]) -> None:
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        shown = ", ".join(missing[:10]) + (f", ... ({len(missing) - 10} more)" if len(missing) > 10 else "")
        raise TesseraError(f"{where}: {len(missing)} listed file(s) do not exist: {shown}")


def _targets(table: pd.DataFrame, skip: set[str]):
    """Numeric columns -> regression targets; ``label`` (else the only text column) -> the class target. Further
    text columns (e.g. a second classification) are neither."""
    targets, labels, classes = {}, None, None
    text = [c for c in table.columns if c not in skip and (c == "label" or not pd.api.types.is_numeric_dtype(table[c]))]
    class_col = "label" if "label" in text else (text[0] if len(text) == 1 else None)
    for col in table.columns:
        if col in skip or col in text:
            continue
        targets[str(col)] = table[col].to_numpy(dtype=np.float64)
    if class_col is not None:
        values = table[class_col].astype(str)
        classes = sorted(values.unique())
        labels = np.asarray([classes.index(v) for v in values], dtype=np.int64)
    return targets, labels, classes


def _read_table(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    if not path.is_file():
        raise TesseraError(f"--pairs: {path}: no such CSV")
    table = pd.read_csv(path)
    for col in columns:
        if col not in table.columns:
            raise TesseraError(f"{path}: no '{col}' column (columns: {', '.join(map(str, table.columns))})")
    return table


def _csv(spec: str, tower_a, tower_b) -> PairedData:
    path = Path(spec)
    if not path.is_file():
        raise TesseraError(f"--pairs {spec}: neither {FRDEEP_PAIRS}PATH, {MATCH}A,B nor an existing CSV")
    table = _read_table(path, ("path_a", "path_b"))
    if len(table) < 4:
        raise TesseraError(f"{path}: {len(table)} pair(s); alignment needs at least 4")
    cols = {c: _resolve(path.parent, table[c].astype(str)) for c in ("path_a", "path_b")}
    _check_files(path, cols["path_a"] + cols["path_b"])
    xa = _read_column(cols["path_a"], tower_a, f"{path} path_a")
    xb = _read_column(cols["path_b"], tower_b, f"{path} path_b")
    targets, labels, classes = _targets(table, {"path_a", "path_b"})
    objects = [f"{a}|{b}" for a, b in zip(table["path_a"], table["path_b"])]
    return PairedData(xa, xb, objects, targets, labels, classes)


@dataclass
class MatchSide:
    """One side of ``match:A,B``: a catalogue CSV (path,ra_deg,dec_deg[,targets]) or a CutoutStore directory
    (its manifest's ra/dec: DESIGN §3.2's provenance). ``ids`` (n,) names each row in reports; ``table`` holds the
    catalogue's rows (targets), None for a store."""

    path: Path
    ids: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    table: pd.DataFrame | None = None

    @property
    def name(self) -> str:
        return self.path.stem if self.table is not None else self.path.name

    def files(self, rows: np.ndarray) -> list[Path]:
        """The catalogue's files of ``rows`` (none for a store)."""
        if self.table is None:
            return []
        return _resolve(self.path.parent, self.table.path.astype(str).to_numpy()[rows])

    def check(self, rows: np.ndarray, tower) -> None:
        """Before any reading: every listed file exists (one error listing the missing); a store feeds a tower of
        its kind (image cutouts or spectra, the store's store.json), a spectrum store one of its grid length."""
        if self.table is not None:
            _check_files(self.path, self.files(rows))
            return
        from tessera.corpus.store import read_store_info

        info = read_store_info(self.path)
        if tower.input_kind != info["kind"]:
            held = "images" if info["kind"] == "image" else "spectra"
            raise TesseraError(f"{self.path}: a cutout store holds {held}, but it feeds a {tower.input_kind} tower")
        if info["kind"] == "spectrum" and int(info["length"]) != int(tower.image_size):
            raise TesseraError(f"{self.path}: spectra of {info['length']} channels, the spectrum tower takes "
                               f"{tower.image_size}")

    def read(self, rows: np.ndarray, tower) -> torch.Tensor:
        """The inputs of ``rows`` on ``tower``'s grid: files listed by a catalogue, or the store's cutouts
        (resized to the tower's input) or spectra ((N, C, L) as stored, NaN = missing)."""
        if self.table is not None:
            return _read_column(self.files(rows), tower, f"{self.path} path")
        from tessera.corpus.store import CutoutStore

        store = CutoutStore(self.path)
        arrays = [store.get_array(int(i)) for i in rows]
        if store.kind == "spectrum":
            return torch.from_numpy(np.stack(arrays)) if arrays else torch.zeros(0, 1, int(tower.image_size))
        return resize_images(arrays, tower.image_size, str(self.path))


def match_side(text: str) -> MatchSide:
    """A catalogue CSV or a CutoutStore directory, by what ``text`` names."""
    path = Path(text)
    if path.is_dir():
        from tessera.corpus.layout import MANIFEST

        if not (path / MANIFEST).is_file():
            raise TesseraError(f"--pairs match: {path}: a directory but not a cutout store (no {MANIFEST})")
        manifest = pd.read_parquet(path / MANIFEST)
        for col in ("ra", "dec"):
            if col not in manifest.columns:
                raise TesseraError(f"{path / MANIFEST}: no '{col}' column (cutouts without a WCS have no position)")
        ids = np.asarray([f"{src}#{i}" for i, src in enumerate(manifest.get("path", manifest.index).astype(str))])
        return MatchSide(path, ids, manifest.ra.to_numpy(float), manifest.dec.to_numpy(float))
    table = _read_table(path, ("path", "ra_deg", "dec_deg"))
    return MatchSide(path, table.path.astype(str).to_numpy(), table.ra_deg.to_numpy(float),
                     table.dec_deg.to_numpy(float), table)


def _matched(spec: str, tower_a, tower_b, radius: float | None) -> PairedData:
    parts = spec[len(MATCH):].split(",")
    if len(parts) != 2 or radius is None:
        raise TesseraError(f"--pairs {spec}: expected {MATCH}A,B (catalogue CSVs or cutout stores) with "
                           "data.match_radius_arcsec set (--match-radius)")
    sa, sb = match_side(parts[0]), match_side(parts[1])
    # rows without a sky position (non-finite RA/Dec, e.g. cutouts of images without a WCS) cannot be matched
    ok_a, ok_b = np.isfinite(sa.ra) & np.isfinite(sa.dec), np.isfinite(sb.ra) & np.isfinite(sb.dec)
    excluded = [{"path": str(side.ids[i]), "reason": "no sky position"}
                for side, ok in ((sa, ok_a), (sb, ok_b)) for i in np.flatnonzero(~ok)]
    if not ok_a.any() or not ok_b.any():
        raise TesseraError(f"--pairs {spec}: {sa.path if not ok_a.any() else sb.path} has no row with a sky position")
    rows_a, rows_b = np.flatnonzero(ok_a), np.flatnonzero(ok_b)
    m = match_positions(sa.ra[rows_a], sa.dec[rows_a], sb.ra[rows_b], sb.dec[rows_b], radius)
    a, b = rows_a[m.a], rows_b[m.b]
    excluded += [{"path": str(sa.ids[i]), "reason": f"no {sb.name} row within {radius} arcsec"}
                 for i in rows_a[m.unmatched_a]]
    excluded += [{"path": str(sb.ids[i]), "reason": f"no {sa.name} row within {radius} arcsec"}
                 for i in rows_b[m.unmatched_b]]
    sa.check(a, tower_a)
    sb.check(b, tower_b)
    xa, xb = sa.read(a, tower_a), sb.read(b, tower_b)
    targets, labels, classes = {}, None, None
    if sa.table is not None:  # targets come from side a's catalogue
        targets, labels, classes = _targets(sa.table.iloc[a].reset_index(drop=True), {"path", "ra_deg", "dec_deg"})
    objects = [f"{i}|{j}" for i, j in zip(sa.ids[a], sb.ids[b])]
    return PairedData(xa, xb, objects, targets, labels, classes, excluded, names=(sa.name, sb.name))


def load_pairs(spec: str, tower_a, tower_b, common_field: bool = True, max_pairs: int | None = None,
               seed: int = 0, match_radius: float | None = None) -> PairedData:
    """The pairs named by ``spec`` (module docstring) on the towers' input grids; ``max_pairs`` lets a loader
    read fewer (the caller still subsamples to exactly ``max_pairs``)."""
    if spec.startswith(FRDEEP_PAIRS):
        return _frdeep(spec, tower_a, tower_b, common_field, max_pairs, seed)
    if spec.startswith(MATCH):
        return _matched(spec, tower_a, tower_b, match_radius)
    return _csv(spec, tower_a, tower_b)


def holdout_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, held-out) index split of n pairs; held-out = round(fraction * n), at least 2 each side."""
    held = int(round(fraction * n))
    if held < 2 or n - held < 2:
        raise TesseraError(f"{n} pairs cannot be split with data.holdout_fraction={fraction} (need >= 2 per side)")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[held:]), np.sort(order[:held])


@dataclass
class PositionMatch:
    """Result of :func:`match_positions`: matched index pairs and the rows of each side left unmatched."""

    a: np.ndarray  # (M,) row indices into side a
    b: np.ndarray  # (M,) row indices into side b, b[i] is a[i]'s partner
    separation_arcsec: np.ndarray  # (M,)
    unmatched_a: np.ndarray
    unmatched_b: np.ndarray


def match_positions(ra_a, dec_a, ra_b, dec_b, radius_arcsec: float) -> PositionMatch:
    """Join two catalogues (degrees) on sky position: each row of a takes its nearest row of b
    (astropy ``match_coordinates_sky``), kept when closer than ``radius_arcsec``; a row of b claimed by several
    rows of a goes to the closest one (one-to-one pairs). No match at all is a TesseraError."""
    import astropy.units as u
    from astropy.coordinates import SkyCoord, match_coordinates_sky

    if radius_arcsec <= 0:
        raise TesseraError(f"--match-radius {radius_arcsec}: must be positive (arcsec)")
    ca = SkyCoord(np.asarray(ra_a, float) * u.deg, np.asarray(dec_a, float) * u.deg)
    cb = SkyCoord(np.asarray(ra_b, float) * u.deg, np.asarray(dec_b, float) * u.deg)
    idx, sep, _ = match_coordinates_sky(ca, cb)
    sep = sep.to(u.arcsec).value
    best: dict[int, int] = {}
    for i in np.argsort(sep):  # closest first: a contested b row goes to its nearest a row
        if sep[i] < radius_arcsec and int(idx[i]) not in best:
            best[int(idx[i])] = int(i)
    if not best:
        raise TesseraError(f"no pair within --match-radius {radius_arcsec} arcsec (closest: {sep.min():.1f} arcsec)")
    a = np.asarray(sorted(best.values()), dtype=np.int64)
    b = np.asarray([int(idx[i]) for i in a], dtype=np.int64)
    return PositionMatch(a, b, sep[a], np.setdiff1d(np.arange(len(ca)), a), np.setdiff1d(np.arange(len(cb)), b))
