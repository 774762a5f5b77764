"""Ingesting with N independent processes (cluster array jobs), then merging into one store (issue 19).

Process ``I`` of ``N`` (``tessera ingest ... --shard I/N``, 0-based) takes every N-th input of the sorted,
expanded input list (``files[I::N]``, so the split depends only on the inputs) that the store has not done yet,
and ingests it into its own small store ``STORE/parts/part-0000I-of-0000N/`` (journal, shards, its own lock:
parts never write the same file), its state in ``STORE/parts/part-0000I-of-0000N.json`` ("done" once finished).
Shard names carry the input's content key (corpus/ingest.py), so a part's shards are exactly the files one
process would write. :func:`merge_store` checks that all N parts are there, finished and made with the same
content settings, moves their shards into ``STORE/shards/``, appends their journal records, applies the
one-channel-count rule over the whole corpus (a part sees only its own inputs) and rebuilds the manifest: the
same ``manifest.parquet`` and ``skipped.parquet`` bytes as one process. A merge interrupted at any point, rerun,
completes; a merge with no parts does nothing.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from tessera.config import load_saved_config
from tessera.corpus.config import IngestConfig
from tessera.corpus.ingest import (
    _clean_store,
    _enforce_one_channel_count,
    append_journal,
    content_key,
    finalize_store,
    ingest_files,
    open_store_for_writing,
    read_journal,
    summarize,
    write_store_kind,
)
from tessera.corpus.layout import CONFIG, JOURNAL, REPORT, SHARDS
from tessera.errors import TesseraError
from tessera.io import atomic_write_text, fsync_dir
from tessera.shard_spec import check_parts_complete

PARTS = "parts"


def part_dir(store: Path, index: int, count: int) -> Path:
    """The small store of part ``index`` of ``count``; its state is the sibling ``<name>.json``."""
    return Path(store) / PARTS / f"part-{index:05d}-of-{count:05d}"


def part_json(store: Path, index: int, count: int) -> Path:
    return part_dir(store, index, count).with_suffix(".json")


def read_parts(store: Path) -> list[dict]:
    """part.json of every part of ``store`` (with ``dir``), by index."""
    folder = Path(store) / PARTS
    if not folder.is_dir():
        return []
    parts = []
    for p in sorted(folder.glob("part-*.json")):
        try:
            parts.append({**json.loads(p.read_text()), "dir": str(p.with_suffix(""))})
        except (OSError, ValueError) as exc:
            raise TesseraError(f"{p}: unreadable ({exc})") from exc
    return sorted(parts, key=lambda d: d["index"])


def _check_store_settings(store: Path, cfg: IngestConfig) -> None:
    """What open_store_for_writing checks, without locking or creating the store (parts run side by side)."""
    if store.exists() and not store.is_dir():
        raise TesseraError(f"{store}: exists and is not a directory")
    if (store / CONFIG).is_file():
        saved = load_saved_config(IngestConfig, store)
        if saved.content_settings() != cfg.content_settings():
            raise TesseraError(f"{store}: store was built with {saved.content_settings()}, not "
                               f"{cfg.content_settings()} (use the same settings for every --shard)")
    elif store.is_dir() and any(p.name != PARTS for p in store.iterdir()):
        raise TesseraError(f"{store}: output directory exists and is not a cutout store")


def ingest_part(files: list[tuple[Path, str]], problems: list[dict], store: Path, cfg: IngestConfig,
                shard: tuple[int, int], overwrite: bool = False, progress: bool = True) -> dict:
    """Ingest part ``shard = (I, N)`` of the expanded ``files`` into ``store/parts/``; returns its report."""
    index, count = shard
    if overwrite:
        raise TesseraError("--overwrite with --shard: wipe the store once before starting the parts")
    _check_store_settings(store, cfg)
    others = {p["count"] for p in read_parts(store)} - {count}
    if others:
        raise TesseraError(f"{store / PARTS}: holds parts of a split into {sorted(others)[0]} processes, not "
                           f"{count}; merge them first (tessera ingest --merge) or use the same N")
    done = read_journal(store) if (store / JOURNAL).is_file() else {}
    mine = [(p, s) for k, (p, s) in enumerate(files) if k % count == index]
    todo = [(p, s) for p, s in mine if not (str(p) in done and done[str(p)]["key"] == content_key(p))]
    folder, state = part_dir(store, index, count), part_json(store, index, count)
    info = {"index": index, "count": count, "done": False, "inputs": len(todo),
            "problems": problems if index == 0 else []}  # the unreadable inputs are reported once, by part 0
    atomic_write_text(state, json.dumps(info, indent=2))
    report, _ = ingest_files(todo, info["problems"], folder, cfg, progress=progress, one_channel_count=False)
    atomic_write_text(state, json.dumps({**info, "done": True}, indent=2))
    return {**report, "shard": f"{index}/{count}", "part": str(folder)}


def _check_parts(store: Path, parts: list[dict]) -> IngestConfig:
    """All N parts present, finished, one content setting; returns the parts' config."""
    count = parts[0]["count"]
    if any(p["count"] != count for p in parts):
        raise TesseraError(f"{store / PARTS}: parts of splits into different numbers of processes")
    check_parts_complete(store, parts, count, "ingest")
    configs = [load_saved_config(IngestConfig, Path(p["dir"])) for p in parts]
    for p, c in zip(parts[1:], configs[1:], strict=True):
        if c.content_settings() != configs[0].content_settings():
            raise TesseraError(f"{store}: shard {p['index']}/{count} was ingested with {c.content_settings()}, "
                               f"shard 0/{count} with {configs[0].content_settings()}; use the same settings")
    return configs[0]


def _move_shards(part: Path, record: dict, store: Path) -> None:
    for name in record["shards"] if record["status"] == "done" else []:
        src, dst = part / SHARDS / name, store / SHARDS / name
        if src.is_file():
            os.replace(src, dst)  # same filesystem: atomic, and a rerun after a crash finds it already moved
        elif not dst.is_file():
            raise TesseraError(f"{part}: shard {name} of {record['path']} is missing; rerun that part")


def merge_store(store: str | Path) -> dict:
    """Merge the ``--shard`` parts of ``store`` into it; returns the store's report (``merged_parts`` = 0 when
    there was nothing to merge)."""
    store = Path(store)
    if not store.is_dir():
        raise TesseraError(f"--merge {store}: no such store")
    parts = read_parts(store)
    if not parts:
        if not (store / JOURNAL).is_file():
            raise TesseraError(f"--merge {store}: not a cutout store and no --shard parts in it")
        report = json.loads((store / REPORT).read_text()) if (store / REPORT).is_file() else {}
        return {**report, "store": str(store), "merged_parts": 0}
    cfg = _check_parts(store, parts)
    part_config = Path(parts[0]["dir"]) / CONFIG
    if not (store / CONFIG).is_file():  # a store made only of parts: give it the parts' config, so it is a store
        atomic_write_text(store / CONFIG, part_config.read_text())
    store, lock = open_store_for_writing(store, cfg, overwrite=False)
    try:
        atomic_write_text(store / CONFIG, part_config.read_text())  # what one process with these settings saves
        write_store_kind(store, cfg, [])
        records = read_journal(store)
        previous = {p for p, r in records.items() if r["status"] == "done"}
        problems: list[dict] = []
        merged: set[str] = set()
        for part in parts:
            folder = Path(part["dir"])
            problems += part.get("problems", [])
            for path, record in sorted(read_journal(folder).items()):
                _move_shards(folder, record, store)
                append_journal(store, record)
                records[path] = record
                merged.add(path)
        _enforce_one_channel_count(store, records, previous - merged)
        fsync_dir(store / SHARDS)
        _clean_store(store, records)
        finalize_store(store, records, problems)
        runs = [json.loads((Path(p["dir"]) / REPORT).read_text()).get("run", {}) for p in parts]
        run = {"inputs_processed": sum(r.get("inputs_processed", 0) for r in runs), "inputs_already_done": 0,
               "seconds": max((r.get("seconds", 0) for r in runs), default=0),
               "mb_read": round(sum(r.get("mb_read", 0) for r in runs), 3), "mb_per_s": None, "tiles_per_s": None,
               "workers": sum(r.get("workers", 1) for r in runs), "merged_parts": len(parts)}
        report = summarize(records, problems, run)
        report["store"] = str(store)
        atomic_write_text(store / REPORT, json.dumps(report, indent=2, allow_nan=True))
        shutil.rmtree(store / PARTS)
    finally:
        lock.unlink(missing_ok=True)
    return {**report, "merged_parts": len(parts)}
