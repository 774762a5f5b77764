"""Paired data for alignment: the same objects seen by two instruments or modalities.

Specs (``--pairs``):

- ``frdeep-pairs:PATH``: FR-DEEP's FIRST (tower a) and NVSS (tower b) images of the same objects, through the
  evaluation issue's loader (:func:`tessera.evaluate.pairs.load_frdeep_pairs`: both cut to their common sky field
  by default, ``data.common_field``), FRI/FRII as the class target;
- a CSV ``path_a,path_b[,targets...]`` (paths relative to the CSV): each column is read as its tower's input kind,
  images as ``tessera evaluate`` reads labeled images (ZScale to [0, 1], DESIGN §3.1), spectra from ``.npy``
  (``(L,)`` or ``(C, L)`` on the tower's grid, NaN = missing channel) or ``.csv`` (two columns, x = wavelength or
  frequency, flux; resampled linearly onto one grid per column: L points spanning all files' x range, log-spaced
  when x > 0, NaN outside a file's own range). Numeric extra columns are regression targets, a ``label`` column
  a class target.

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

    if tower_a.kind != "image" or tower_b.kind != "image":
        raise TesseraError(f"--pairs {spec}: FIRST/NVSS pairs are images, but tower a is a {tower_a.kind} tower "
                           f"and tower b a {tower_b.kind} tower")
    # with max_pairs, read only a seeded class-balanced subset (ceil(max_pairs / 2) per class): FITS reading and
    # the WCS cut dominate the cost of a small run
    per_class = None if max_pairs is None else -(-max_pairs // 2)
    data = load_frdeep_pairs(spec[len(FRDEEP_PAIRS):], max_per_class=per_class, seed=seed, common_field=common_field)
    xa = resize_images(data.train.images, tower_a.image_size, f"{spec} (FIRST)")
    xb = resize_images(data.test.images, tower_b.image_size, f"{spec} (NVSS)")
    return PairedData(xa, xb, [str(o) for o in data.train.meta["object"]], {}, np.asarray(data.train.labels),
                      list(data.train.classes), data.excluded, names=tuple(data.survey_names))


def log_or_linear_grid(lo: float, hi: float, n: int) -> np.ndarray:
    return np.geomspace(lo, hi, n) if lo > 0 else np.linspace(lo, hi, n)


def read_spectra(paths: list[Path], length: int, channels: int, where: str) -> torch.Tensor:
    """Spectra files -> (N, C, L) float32 on one grid (module docstring); NaN = missing or flagged channel."""
    tables, arrays = {}, {}
    for p in paths:
        if p.suffix.lower() == ".npy":
            a = np.load(p).astype(np.float32)
            arrays[p] = a[None] if a.ndim == 1 else a
        elif p.suffix.lower() == ".csv":
            t = pd.read_csv(p).to_numpy(dtype=np.float64)
            if t.ndim != 2 or t.shape[1] < 2:
                raise TesseraError(f"{p}: a spectrum CSV needs two columns (x, flux)")
            tables[p] = t[np.argsort(t[:, 0])]
        else:
            raise TesseraError(f"{p}: spectra are read from .npy or .csv (x, flux) files")
    if tables:
        lo = min(float(t[0, 0]) for t in tables.values())
        hi = max(float(t[-1, 0]) for t in tables.values())
        grid = log_or_linear_grid(lo, hi, length)
        for p, t in tables.items():
            flux = np.interp(grid, t[:, 0], t[:, 1], left=np.nan, right=np.nan)
            arrays[p] = flux[None].astype(np.float32)
    out = []
    for p in paths:
        a = arrays[p]
        if a.shape != (channels, length):
            raise TesseraError(f"{where}: {p} has shape {a.shape}, the tower takes ({channels}, {length})")
        out.append(torch.from_numpy(a))
    return torch.stack(out)


def _read_column(paths: list[Path], tower, where: str) -> torch.Tensor:
    if tower.kind == "spectrum":
        return read_spectra(paths, tower.image_size, int(tower.backbone.in_channels), where)
    from tessera.evaluate.datasets import Record, read_normalized

    images = [read_normalized(Record(source=str(p), label="", path=p), None) for p in paths]
    return resize_images(images, tower.image_size, where)


def _csv(spec: str, tower_a, tower_b) -> PairedData:
    path = Path(spec)
    if not path.is_file():
        raise TesseraError(f"--pairs {spec}: neither {FRDEEP_PAIRS}PATH nor an existing CSV of path_a,path_b")
    table = pd.read_csv(path)
    for col in ("path_a", "path_b"):
        if col not in table.columns:
            raise TesseraError(f"{path}: no '{col}' column (columns: {', '.join(map(str, table.columns))})")
    if len(table) < 4:
        raise TesseraError(f"{path}: {len(table)} pair(s); alignment needs at least 4")
    base = path.parent
    cols = {c: [p if Path(p).is_absolute() else base / p for p in map(Path, table[c].astype(str))]
            for c in ("path_a", "path_b")}
    missing = [str(p) for c in cols.values() for p in c if not p.is_file()]
    if missing:
        shown = ", ".join(missing[:10]) + (f", ... ({len(missing) - 10} more)" if len(missing) > 10 else "")
        raise TesseraError(f"{path}: {len(missing)} listed file(s) do not exist: {shown}")
    xa = _read_column(cols["path_a"], tower_a, f"{path} path_a")
    xb = _read_column(cols["path_b"], tower_b, f"{path} path_b")
    targets, labels, classes = {}, None, None
    for col in table.columns:
        if col in ("path_a", "path_b"):
            continue
        if col == "label" or not pd.api.types.is_numeric_dtype(table[col]):
            classes = sorted(table[col].astype(str).unique())
            labels = np.asarray([classes.index(v) for v in table[col].astype(str)], dtype=np.int64)
        else:
            targets[str(col)] = table[col].to_numpy(dtype=np.float64)
    objects = [f"{a}|{b}" for a, b in zip(table["path_a"], table["path_b"])]
    return PairedData(xa, xb, objects, targets, labels, classes)


def load_pairs(spec: str, tower_a, tower_b, common_field: bool = True, max_pairs: int | None = None,
               seed: int = 0) -> PairedData:
    """The pairs named by ``spec`` (module docstring) on the towers' input grids; ``max_pairs`` lets a loader
    read fewer (the caller still subsamples to exactly ``max_pairs``)."""
    if spec.startswith(FRDEEP_PAIRS):
        return _frdeep(spec, tower_a, tower_b, common_field, max_pairs, seed)
    return _csv(spec, tower_a, tower_b)


def holdout_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, held-out) index split of n pairs; held-out = round(fraction * n), at least 2 each side."""
    held = int(round(fraction * n))
    if held < 2 or n - held < 2:
        raise TesseraError(f"{n} pairs cannot be split with data.holdout_fraction={fraction} (need >= 2 per side)")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[held:]), np.sort(order[:held])
