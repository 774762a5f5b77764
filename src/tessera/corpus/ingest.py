"""The ingest job: inputs -> planes -> tiles -> filters -> ZScale -> float16 shards + manifest.

The store's file names are defined in ``tessera.corpus.layout`` (DESIGN §3.2); the reader is
``tessera.corpus.store``. ``skipped.parquet`` lists every input that yields no cutout (skipped, all tiles
dropped, missing, unreadable directory, dead symlink, other channel count) and every malformed product
inside an input; the manifest is sorted by input path.

Resumability (seed 000 §3.4 "extensible" corpus): each input has a content key (absolute path + size +
mtime). Shards are written to a temporary name, fsynced and renamed; the journal record follows only
after, so a kill at any moment leaves either no record (the input is redone, overwriting its shards
with identical bytes under the same deterministic names) or a complete one (the input is skipped on
re-run). The manifest is a pure function of the journal, so re-running a finished ingest writes a
byte-identical manifest, and new inputs are appended by adding their records.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import glob
import hashlib
import json
import logging
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tessera.config import load_saved_config, save_config
from tessera.corpus.config import IngestConfig
from tessera.corpus.layout import CONFIG, JOURNAL, LOCK, MANIFEST, REPORT, SHARDS, SKIPPED
from tessera.corpus.filters import DROP_REASONS, KEPT_REASONS, drop_reason, nan_fraction, pixel_stats
from tessera.corpus.normalize import minmax_normalize, zscale_normalize
from tessera.corpus.pdf import ink_bright, ink_fraction, iter_pdf_planes, should_invert
from tessera.corpus.readers import Plane, PlaneSkip, detect_format, iter_planes
from tessera.corpus.tiling import central_box, plan_tiles
from tessera.errors import TesseraError
from tessera.io import atomic_open, atomic_write_text, file_identity, fsync_dir, is_temp_name
from tessera.outputs import check_out_vs_inputs, clear_directory
from tessera.progress import progress_bar

log = logging.getLogger(__name__)

# Line-art drop reasons (corpus/pdf.py), reported only when they occur so radio reports keep their keys.
SHEET_DROP_REASONS = ("low_ink",)
SPECTRUM_DROP_REASONS = ("all_missing",)  # a spectrum with no valid channel on the store's grid

# Manifest columns in order, with their dtypes (fixed so that the parquet bytes are reproducible).
MANIFEST_COLUMNS: dict[str, str] = {
    "path": "string",
    "source": "string",
    "format": "string",
    "hdu": "int32",
    "dataset": "string",
    "plane": "int32",
    "x": "int32",
    "y": "int32",
    "h": "int32",
    "w": "int32",
    "channels": "int32",
    "ra": "float64",
    "dec": "float64",
    "raw_min": "float64",
    "raw_max": "float64",
    "raw_mean": "float64",
    "raw_std": "float64",
    "raw_median": "float64",
    "shard": "string",
    "offset": "int64",
    "input_key": "string",
}
SKIPPED_COLUMNS: dict[str, str] = {
    "path": "string",
    "hdu": "int32",
    "dataset": "string",
    "plane": "int32",
    "reason": "string",
    "detail": "string",
}


# ---------------------------------------------------------------- inputs


def expand_inputs(
    inputs: Sequence[str | Path], exclude: Path | None = None
) -> tuple[list[tuple[Path, str]], list[dict[str, str]]]:
    """Files, directories (recursive) and glob patterns -> sorted unique ``(absolute file, source name)`` and problems.

    The source name of a file is the name of the input argument it came from (a directory's name, a
    glob's directory, or a file's parent directory). Hidden files and anything under ``exclude`` (the
    store itself) are ignored. Nothing given is dropped without a word: every input that cannot be
    followed comes back in ``problems`` as ``{"path", "reason", "detail"}`` with reason ``missing`` (no
    such file or no match), ``unreadable_dir`` (a directory that cannot be listed, given or nested),
    ``broken_link`` (a dangling symlink) or ``link_loop`` (a symlink cycle).
    """
    found: dict[Path, str] = {}
    problems: list[dict[str, str]] = []
    exclude = exclude.resolve() if exclude is not None else None

    def problem(path: str | Path, reason: str, detail: str) -> None:
        problems.append({"path": str(path), "reason": reason, "detail": f"{path}: {detail}"})

    def add(path: Path, source: str) -> None:
        path = path.resolve()
        if exclude is not None and (path == exclude or exclude in path.parents):
            return
        if path.name.startswith("."):
            return
        found.setdefault(path, source)

    for item in inputs:
        text = str(item)
        path = Path(text).expanduser()
        if path.is_file():
            add(path, path.resolve().parent.name)
        elif path.is_dir():
            for sub in _walk_files(path, problem, exclude):
                add(sub, path.resolve().name)
        elif path.is_symlink():
            _link_problem(path, problem)
        elif glob.has_magic(text):
            matches = sorted(Path(m) for m in glob.glob(os.path.expanduser(text), recursive=True))
            files = [m for m in matches if m.is_file()]
            for m in matches:
                if m.is_symlink() and not m.exists():
                    _link_problem(m, problem)
            if not files and not _problems_for(problems, matches):
                problem(text, "missing", "no such file or no match")
            for m in files:
                add(m, m.resolve().parent.name)
        else:
            problem(text, "missing", "no such file or no match")
    return sorted(found.items()), problems


def _problems_for(problems: list[dict[str, str]], paths: Iterable[Path]) -> bool:
    names = {str(p) for p in paths}
    return any(p["path"] in names for p in problems)


def _link_problem(path: Path, problem: Callable[[str | Path, str, str], None]) -> None:
    """A symlink that leads nowhere: a cycle (ELOOP) or a dangling target."""
    try:
        path.resolve(strict=True)
    except RuntimeError:  # Python < 3.13 reports a symlink loop as RuntimeError
        problem(path, "link_loop", "symlink loop")
        return
    except OSError as exc:
        if getattr(exc, "errno", None) == 40:  # ELOOP
            problem(path, "link_loop", "symlink loop")
        else:
            problem(path, "broken_link", f"dangling symlink to {os.readlink(path)}")
        return


def _walk_files(root: Path, problem: Callable[[str | Path, str, str], None], exclude: Path | None) -> list[Path]:
    """Every non-hidden file below ``root`` (sorted), reporting unreadable directories and dead symlinks.

    ``os.walk`` with ``onerror`` is used instead of ``Path.rglob``, which skips a directory it cannot list
    without telling anyone. Symlinked directories are not followed (no cycles).
    """
    files: list[Path] = []

    def onerror(exc: OSError) -> None:
        where = exc.filename or root
        problem(where, "unreadable_dir", f"cannot list directory ({type(exc).__name__}: {exc.strerror or exc})")

    for dirpath, dirnames, filenames in os.walk(root, onerror=onerror):
        base = Path(dirpath)
        if exclude is not None and (base.resolve() == exclude or exclude in base.resolve().parents):
            dirnames[:] = []
            continue
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for d in list(dirnames):
            if (base / d).is_symlink():
                dirnames.remove(d)  # not followed; its files are not inputs of this directory
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            sub = base / name
            if sub.is_symlink() and not sub.exists():
                _link_problem(sub, problem)
            elif sub.is_file():
                files.append(sub)
    return sorted(files)


def content_key(path: Path) -> str:
    """A short hash of the absolute path, size and modification time: a changed file is a new input."""
    # The "|"-joined text is kept as it was so the shard names of existing stores stay valid on re-run.
    resolved, size, mtime_ns = file_identity(path)
    text = f"{resolved}|{size}|{mtime_ns}"
    return hashlib.sha1(text.encode()).hexdigest()[:16]


# ---------------------------------------------------------------- one input (runs in a worker)


def write_shard(shard_dir: Path, name: str, arr: np.ndarray) -> None:
    """Write ``arr`` (N, C, H, W) float16 as ``shard_dir/name`` atomically: temp file, fsync, rename."""
    with atomic_open(shard_dir / name) as fh:
        np.save(fh, arr, allow_pickle=False)


class _ShardBuffers:
    """Collects normalized cutouts per shape and writes a shard when ``shard_size`` cutouts are buffered.

    Shard names ``<key>-<n>.npy`` are allocated in the order shapes first appear, so they are
    deterministic for a given input and settings.
    """

    def __init__(self, shard_dir: Path, key: str, shard_size: int):
        self.shard_dir, self.key, self.shard_size = shard_dir, key, shard_size
        self.open: dict[tuple[int, ...], tuple[str, list[np.ndarray]]] = {}
        self.names: list[str] = []

    def add(self, cutout: np.ndarray) -> tuple[str, int]:
        """cutout: (C, H, W) float16 -> (shard name, offset in it)."""
        shape = cutout.shape
        if shape not in self.open:
            name = f"{self.key}-{len(self.names):04d}.npy"
            self.names.append(name)
            self.open[shape] = (name, [])
        name, items = self.open[shape]
        items.append(cutout)
        offset = len(items) - 1
        if len(items) >= self.shard_size:
            self._flush(shape)
        return name, offset

    def _flush(self, shape: tuple[int, ...]) -> None:
        name, items = self.open.pop(shape)
        write_shard(self.shard_dir, name, np.stack(items))

    def close(self) -> None:
        for shape in list(self.open):
            self._flush(shape)


def _tile_centres_radec(wcs, boxes: list[tuple[int, int, int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """ICRS RA/Dec (deg) of tile centres ``(y, x, h, w)`` in 0-based pixels; NaN where the WCS gives none."""
    n = len(boxes)
    if wcs is None or n == 0:
        return np.full(n, np.nan), np.full(n, np.nan)
    from tessera.corpus.readers import quiet_astropy

    arr = np.asarray(boxes, dtype=np.float64)
    # The centre of pixels x..x+w-1 is at x + (w - 1) / 2 in 0-based pixel coordinates.
    xc = arr[:, 1] + (arr[:, 3] - 1) / 2.0
    yc = arr[:, 0] + (arr[:, 2] - 1) / 2.0
    with quiet_astropy():
        coords = wcs.pixel_to_world(xc, yc)
        if hasattr(coords, "icrs"):
            coords = coords.icrs
            return np.asarray(coords.ra.deg, dtype=np.float64), np.asarray(coords.dec.deg, dtype=np.float64)
    lon, lat = wcs.pixel_to_world_values(xc, yc)
    return np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)


def _sheet_plane(plane: Plane, fmt: str, cfg: IngestConfig) -> bool:
    """Apply the line-art polarity rule to ``plane`` in place (corpus/pdf.py); True when its tiles are
    stretched linearly (full scale) instead of by ZScale."""
    invert = should_invert(fmt, cfg.invert)
    linear = cfg.stretch == "linear" or (cfg.stretch == "auto" and (fmt == "pdf" or invert))
    if invert or linear or cfg.min_ink_fraction > 0:
        plane.data = ink_bright(plane.data, invert)
    return linear


def _plane_rows(plane: Plane, cfg: IngestConfig, shards: _ShardBuffers, base: dict, dropped: Counter,
                linear: bool = False) -> list[dict] | str:
    """Tile, filter and normalize one plane; returns its manifest rows or the reason it yields none."""
    _, h, w = plane.data.shape
    boxes = plan_tiles(h, w, cfg.tile, cfg.effective_stride, cfg.min_tile)
    if isinstance(boxes, str):
        return boxes
    ra, dec = _tile_centres_radec(plane.wcs, boxes)
    rows = []
    for (y, x, th, tw), r, d in zip(boxes, ra, dec):
        tile = plane.data[:, y : y + th, x : x + tw]
        # The stored field: the whole tile, or its centre (center_crop). Filters and raw statistics describe what
        # is stored; the stretch sees the whole tile, as the evaluation's center_crop cuts normalized images.
        cy, cx, kh, kw = central_box(th, tw, cfg.center_crop) if cfg.center_crop is not None else (0, 0, th, tw)
        kept = tile[:, cy : cy + kh, cx : cx + kw]
        reason = drop_reason(kept, cfg.max_nan_fraction)
        if reason is not None:
            dropped[reason] += 1
            continue
        if cfg.min_ink_fraction > 0 and ink_fraction(kept) < cfg.min_ink_fraction:
            dropped["low_ink"] += 1  # a near-blank sheet margin (issue 20)
            continue
        if cfg.max_nan_fraction > 0 and nan_fraction(kept) > 0:
            dropped["kept_with_blanks"] += 1  # counted, not dropped: ZScale on the finite pixels, blanks -> 0
        stats = pixel_stats(kept)
        # seed 000 §3.2 ZScale, or the sheet's own [0, 1] scale; stored compactly (DESIGN §3.2)
        if linear:
            cutout = np.nan_to_num(tile, nan=0.0)
        else:
            cutout = minmax_normalize(tile) if cfg.stretch == "minmax" else zscale_normalize(tile)
        cutout = cutout[:, cy : cy + kh, cx : cx + kw].astype(np.float16)
        y, x, th, tw = y + cy, x + cx, kh, kw
        shard, offset = shards.add(cutout)
        rows.append(
            {
                **base,
                "hdu": plane.hdu,
                "dataset": plane.dataset,
                "plane": plane.plane,
                "x": x,
                "y": y,
                "h": th,
                "w": tw,
                "channels": int(tile.shape[0]),
                "ra": float(r),
                "dec": float(d),
                **stats,
                "shard": shard,
                "offset": offset,
            }
        )
    return rows


def _skip_entry(item: PlaneSkip) -> dict:
    return {"hdu": item.hdu, "dataset": item.dataset, "plane": item.plane, "reason": item.reason, "detail": item.detail}


def process_input(path: str, key: str, source: str, cfg: IngestConfig, store: str) -> dict:
    """Read, tile, filter, normalize one input and write its shards; returns its journal record.

    Unreadable files are not errors here: they give a record with status "skipped" and a one-line
    reason, so the job goes on (issue: bad inputs are skipped and recorded).
    """
    shard_dir = Path(store) / SHARDS
    fmt = detect_format(path) or "unknown"
    st = os.stat(path)
    record: dict[str, Any] = {
        "path": path,
        "key": key,
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "source": source,
        "format": fmt,
        "status": "done",
        "reason": "",
        "planes": 0,
        "tiles": 0,
        "dropped": {},
        "plane_skips": [],
        "notes": [],
        "shards": [],
        "rows": [],
    }
    base = {"path": path, "source": source, "format": fmt, "input_key": key}
    dropped: Counter = Counter()
    shards = _ShardBuffers(shard_dir, key, cfg.shard_size)
    candidates = 0
    try:
        planes = iter_pdf_planes(path, cfg.dpi) if fmt == "pdf" else iter_planes(path, to_gray=cfg.to_gray)
        for item in planes:
            if isinstance(item, PlaneSkip):
                record["plane_skips"].append(_skip_entry(item))
                continue
            record["planes"] += 1
            if item.note and item.note not in record["notes"]:
                record["notes"].append(item.note)
            linear = _sheet_plane(item, fmt, cfg)
            rows = _plane_rows(item, cfg, shards, base, dropped, linear)
            if isinstance(rows, str):
                _, h, w = item.data.shape
                detail = f"{h}x{w} is smaller than min_tile {cfg.min_tile}"
                record["plane_skips"].append(_skip_entry(PlaneSkip(rows, detail, item.hdu, item.dataset, item.plane)))
                continue
            candidates += 1
            record["rows"].extend(rows)
        shards.close()
    except TesseraError as exc:
        record.update(status="skipped", reason=str(exc), rows=[])
        return record
    record["shards"] = shards.names
    record["tiles"] = len(record["rows"])
    record["dropped"] = {r: dropped[r] for r in DROP_REASONS + SHEET_DROP_REASONS if dropped[r]}
    if dropped["kept_with_blanks"]:
        record["kept"] = {"kept_with_blanks": dropped["kept_with_blanks"]}
    if candidates == 0:
        details = sorted({f"{s['reason']}: {s['detail']}" for s in record["plane_skips"]})
        why = "; ".join(details)[:300] if details else "no image data"
        record.update(status="skipped", reason=f"{path}: no usable image ({why})")
    return record


# ---------------------------------------------------------------- the journal


_RECORD_KEYS = ("path", "key", "status", "rows", "shards", "plane_skips", "dropped")


def _parse_record(line: bytes) -> dict | None:
    """A journal line -> its record, or None when it is not a complete record (corrupt bytes, wrong shape)."""
    try:
        rec = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(rec, dict) or any(k not in rec for k in _RECORD_KEYS):
        return None
    return rec


def read_journal(store: Path) -> dict[str, dict]:
    """Latest record per input path.

    A last line cut by a kill is dropped (its input is redone). A corrupt line elsewhere (a disk error, an
    editor) is treated the same way: it is dropped with a one-line warning naming its line number, its
    input has no record any more and is redone, and the journal is rewritten without it (atomically), so
    the store heals instead of failing with a traceback.
    """
    path = store / JOURNAL
    if not path.exists():
        return {}
    records: dict[str, dict] = {}
    raw = path.read_bytes()
    kept: list[bytes] = []
    bad: list[int] = []
    torn = False
    for number, line in enumerate(raw.splitlines(keepends=True), start=1):
        if not line.endswith(b"\n"):
            torn = True  # torn write from a killed run: everything before it is intact
            break
        rec = _parse_record(line)
        if rec is None:
            bad.append(number)
            continue
        records[rec["path"]] = rec
        kept.append(line)
    if bad:
        shown = ", ".join(map(str, bad[:10])) + (" ..." if len(bad) > 10 else "")
        log.warning("tessera: warning: %s: dropped %d corrupt journal line(s) (line %s); their inputs are redone",
                    path, len(bad), shown)
        with atomic_open(path) as fh:
            fh.write(b"".join(kept))
    elif torn:
        with open(path, "r+b") as fh:
            fh.truncate(sum(len(x) for x in kept))
    return records


def append_journal(store: Path, record: dict) -> None:
    """Append one record durably (one write of one line, then fsync)."""
    line = json.dumps(record, sort_keys=True, allow_nan=True) + "\n"
    with open(store / JOURNAL, "a", encoding="utf-8") as fh:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())


# ---------------------------------------------------------------- manifest and report


def _frame(rows: list[dict], columns: dict[str, str]):
    import pandas as pd

    frame = pd.DataFrame(rows, columns=list(columns))
    return frame.astype(columns).reset_index(drop=True)


def _write_parquet(frame, path: Path) -> None:
    with atomic_open(path) as fh:
        frame.to_parquet(fh, index=False, engine="pyarrow", compression="zstd")


def build_manifest(records: Iterable[dict]):
    """Manifest DataFrame: rows of the done records, sorted by input path then their tile order."""
    rows: list[dict] = []
    for rec in sorted(records, key=lambda r: r["path"]):
        if rec["status"] == "done":
            rows.extend(rec["rows"])
    return _frame(rows, MANIFEST_COLUMNS)


def build_skipped(records: Iterable[dict], problems: Iterable[dict[str, str]] = ()):
    """One row per input that yields no cutout, and per malformed product inside an input.

    Inputs that could not be followed (``problems`` of :func:`expand_inputs`: missing, unreadable
    directory, dead symlink) and skipped inputs have ``hdu = plane = -1``; an input that was read but
    whose tiles were all dropped (e.g. an all-NaN FITS) gets a ``no_cutouts`` row with the drop counts.
    """
    rows: list[dict] = []
    for rec in sorted(records, key=lambda r: r["path"]):
        if rec["status"] == "skipped":
            rows.append({"path": rec["path"], "hdu": -1, "dataset": "", "plane": -1, "reason": "input_skipped",
                         "detail": rec["reason"]})
        elif rec["tiles"] == 0:
            counts = ", ".join(f"{k} {v}" for k, v in rec["dropped"].items()) or "no tiles"
            rows.append({"path": rec["path"], "hdu": -1, "dataset": "", "plane": -1, "reason": "no_cutouts",
                         "detail": f"{rec['path']}: every tile was dropped ({counts})"})
        for s in rec["plane_skips"]:
            rows.append({"path": rec["path"], **s})
    for item in sorted(problems, key=lambda p: p["path"]):
        rows.append({"path": item["path"], "hdu": -1, "dataset": "", "plane": -1, "reason": item["reason"],
                     "detail": item["detail"]})
    return _frame(rows, SKIPPED_COLUMNS)


def summarize(records: dict[str, dict], problems: list[dict[str, str]], run: dict) -> dict:
    """The report: totals over the whole store, per input, and this run's throughput."""
    done = [r for r in records.values() if r["status"] == "done"]
    skipped = [r for r in records.values() if r["status"] == "skipped"]
    dropped = Counter()
    kept = Counter()
    plane_skips = Counter()
    for r in records.values():
        dropped.update(r["dropped"])
        kept.update(r.get("kept", {}))
        plane_skips.update(s["reason"] for s in r["plane_skips"])
    return {
        "inputs_read": len(done),
        "inputs_skipped": len(skipped) + len(problems),
        "tiles_written": sum(r["tiles"] for r in done),
        "tiles_dropped": {k: dropped[k] for k in DROP_REASONS}
        | {k: dropped[k] for k in SHEET_DROP_REASONS + SPECTRUM_DROP_REASONS if dropped[k]},
        "tiles_kept": {k: kept[k] for k in KEPT_REASONS},
        "products_skipped": dict(sorted(plane_skips.items())),
        "skipped_inputs": [{"path": r["path"], "reason": r["reason"]} for r in sorted(skipped, key=lambda r: r["path"])]
        + [{"path": p["path"], "reason": p["detail"]} for p in problems],
        "per_input": [
            {"path": r["path"], "status": r["status"], "tiles": r["tiles"], "dropped": r["dropped"],
             "planes": r["planes"]}
            for r in sorted(records.values(), key=lambda r: r["path"])
        ],
        "run": run,
    }


# ---------------------------------------------------------------- one channel count per store


def _record_channels(rec: dict) -> set[int]:
    return {int(row["channels"]) for row in rec["rows"]}


def store_channels(records: dict[str, dict], previous: set[str]) -> int | None:
    """The channel count of the store: that of the inputs done before this run, else the most common one.

    The majority (by inputs, then cutouts, then the smaller C) rather than the first input read, so one odd
    RGBA PNG among FITS never decides, and the answer does not depend on the order workers finish in.
    """
    established = {c for p in previous if p in records and records[p]["status"] == "done"
                   for c in _record_channels(records[p])}
    if len(established) == 1:
        return established.pop()
    votes: Counter = Counter()
    tiles: Counter = Counter()
    for rec in records.values():
        if rec["status"] == "done":
            for c in _record_channels(rec):
                votes[c] += 1
                tiles[c] += sum(1 for row in rec["rows"] if int(row["channels"]) == c)
    if not votes:
        return None
    return min(votes, key=lambda c: (-votes[c], -tiles[c], c))


def channel_mismatch_record(rec: dict, channels: int) -> dict:
    """``rec`` turned into a skipped record: its cutouts have another channel count than the store's."""
    found = sorted(_record_channels(rec))
    reason = (
        f"{rec['path']}: has {'/'.join(map(str, found))} channel(s), the store has {channels} "
        "(one channel count per store; pass --gray to convert colour images to one channel)"
    )
    return dict(rec, status="skipped", reason=reason, rows=[], shards=[], tiles=0)


# ---------------------------------------------------------------- the store directory


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def acquire_lock(store: Path) -> Path:
    """One writer per store: a lock file holding our pid; a stale lock from a killed run is taken over."""
    lock = store / LOCK
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                pid = int(lock.read_text().strip() or 0)
            except (OSError, ValueError):
                pid = 0
            if pid and pid != os.getpid() and _pid_alive(pid):
                raise TesseraError(f"{store}: another ingest (pid {pid}) is writing this store") from None
            lock.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(str(os.getpid()))
        return lock
    raise TesseraError(f"{store}: could not take the store lock {lock}")


def open_store_for_writing(out: Path, cfg: IngestConfig, overwrite: bool) -> tuple[Path, Path]:
    """Create the store, or reopen an existing one for resume/append after checking its settings match.

    Returns ``(store, lock)``. The lock is taken before anything is removed: ``--overwrite`` of a store that
    another ingest is writing is refused (it used to delete the store under the running ingest), and a
    wipe keeps the lock file itself.
    """
    if out.exists() and not out.is_dir():
        raise TesseraError(f"{out}: exists and is not a directory")
    is_store = (out / JOURNAL).exists() or (out / CONFIG).exists()
    if out.is_dir() and any(out.iterdir()) and not is_store and not overwrite:
        raise TesseraError(f"{out}: output directory exists and is not empty (pass --overwrite to replace it)")
    out.mkdir(parents=True, exist_ok=True)
    lock = acquire_lock(out)
    try:
        if overwrite:
            clear_directory(out, keep=[LOCK])
        elif is_store and (out / CONFIG).exists():
            saved = load_saved_config(IngestConfig, out)
            if saved.content_settings() != cfg.content_settings():
                raise TesseraError(
                    f"{out}: store was built with {saved.content_settings()}, not {cfg.content_settings()} "
                    "(use the same settings to resume/append, or --overwrite)"
                )
        (out / SHARDS).mkdir(exist_ok=True)
    except BaseException:
        lock.unlink(missing_ok=True)
        raise
    return out, lock


def _clean_store(store: Path, records: dict[str, dict]) -> None:
    """Remove temp files of killed runs and shards no current record refers to (e.g. of a changed input)."""
    referenced = {name for r in records.values() if r["status"] == "done" for name in r["shards"]}
    for item in (store / SHARDS).iterdir():
        if is_temp_name(item.name) or (item.suffix == ".npy" and item.name not in referenced):
            item.unlink()
    for item in store.iterdir():
        if is_temp_name(item.name) and item.is_file():
            item.unlink()


def finalize_store(store: Path, records: dict[str, dict], problems: Iterable[dict[str, str]] = ()) -> None:
    """Rebuild manifest.parquet and skipped.parquet from the journal records (deterministic bytes)."""
    _write_parquet(build_manifest(records.values()), store / MANIFEST)
    _write_parquet(build_skipped(records.values(), problems), store / SKIPPED)


# ---------------------------------------------------------------- worker processes

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _exit_when_orphaned(parent: int, period: float = 1.0) -> None:
    """Watchdog thread body: leave as soon as the parent is gone (we get re-parented)."""
    while True:
        if os.getppid() != parent:
            os._exit(1)
        time.sleep(period)


def _worker_init(parent: int) -> None:
    """ProcessPool initializer: a worker must die with its parent, even on SIGKILL (which runs no cleanup).

    Linux: ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` asks the kernel to kill us when the parent dies; a
    parent-pid watchdog thread is the fallback elsewhere (and covers the race where the parent died before
    prctl ran).
    """
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux/glibc: the watchdog alone
        pass
    if os.getppid() != parent:
        os._exit(1)
    threading.Thread(target=_exit_when_orphaned, args=(parent,), daemon=True, name="tessera-orphan-watchdog").start()


# ---------------------------------------------------------------- the job


def _run_tasks(tasks: list[tuple[str, str, str]], cfg: IngestConfig, store: Path, on_record: Callable[[dict], None],
               progress: bool):
    """Process inputs (in worker processes when cfg.workers > 1); ``on_record`` runs in this process, in completion
    order. Spectrum stores read each input with corpus/spectrum_ingest.py instead of tiling image planes."""
    worker = process_input
    if cfg.kind == "spectrum":
        from tessera.corpus.spectrum_ingest import process_spectrum_input as worker
    bar = progress_bar(total=len(tasks), desc="ingest", unit="file", disable=not progress, leave=False)
    try:
        if cfg.workers == 1 or len(tasks) <= 1:
            for path, key, source in tasks:
                on_record(worker(path, key, source, cfg, str(store)))
                bar.update(1)
            return
        pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=min(cfg.workers, len(tasks)), initializer=_worker_init, initargs=(os.getpid(),)
        )
        with pool:
            futures = [pool.submit(worker, p, k, s, cfg, str(store)) for p, k, s in tasks]
            try:
                for fut in concurrent.futures.as_completed(futures):
                    on_record(fut.result())
                    bar.update(1)
            except BaseException:
                for fut in futures:
                    fut.cancel()
                raise
    finally:
        bar.close()


def _enforce_one_channel_count(store: Path, records: dict[str, dict], previous: set[str]) -> None:
    """Skip (and journal as skipped) every input whose cutouts have another channel count than the store's."""
    channels = store_channels(records, previous)
    if channels is None:
        return
    for path in sorted(records):
        rec = records[path]
        if rec["status"] == "done" and _record_channels(rec) - {channels}:
            skipped = channel_mismatch_record(rec, channels)
            append_journal(store, skipped)
            records[path] = skipped


def run_ingest(
    inputs: Sequence[str | Path], out: str | Path, cfg: IngestConfig | None = None, overwrite: bool = False,
    progress: bool = True, shard: tuple[int, int] | None = None,
) -> dict:
    """Ingest ``inputs`` into the CutoutStore ``out`` (created, resumed or appended to); returns the report dict.

    Raises TesseraError when no input at all could be read, and before any work when ``out`` is, is inside
    or contains an input (``--overwrite`` would delete it). ``shard=(I, N)``: ingest only part I of N of the
    inputs into ``out/parts/`` (merged by :func:`tessera.corpus.shards.merge_store`).
    """
    cfg = cfg or IngestConfig()
    cfg.validate()
    out = Path(out)
    check_out_vs_inputs(out, [i for i in inputs if not glob.has_magic(str(i))])
    files, problems = expand_inputs(inputs, exclude=out)
    if not files and not problems:
        raise TesseraError("no input files given")
    cfg = _resolve_kind(cfg, None if overwrite else out, [p for p, _ in files])
    if shard is not None:
        if cfg.kind == "spectrum":
            raise TesseraError("--shard: spectrum stores are ingested by one process (every part would plan its own "
                               "grid); drop --shard")
        from tessera.corpus.shards import ingest_part

        return ingest_part(files, problems, out, cfg, shard, overwrite=overwrite, progress=progress)
    report, records = ingest_files(files, problems, out, cfg, overwrite=overwrite, progress=progress)
    this_run = [records[str(p)] for p, _ in files if str(p) in records]
    if not any(r["status"] == "done" for r in this_run):
        reasons = [r["reason"] for r in this_run][:3] + [p["detail"] for p in problems][:3]
        raise TesseraError(f"nothing could be read from the inputs ({'; '.join(reasons)[:400]})")
    return report


def _resolve_kind(cfg: IngestConfig, out: Path | None, files: list[Path]) -> IngestConfig:
    """``cfg`` with ``kind`` decided (corpus/spectrum_ingest.py ``resolve_kind``; ``out`` None: not from an existing
    store, which --overwrite replaces) and a ``positions`` catalogue made absolute, as the store's config.yaml
    keeps them."""
    import dataclasses

    from tessera.corpus.spectrum_ingest import resolve_kind

    kind = resolve_kind(cfg, out, files)
    positions = str(Path(cfg.positions).resolve()) if cfg.positions else None
    if positions is not None and not Path(positions).is_file():
        raise TesseraError(f"config key 'positions': {cfg.positions}: no such catalogue file")
    return dataclasses.replace(cfg, kind=kind, positions=positions)


def write_store_kind(store: Path, cfg: IngestConfig, files: list[Path]) -> None:
    """``store.json`` (corpus/layout.py): an image store's rank, or a spectrum store's grid (planned from ``files``
    when the store is new, corpus/spectrum_ingest.py)."""
    from tessera.corpus.layout import STORE_INFO

    if cfg.kind == "spectrum":
        from tessera.corpus.spectrum_ingest import ensure_grid

        ensure_grid(store, files, cfg)
    elif not (store / STORE_INFO).is_file():
        atomic_write_text(store / STORE_INFO, json.dumps({"kind": "image", "ndim": 2}, indent=2))


def ingest_files(files: list[tuple[Path, str]], problems: list[dict[str, str]], out: Path, cfg: IngestConfig,
                 overwrite: bool = False, progress: bool = True, one_channel_count: bool = True
                 ) -> tuple[dict, dict[str, dict]]:
    """Ingest the expanded ``files`` into store ``out`` (locked meanwhile); returns (report, journal records).

    ``one_channel_count=False`` leaves the channel rule to whoever merges this store into another (a part
    of a sharded ingest sees only some inputs, so its majority is not the whole corpus').
    """
    store, lock = open_store_for_writing(out, cfg, overwrite)
    try:
        save_config(cfg, store)
        write_store_kind(store, cfg, [p for p, _ in files])
        records = read_journal(store)
        previous = {p for p, r in records.items() if r["status"] == "done"}
        _clean_store(store, records)
        tasks = []
        for path, default_source in files:
            key = content_key(path)
            old = records.get(str(path))
            if old is not None and old["key"] == key:
                continue  # finished in an earlier run
            tasks.append((str(path), key, cfg.source or default_source))
        previous -= {t[0] for t in tasks}
        stats = {"bytes": 0, "tiles": 0}

        def on_record(record: dict) -> None:
            append_journal(store, record)
            records[record["path"]] = record
            stats["bytes"] += record["size"]
            stats["tiles"] += record["tiles"]

        start = time.perf_counter()
        _run_tasks(tasks, cfg, store, on_record, progress)
        seconds = time.perf_counter() - start
        if one_channel_count:
            _enforce_one_channel_count(store, records, previous)
        fsync_dir(store / SHARDS)
        _clean_store(store, records)
        finalize_store(store, records, problems)
        run = {
            "inputs_processed": len(tasks),
            "inputs_already_done": len(files) - len(tasks),
            "seconds": round(seconds, 3),
            "mb_read": round(stats["bytes"] / 1e6, 3),
            "mb_per_s": round(stats["bytes"] / 1e6 / seconds, 3) if seconds > 0 else None,
            "tiles_per_s": round(stats["tiles"] / seconds, 3) if seconds > 0 else None,
            "workers": cfg.workers,
        }
        report = summarize(records, problems, run)
        report["store"] = str(store)
        if cfg.kind == "spectrum":
            report["kind"] = "spectrum"
        atomic_write_text(store / REPORT, json.dumps(report, indent=2, allow_nan=True))
    finally:
        lock.unlink(missing_ok=True)
    return report, records
