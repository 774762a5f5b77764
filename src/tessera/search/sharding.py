"""Embedding a source with N independent processes (cluster array jobs, torchrun ranks), then merging (issue 19).

Process ``I`` of ``N`` (``--shard I/N``, 0-based) embeds a deterministic 1/N of what one process would: the set's
pending items are cut into the single-process shards (``shard_size`` rows each, named by their global index) and
process I takes the contiguous run of whole shards ``[I*S//N, (I+1)*S//N)`` of the S. Because a process embeds
exactly the chunks, and so the batches, one process would have, its shards are byte for byte the single-process
shards; it writes them into its own folder::

    EMB/<set>/parts/part-0000I-of-0000N/
        part.json                  the split (I, N), the set state it was cut from, batch; "done" when finished
        shards/000003.npy|parquet  committed exactly as in the set itself (a killed part, rerun, resumes)

:func:`merge_parts` checks that all N parts are there, finished and cut from the same set state with the same
settings, copies their shards into ``EMB/<set>/shards/``, rewrites ``table.parquet`` and removes ``parts/``; a merge
interrupted at any point, rerun, finishes the job, and a merge with nothing to merge does nothing.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tessera.errors import TesseraError
from tessera.io import atomic_open, atomic_write_text
from tessera.shard_spec import (  # noqa: F401  (parse_shard, shard_from_environment: the CLI's --shard I/N)
    check_parts_complete,
    parse_shard,
    shard_from_environment,
)

PARTS = "parts"
PART_JSON = "part.json"
# What every part of one split must agree on (besides I): the split, the set state it was cut from, the batching.
AGREE = ("count", "base_shards", "base_rows", "pending", "shard_size", "batch")


def part_range(chunks: int, index: int, count: int) -> range:
    """The chunks (shards) process ``index`` of ``count`` embeds out of ``chunks``: a contiguous, balanced run."""
    return range(index * chunks // count, (index + 1) * chunks // count)


def part_dir(set_folder: Path, index: int, count: int) -> Path:
    return Path(set_folder) / PARTS / f"part-{index:05d}-of-{count:05d}"


def _label(info: dict) -> str:
    return f"shard {info['index']}/{info['count']}"


def read_parts(set_folder: Path) -> list[dict]:
    """The part.json of every part of ``set_folder`` (with ``dir``), sorted by index."""
    folder = Path(set_folder) / PARTS
    if not folder.is_dir():
        return []
    parts = []
    for p in sorted(folder.glob(f"*/{PART_JSON}")):
        try:
            parts.append({**json.loads(p.read_text()), "dir": str(p.parent)})
        except (OSError, ValueError) as exc:
            raise TesseraError(f"{p}: unreadable ({exc})") from exc
    return sorted(parts, key=lambda d: d["index"])


def open_part(set_folder: Path, index: int, count: int, state: dict) -> Path:
    """Create (or, for a rerun of the same split, reopen) the folder of part ``index`` of ``count``.

    ``state``: the AGREE keys but ``count``. Refuses parts of another N in the set, and a rerun whose set state
    or batching differs from the part's (its shards would not be the single-process ones)."""
    others = {p["count"] for p in read_parts(set_folder)} - {count}
    if others:
        raise TesseraError(f"{Path(set_folder) / PARTS}: holds parts of a split into {sorted(others)[0]} processes, "
                           f"not {count}; merge them first (tessera embed --merge) or use the same N")
    folder = part_dir(set_folder, index, count)
    info = {"index": index, "count": count, **state, "done": False, "shards": []}
    path = folder / PART_JSON
    if path.is_file():
        old = json.loads(path.read_text())
        changed = [k for k in AGREE if old.get(k) != info.get(k)]
        if changed:
            raise TesseraError(f"{folder}: {_label(info)} was started with other "
                               f"{', '.join(f'{k} ({old.get(k)} vs {info.get(k)} now)' for k in changed)}; "
                               "rerun it with the same settings, or delete that folder")
    (folder / "shards").mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(info, indent=2))
    return folder


def finish_part(folder: Path, shard_names: list[str]) -> None:
    """Mark a part finished, with the shards it holds (the merge's completeness check)."""
    info = json.loads((folder / PART_JSON).read_text())
    info.update(done=True, shards=list(shard_names))
    atomic_write_text(folder / PART_JSON, json.dumps(info, indent=2))


def check_parts(set_folder: Path, parts: list[dict], committed: list[str]) -> list[tuple[Path, str]]:
    """(part shards folder, shard name) of every shard to merge, in order, after checking the split is whole:
    N parts, each finished, all cut from one set state with one setting, adding exactly the missing shards."""
    first = parts[0]
    count = first["count"]
    for p in parts[1:]:
        changed = [k for k in AGREE if p.get(k) != first.get(k)]
        if changed:
            k = changed[0]
            raise TesseraError(f"{set_folder}: {_label(p)} and {_label(first)} are shards of different runs "
                               f"({k} {p.get(k)} vs {first.get(k)}); rerun them with the same --shard-size and --batch")
    check_parts_complete(set_folder, parts, count, "embed")
    todo = [(Path(p["dir"]) / "shards", name) for p in parts for name in p["shards"]]
    expected = [f"{k:06d}" for k in range(first["base_shards"], first["base_shards"] + len(todo))]
    if [name for _, name in todo] != expected:
        raise TesseraError(f"{set_folder}: the parts' shards {[n for _, n in todo]} are not the run {expected}")
    before = [n for n in committed if n not in set(expected)]
    if len(before) != first["base_shards"]:
        raise TesseraError(f"{set_folder}: the set changed since the parts were cut ({len(before)} shards, the parts "
                           f"expected {first['base_shards']}); delete {Path(set_folder) / PARTS} and embed again")
    return todo


def _copy(src: Path, dst: Path) -> None:
    with open(src, "rb") as fin, atomic_open(dst) as fout:
        shutil.copyfileobj(fin, fout)


def merge_parts(set_folder: Path, committed: list[str]) -> dict:
    """Copy the parts' shards into ``set_folder/shards`` (array, then table: the table is the commit) and remove
    ``parts/``; ``committed``: the set's committed shard names now. Returns {"parts", "shards"} merged."""
    parts = read_parts(set_folder)
    if not parts:
        return {"parts": 0, "shards": 0}
    todo = check_parts(set_folder, parts, committed)
    shards = Path(set_folder) / "shards"
    for folder, name in todo:
        _copy(folder / f"{name}.npy", shards / f"{name}.npy")
        _copy(folder / f"{name}.parquet", shards / f"{name}.parquet")
    return {"parts": len(parts), "shards": len(todo)}


def remove_parts(set_folder: Path) -> None:
    shutil.rmtree(Path(set_folder) / PARTS, ignore_errors=True)
