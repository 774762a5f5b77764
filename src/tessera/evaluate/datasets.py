"""Labeled image sets for transfer evaluation: a CSV (``path,label``), class folders, or arrays from a benchmark.

Every image is read with ``tessera.corpus.readers.read_image`` and normalized per image with
``tessera.corpus.normalize.zscale_normalize`` (ZScale to [0, 1], non-finite -> 0; seed 000 §4.1, §9.1).
Unreadable and blank images are excluded during indexing and reported (seed 000 §4.1); resizing and
channel replication are the encoder's job (its ``embed`` resizes bicubically and applies its adapter).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from tessera.corpus.readers import READABLE_SUFFIXES, has_readable_suffix
from tessera.errors import TesseraError
from tessera.io import file_signature

# One list of readable formats, shared with ingest (tessera.corpus.readers): .fz, .fits.fz, .fts.gz, HDF5 included.
IMAGE_SUFFIXES = READABLE_SUFFIXES
BLANK_REASON = "blank image (no finite pixels, constant, or all zero after ZScale)"


@dataclass
class Record:
    """One labeled sample before reading: a file (``path``) or an in-memory array (``array``)."""

    source: str  # identifier written to results (path, or archive#index)
    label: str
    path: Path | None = None
    array: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class LabeledSet:
    """Normalized labeled images. ``images[i]``: (C, H, W) float16 in [0, 1] (float16 is lossless enough after
    ZScale and halves memory); ``labels``: (N,) int64 indices into ``classes``."""

    images: list[np.ndarray]
    labels: np.ndarray
    classes: list[str]
    sources: list[str]
    meta: pd.DataFrame
    excluded: list[dict[str, str]]
    data_key: str  # hash of sources and file mtimes/sizes: part of the feature-cache key

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, indices) -> "torch.Tensor":  # noqa: F821
        """Images ``indices`` as a float32 tensor (B, C, H, W); all must share one shape."""
        import torch

        arrays = [self.images[int(i)] for i in indices]
        shapes = {a.shape for a in arrays}
        if len(shapes) != 1:
            raise TesseraError(f"images of different shapes {sorted(shapes)} cannot share one batch")
        return torch.from_numpy(np.stack(arrays).astype(np.float32))

    def shape_groups(self, indices) -> list[np.ndarray]:
        """Split ``indices`` into runs of equal image shape (order kept within each shape)."""
        indices = np.asarray(indices)
        keys = [self.images[int(i)].shape for i in indices]
        groups: dict[tuple, list[int]] = {}
        for idx, key in zip(indices, keys):
            groups.setdefault(key, []).append(int(idx))
        return [np.asarray(v) for v in groups.values()]


def center_cropped(ls: LabeledSet, size: int) -> LabeledSet:
    """``ls`` with every image cut to its central ``size`` x ``size`` pixels (images smaller than that on a side
    keep that side whole). For sets of centred sources that fill a small part of a wide field: at the encoder's
    input size a whole-field resize leaves a FIRST galaxy a few pixels across. The crop is part of the
    feature-cache key."""
    import dataclasses

    from tessera.corpus.tiling import central_box

    def crop(a: np.ndarray) -> np.ndarray:
        top, left, bh, bw = central_box(*a.shape[-2:], size)
        return np.ascontiguousarray(a[..., top:top + bh, left:left + bw])

    key = hashlib.sha256(f"{ls.data_key};center_crop={size}".encode()).hexdigest()[:16]
    return dataclasses.replace(ls, images=[crop(a) for a in ls.images], data_key=key)


@dataclass
class EvalData:
    """What a protocol runs on. ``test`` (optional) holds the same samples, in the same order and with the same
    labels, seen by another instrument: folds train on ``train`` images and test on ``test`` images."""

    name: str
    train: LabeledSet
    test: LabeledSet | None = None
    test_description: str | None = None  # what ``test`` is, for results.json "test_data"
    survey_names: tuple[str, str] = ("train", "test")  # retrieval directions, e.g. ("FIRST", "NVSS")
    options: dict[str, Any] = field(default_factory=dict)  # loader choices stated in results (e.g. common_field)

    def center_cropped(self, size: int) -> "EvalData":
        """Both sets cut to their central ``size`` pixels (:func:`center_cropped`), the choice stated in options."""
        import dataclasses

        test = center_cropped(self.test, size) if self.test is not None else None
        return dataclasses.replace(self, train=center_cropped(self.train, size), test=test,
                                   options={**self.options, "center_crop": size})

    @property
    def excluded(self) -> list[dict[str, str]]:
        return self.train.excluded + (self.test.excluded if self.test is not None else [])


def _corpus_io() -> tuple[Callable, Callable]:
    from tessera.corpus.normalize import normalize
    from tessera.corpus.readers import read_image

    return read_image, normalize


def is_blank(raw: np.ndarray, normalized: np.ndarray) -> bool:
    """Blank = no finite pixel, constant finite pixels, or nothing left after ZScale (seed 000 §4.1)."""
    finite = raw[np.isfinite(raw)]
    if finite.size == 0 or float(finite.max()) == float(finite.min()):
        return True
    return not bool(np.any(normalized > 0))


def collapse_replicated_channels(arr: np.ndarray) -> np.ndarray:
    """(C, H, W) with identical channels (grey saved as RGB) -> (1, H, W); (H, W) -> (1, H, W).

    Seed 000 §4.1 treats evaluation images as single-channel; genuinely multi-band data is kept as is.
    """
    if arr.ndim == 2:
        return arr[None]
    if arr.ndim == 3 and arr.shape[0] > 1 and all(np.array_equal(arr[0], arr[c], equal_nan=True) for c in range(1,
        arr.shape[0])):
        return arr[:1]
    if arr.ndim != 3:
        raise TesseraError(f"expected an image of shape (H, W) or (C, H, W), got {arr.shape}")
    return arr


def subset_records(records: list[Record], max_per_class: int | None, seed: int) -> list[Record]:
    """At most ``max_per_class`` records per label, chosen with ``seed``; file order kept."""
    if max_per_class is None:
        return records
    rng = np.random.default_rng(seed)
    labels = np.array([r.label for r in records])
    keep = []
    for label in sorted(set(labels.tolist())):
        idx = np.flatnonzero(labels == label)
        if len(idx) > max_per_class:
            idx = np.sort(rng.choice(idx, size=max_per_class, replace=False))
        keep.extend(idx.tolist())
    return [records[i] for i in sorted(keep)]


def read_normalized(record: Record, hdu: int | None, max_nan_fraction: float | None = None,
                    stretch: str = "zscale") -> np.ndarray:
    """Raw image of ``record`` -> ZScale-normalized (C, H, W) float32; raises TesseraError if unreadable or blank.
    ``stretch="minmax"``: the linear min-max stretch instead (``tessera.corpus.normalize``; strong lenses).

    Blanked (NaN) pixels follow ingest's rule (``tessera.corpus.filters``): ZScale on the finite pixels,
    blanks 0 after normalization. ``max_nan_fraction`` (ingest's key of the same name) excludes an image
    with a larger blanked fraction; None keeps every image that has finite pixels (labeled cutouts are
    curated one by one, so a few blanked pixels are no reason to lose a labeled sample).
    """
    from tessera.corpus.filters import nan_fraction

    read_image, normalize = _corpus_io()
    raw = read_image(record.path, hdu=hdu) if record.path is not None else np.asarray(record.array, dtype=np.float32)
    raw = collapse_replicated_channels(np.asarray(raw, dtype=np.float32))
    if max_nan_fraction is not None and nan_fraction(raw) > max_nan_fraction:
        raise _Blank(f"{nan_fraction(raw):.2%} of the pixels are blanked (NaN/Inf), more than "
                     f"max_nan_fraction={max_nan_fraction}")
    norm = normalize(raw, stretch)
    if is_blank(raw, norm):
        raise _Blank(BLANK_REASON)
    return np.asarray(norm, dtype=np.float32)


class _Blank(Exception):
    """A blank image: excluded, not an error."""


def build_labeled_set(
    records: list[Record],
    hdu: int | None = None,
    classes: list[str] | None = None,
    extra_key: str = "",
    max_nan_fraction: float | None = None,
    stretch: str = "zscale",
) -> LabeledSet:
    """Read and normalize every record; unreadable/blank ones go to ``excluded`` with the reason.

    ``classes`` fixes the class order (default: sorted label names of the records); ``max_nan_fraction``:
    see :func:`read_normalized`.
    """
    classes = list(classes) if classes is not None else sorted({r.label for r in records})
    index = {c: i for i, c in enumerate(classes)}
    images, labels, sources, rows, excluded = [], [], [], [], []
    digest = hashlib.sha256(f"hdu={hdu};{extra_key}".encode())
    if max_nan_fraction is not None:  # part of the feature-cache key only when it can change the set
        digest.update(f";max_nan_fraction={max_nan_fraction}".encode())
    if stretch != "zscale":  # likewise: the default keeps every existing cache key
        digest.update(f";stretch={stretch}".encode())
    for record in records:
        if record.label not in index:
            raise TesseraError(f"{record.source}: label {record.label!r} is not one of {classes}")
        try:
            image = read_normalized(record, hdu, max_nan_fraction, stretch)
        except TesseraError as exc:  # read_image's documented "unreadable" error: excluded and listed (§4.1)
            excluded.append({"path": record.source, "reason": str(exc)})
            continue
        except _Blank as exc:
            excluded.append({"path": record.source, "reason": str(exc)})
            continue
        images.append(image.astype(np.float16))
        labels.append(index[record.label])
        sources.append(record.source)
        rows.append({"source": record.source, "label": record.label, **record.extra})
        digest.update(record.source.encode())
        digest.update((file_signature(record.path) if record.path is not None else "array").encode())
    if not images:
        raise TesseraError(f"no usable images among {len(records)} labeled entries ({len(excluded)} excluded)")
    present = sorted({classes[i] for i in labels})
    if len(present) < 2:
        # One class makes every metric trivially perfect (macro-F1 1.000 +- 0.000): refuse rather than report it.
        raise TesseraError(
            f"the labeled data has {len(present)} class ({', '.join(present)}) among its {len(images)} usable images; "
            "a classification evaluation needs at least two"
        )
    return LabeledSet(
        images=images,
        labels=np.asarray(labels, dtype=np.int64),
        classes=classes,
        sources=sources,
        meta=pd.DataFrame(rows),
        excluded=excluded,
        data_key=digest.hexdigest()[:16],
    )


def records_from_csv(csv_path: str | Path) -> list[Record]:
    """``path,label[,extra...]`` with paths relative to the CSV; missing files are one error listing them."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise TesseraError(f"{csv_path}: label file not found")
    table = _read_label_table(csv_path)
    base = csv_path.parent
    records, missing = [], []
    extra_cols = [c for c in table.columns if c not in ("path", "label")]
    for row in table.to_dict("records"):
        path = Path(str(row["path"]))
        full = path if path.is_absolute() else base / path
        if not full.is_file():
            missing.append(str(row["path"]))
            continue
        extra = {c: row[c] for c in extra_cols}
        records.append(Record(source=str(row["path"]), label=row["label"], path=full, extra=extra))
    if missing:
        shown = ", ".join(missing[:10]) + (f", ... ({len(missing) - 10} more)" if len(missing) > 10 else "")
        raise TesseraError(f"{csv_path}: {len(missing)} listed file(s) do not exist: {shown}")
    return records


def _read_label_table(csv_path: Path) -> pd.DataFrame:
    """The CSV with ``path`` and ``label`` as stripped strings; an empty file, a missing column or an empty
    label is one error naming the file (and the rows: CSV line numbers, the header being line 1).

    Labels are read as text with pandas' NA parsing off, so an empty cell is an empty label (refused), not
    a class named ``nan``, and ``"FRI "`` is the class ``FRI``.
    """
    try:
        table = pd.read_csv(csv_path)
        if "label" in table.columns and "path" in table.columns:
            text = pd.read_csv(csv_path, usecols=["path", "label"], dtype=str, keep_default_na=False)
            table["path"] = text["path"].str.strip()
            table["label"] = text["label"].str.strip()
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TesseraError(f"{csv_path}: not a readable label CSV ({first}; need a header path,label)") from None
    missing_cols = [c for c in ("path", "label") if c not in table.columns]
    if missing_cols:
        raise TesseraError(f"{csv_path}: missing column(s) {missing_cols} (need path,label)")
    if table.empty:
        raise TesseraError(f"{csv_path}: no rows below the header path,label")
    empty = [i + 2 for i, label in enumerate(table["label"]) if label == ""]
    if empty:
        shown = ", ".join(map(str, empty[:10])) + (f", ... ({len(empty) - 10} more)" if len(empty) > 10 else "")
        raise TesseraError(f"{csv_path}: {len(empty)} row(s) with an empty label (line(s) {shown})")
    return table


def _has_image_suffix(path: Path) -> bool:
    return has_readable_suffix(path)


def records_from_folders(root: str | Path) -> list[Record]:
    """One sub-folder per class; every image file inside (recursively) is a sample of that class."""
    root = Path(root)
    records = []
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for f in sorted(class_dir.rglob("*")):
            if f.is_file() and _has_image_suffix(f):
                records.append(Record(source=str(f.relative_to(root)), label=class_dir.name, path=f))
    if not records:
        raise TesseraError(f"{root}: no class sub-folders with images ({', '.join(IMAGE_SUFFIXES)})")
    return records


def records_from_path(path: str | Path) -> list[Record]:
    """A CSV file, a folder holding ``labels.csv``, or a folder of class folders."""
    path = Path(path)
    if path.is_file():
        return records_from_csv(path)
    if path.is_dir():
        if (path / "labels.csv").is_file():
            return records_from_csv(path / "labels.csv")
        return records_from_folders(path)
    raise TesseraError(f"{path}: no such labeled data (expected a CSV file or a folder)")


def load_labeled(
    path: str | Path, hdu: int | None = None, max_per_class: int | None = None, seed: int = 0,
    max_nan_fraction: float | None = None, stretch: str = "zscale"
) -> LabeledSet:
    """Read a plain labeled set (CSV or class folders) into a :class:`LabeledSet`."""
    records = subset_records(records_from_path(path), max_per_class, seed)
    return build_labeled_set(records, hdu=hdu, max_nan_fraction=max_nan_fraction, stretch=stretch)
