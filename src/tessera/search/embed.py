"""Embedding a whole source into a resumable, append-only set of sharded arrays (issue 13).

Layout of ``EMB`` (one folder per encoder, so another model, readout or layer never mixes in)::

    EMB/<fingerprint>-<readout>-L<layer>/
        set.json                       model ref, fingerprint, readout, layer, dim, source (kind, ref)
        shards/000000.npy              (n, D) float32 embeddings, rows in the order of the matching table
        shards/000000.parquet          the n rows: cutout_id + provenance (store manifest columns, RA/Dec)
        table.parquet                  every committed row, with its global ``row`` (rewritten after each run)

A shard is committed when its ``.parquet`` exists (written after its ``.npy``, both atomically), so a run
killed at any point leaves only committed shards plus, at worst, one orphan ``.npy`` or temporary file,
removed by the next run. A rerun embeds exactly the items not yet committed, in source order and with the
same shard boundaries, so killed-and-rerun equals uninterrupted (the cached-feature rule of DESIGN §7).

With ``shard=(I, N)`` one of N processes embeds its 1/N of those shards into ``EMB/<set>/parts/`` and
:func:`merge_embeddings` puts them in place: the result is byte for byte one process's set (search/sharding.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tessera.errors import TesseraError
from tessera.io import atomic_open, atomic_write_text, remove_temp_files
from tessera.search.source import ID, EmbedSource

SET_JSON = "set.json"
SHARDS = "shards"
TABLE = "table.parquet"
FORMAT = 1
DEFAULT_SHARD_SIZE = 4096


def set_name(fingerprint: str, readout: str, layer: int) -> str:
    """Folder name of the embedding set of one encoder, readout and (0-based) block."""
    return f"{fingerprint}-{readout.replace('+', '_')}-L{int(layer)}"


@dataclass
class EmbeddingSet:
    """An embedding set on disk: ``info`` (set.json), committed shards, ``table`` and ``vectors``."""

    path: Path
    info: dict

    @classmethod
    def open(cls, path: str | Path) -> "EmbeddingSet":
        """``path``: a set folder, or an ``EMB`` folder holding exactly one set."""
        return cls(*_resolve_set(Path(path)))

    # -- facts -------------------------------------------------------------------------------------------
    @property
    def fingerprint(self) -> str:
        return str(self.info["fingerprint"])

    @property
    def dim(self) -> int:
        return int(self.info["dim"])

    def shard_names(self) -> list[str]:
        """Committed shard stems in order (a ``.parquet`` with its ``.npy``)."""
        folder = self.path / SHARDS
        return sorted(p.stem for p in folder.glob("*.parquet") if (folder / f"{p.stem}.npy").is_file())

    def shard_lengths(self) -> list[int]:
        return [int(np.load(self.path / SHARDS / f"{s}.npy", mmap_mode="r").shape[0]) for s in self.shard_names()]

    def __len__(self) -> int:
        return int(sum(self.shard_lengths()))

    # -- data --------------------------------------------------------------------------------------------
    def table(self) -> pd.DataFrame:
        """Every committed row in order, with ``row`` (its index in :meth:`vectors`) and ``shard``."""
        frames = []
        for name in self.shard_names():
            frame = pd.read_parquet(self.path / SHARDS / f"{name}.parquet")
            frame["shard"] = name
            frames.append(frame)
        if not frames:
            return pd.DataFrame({"row": pd.Series(dtype="int64"), ID: pd.Series(dtype="string")})
        table = pd.concat(frames, ignore_index=True)
        table.insert(0, "row", np.arange(len(table), dtype=np.int64))
        return table

    def vectors(self) -> np.ndarray:
        """(N, D) float32, all committed rows in table order."""
        arrays = [np.load(self.path / SHARDS / f"{s}.npy", mmap_mode="r") for s in self.shard_names()]
        if not arrays:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.ascontiguousarray(np.concatenate(arrays), dtype=np.float32)

    def rows(self, rows: np.ndarray) -> np.ndarray:
        """Vectors of global ``rows`` (any shape of int) -> (..., D), read from the memory-mapped shards."""
        rows = np.asarray(rows, dtype=np.int64)
        maps = [np.load(self.path / SHARDS / f"{s}.npy", mmap_mode="r") for s in self.shard_names()]
        starts = np.cumsum([0] + [len(m) for m in maps])
        flat = rows.reshape(-1)
        out = np.empty((flat.size, self.dim), dtype=np.float32)
        which = np.searchsorted(starts, flat, side="right") - 1
        for k in np.unique(which):
            sel = which == k
            out[sel] = maps[k][flat[sel] - starts[k]]
        return out.reshape(*rows.shape, self.dim)


def _resolve_set(path: Path) -> tuple[Path, dict]:
    if (path / SET_JSON).is_file():
        return path, _read_info(path)
    if not path.is_dir():
        raise TesseraError(f"{path}: no such embedding set (run `tessera embed --out {path}` first)")
    sets = sorted(p for p in path.iterdir() if (p / SET_JSON).is_file())
    if not sets:
        raise TesseraError(f"{path}: not an embedding set (no {SET_JSON} in it or in a subfolder)")
    if len(sets) > 1:
        names = ", ".join(p.name for p in sets)
        raise TesseraError(f"{path}: holds {len(sets)} embedding sets ({names}); name one, e.g. {sets[0]}")
    return sets[0], _read_info(sets[0])


def _read_info(folder: Path) -> dict:
    try:
        return json.loads((folder / SET_JSON).read_text())
    except (OSError, ValueError) as exc:
        raise TesseraError(f"{folder / SET_JSON}: unreadable ({exc})") from exc


# ---------------------------------------------------------------------------------------------- embedding


def _batches(source: EmbedSource, positions: list[int], batch: int) -> list[list[int]]:
    """Consecutive runs of ``positions`` of one image shape, at most ``batch`` long (a batch stacks one shape)."""
    out: list[list[int]] = []
    for p in positions:
        if out and len(out[-1]) < batch and source.shape(out[-1][-1]) == source.shape(p):
            out[-1].append(p)
        else:
            out.append([p])
    return out


def embed_positions(encoder, source: EmbedSource, positions: list[int], readout: str, layer: int, batch: int,
                    on_batch: Callable[[int], None] | None = None) -> np.ndarray:
    """Items ``positions`` of ``source`` -> (n, D) float32 through ``encoder.embed`` (DESIGN §3.3)."""
    import torch

    feats = []
    for idx in _batches(source, positions, batch):
        images = torch.from_numpy(np.stack([source.image(p) for p in idx]))
        out = encoder.embed(images.to(encoder.device), readout=readout, layer=layer)
        feats.append(out.detach().float().cpu().numpy())
        if on_batch is not None:
            on_batch(len(idx))
    return np.concatenate(feats) if feats else np.zeros((0, encoder.hidden_size), dtype=np.float32)


def _set_info(encoder, model_ref: str, source: EmbedSource, readout: str, layer: int, dim: int, shard_size: int,
              hdu: int | None) -> dict:
    return {"format": FORMAT, "model": model_ref, "fingerprint": str(encoder.fingerprint), "readout": readout,
            "layer": int(layer), "dim": int(dim), "image_size": int(encoder.image_size), "shard_size": int(shard_size),
            "source": {**source.describe(), "hdu": hdu}}


def _check_same_source(folder: Path, info: dict, source: EmbedSource) -> None:
    old = info.get("source", {})
    if (old.get("kind"), old.get("ref")) != (source.kind, source.ref):
        raise TesseraError(
            f"{folder}: embeds {old.get('kind')} {old.get('ref')}, not {source.kind} {source.ref}; "
            "use another --out for another corpus"
        )


def _write_shard(folder: Path, name: str, vectors: np.ndarray, rows: pd.DataFrame) -> None:
    """The array first, then the table: the table's presence is the commit (module docstring)."""
    _write_shard_array(folder, name, vectors)
    _write_shard_table(folder, name, rows)


def _write_shard_array(folder: Path, name: str, vectors: np.ndarray) -> None:
    with atomic_open(folder / f"{name}.npy") as fh:
        np.save(fh, vectors.astype(np.float32), allow_pickle=False)


def _write_shard_table(folder: Path, name: str, rows: pd.DataFrame) -> None:
    with atomic_open(folder / f"{name}.parquet") as fh:
        rows.reset_index(drop=True).to_parquet(fh, index=False)


def _clean_uncommitted(folder: Path) -> None:
    remove_temp_files(folder)
    for npy in folder.glob("*.npy"):
        if not (folder / f"{npy.stem}.parquet").is_file():
            npy.unlink()


def embed_source(
    encoder,
    source: EmbedSource,
    out: str | Path,
    model_ref: str = "",
    readout: str | None = None,
    layer: int = -1,
    batch: int = 64,
    shard_size: int = DEFAULT_SHARD_SIZE,
    hdu: int | None = None,
    progress: bool = True,
    after_shard: Callable[[int], None] | None = None,
    shard: tuple[int, int] | None = None,
) -> dict:
    """Embed every item of ``source`` not yet in ``out``'s set for this encoder; returns a report dict.

    ``readout`` None -> the encoder's default; ``layer`` is normalized to a 0-based block. ``after_shard(i)`` is
    called after shard ``i`` is committed (tests inject failures there). ``shard=(I, N)``: embed only part I of N
    into the set's ``parts/`` (merged by :func:`merge_embeddings`; search/sharding.py).
    """
    from tessera.progress import progress_bar
    from tessera.search import sharding

    if batch <= 0 or shard_size <= 0:
        raise TesseraError(f"batch ({batch}) and shard_size ({shard_size}) must be positive")
    readout = readout or encoder.readout
    depth = encoder.num_layers
    if not -depth <= int(layer) < depth:
        raise TesseraError(f"--layer {layer}: out of range for a {depth}-block encoder")
    layer = int(layer) % depth
    folder = Path(out) / set_name(encoder.fingerprint, readout, layer)
    shard_dir = folder / SHARDS
    if (folder / SET_JSON).is_file():
        info = _read_info(folder)
        _check_same_source(folder, info, source)
        shard_size = int(info["shard_size"])  # the boundaries of the first run, so reruns reproduce them
    else:
        shard_dir.mkdir(parents=True, exist_ok=True)
        dim = embed_positions(encoder, source, [0], readout, layer, 1).shape[1] if len(source) else encoder.hidden_size
        info = _set_info(encoder, model_ref, source, readout, layer, dim, shard_size, hdu)
        atomic_write_text(folder / SET_JSON, json.dumps(info, indent=2))
    _clean_uncommitted(shard_dir)
    emb = EmbeddingSet(folder, info)
    done = set(emb.table()[ID].tolist())
    pending = [i for i, cid in enumerate(source.ids) if cid not in done]
    committed = emb.shard_names()
    chunks = [pending[s : s + shard_size] for s in range(0, len(pending), shard_size)]
    names = [f"{len(committed) + k:06d}" for k in range(len(chunks))]  # the single-process shard names
    write_dir, todo = shard_dir, list(range(len(chunks)))
    if shard is not None:
        state = {"base_shards": len(committed), "base_rows": len(done), "pending": len(pending),
                 "shard_size": shard_size, "batch": int(batch)}
        part = sharding.open_part(folder, shard[0], shard[1], state)
        write_dir = part / SHARDS
        _clean_uncommitted(write_dir)
        mine = sharding.part_range(len(chunks), *shard)
        have = {p.stem for p in write_dir.glob("*.parquet")}
        todo = [k for k in mine if names[k] not in have]
    start = time.perf_counter()
    embedded = sum(len(chunks[k]) for k in todo)
    with progress_bar(total=embedded, desc="embed", unit="img", disable=not progress) as bar:
        for k in todo:
            vectors = embed_positions(encoder, source, chunks[k], readout, layer, batch, on_batch=bar.update)
            rows = source.table.iloc[chunks[k]].drop(columns=["store_index"], errors="ignore")
            _write_shard(write_dir, names[k], vectors, rows)
            if after_shard is not None:
                after_shard(int(names[k]))
    seconds = time.perf_counter() - start
    report = {"set": str(folder), "fingerprint": emb.fingerprint, "readout": readout, "layer": layer, "dim": emb.dim,
              "embedded": embedded, "seconds": round(seconds, 3),
              "images_per_s": round(embedded / seconds, 2) if embedded else None}
    if shard is not None:
        sharding.finish_part(part, [names[k] for k in mine])
        return {**report, "shard": f"{shard[0]}/{shard[1]}", "part": str(part),
                "rows": sum(len(chunks[k]) for k in mine), "already_done": sum(len(chunks[k]) for k in mine) - embedded}
    table = _write_table(emb)
    return {**report, "rows": len(table), "already_done": len(source) - len(pending)}


def _write_table(emb: EmbeddingSet) -> pd.DataFrame:
    table = emb.table()
    with atomic_open(emb.path / TABLE) as fh:
        table.to_parquet(fh, index=False)
    return table


def _set_folders(path: Path) -> list[Path]:
    """``path`` itself if it is a set, else its set subfolders (one EMB may hold several models' sets)."""
    if (path / SET_JSON).is_file():
        return [path]
    if not path.is_dir():
        raise TesseraError(f"--merge {path}: no such embedding folder")
    sets = sorted(p for p in path.iterdir() if (p / SET_JSON).is_file())
    if not sets:
        raise TesseraError(f"--merge {path}: not an embedding folder (no {SET_JSON} in it or in a subfolder)")
    return sets


def merge_embeddings(path: str | Path) -> list[dict]:
    """Merge the parts of ``--shard I/N`` runs into their sets (every set of EMB ``path``, or the set ``path``).

    Every set is checked before any is changed; a set without parts is left as it is (so merging twice is
    merging once). Returns one report per set: ``set``, ``parts``, ``shards`` merged, ``rows`` in the set."""
    from tessera.search import sharding

    folders = _set_folders(Path(path))
    plans = []
    for folder in folders:
        emb = EmbeddingSet(folder, _read_info(folder))
        parts = sharding.read_parts(folder)
        if parts:
            sharding.check_parts(folder, parts, emb.shard_names())
        plans.append(emb)
    reports = []
    for emb in plans:
        _clean_uncommitted(emb.path / SHARDS)
        merged = sharding.merge_parts(emb.path, emb.shard_names())
        if merged["parts"] or not (emb.path / TABLE).is_file():
            table = _write_table(emb)
        else:
            table = pd.read_parquet(emb.path / TABLE, columns=[ID])
        sharding.remove_parts(emb.path)
        reports.append({"set": str(emb.path), **merged, "rows": len(table)})
    return reports


def write_embedding_set(folder: str | Path, vectors: np.ndarray, table: pd.DataFrame, fingerprint: str,
                        model_ref: str = "", readout: str = "mean_patch", layer: int = 0,
                        shard_size: int = DEFAULT_SHARD_SIZE, source: dict | None = None) -> EmbeddingSet:
    """An embedding set from vectors computed elsewhere: vectors (N, D), ``table`` with N rows and a unique
    ``cutout_id`` column; ``fingerprint`` names the model that made them (queries are checked against it)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(table) != len(vectors):
        raise TesseraError(f"vectors of shape {vectors.shape} and a table of {len(table)} rows do not match "
                           "(need (N, D) and N rows)")
    if ID not in table.columns or not table[ID].is_unique:
        raise TesseraError(f"the table needs a unique {ID!r} column")
    folder = Path(folder)
    (folder / SHARDS).mkdir(parents=True, exist_ok=True)
    info = {"format": FORMAT, "model": model_ref, "fingerprint": str(fingerprint), "readout": readout,
            "layer": int(layer), "dim": int(vectors.shape[1]), "shard_size": int(shard_size),
            "source": source or {"kind": "vectors", "ref": ""}}
    atomic_write_text(folder / SET_JSON, json.dumps(info, indent=2))
    for k, s in enumerate(range(0, len(vectors), shard_size)):
        _write_shard(folder / SHARDS, f"{k:06d}", vectors[s : s + shard_size], table.iloc[s : s + shard_size])
    return EmbeddingSet(folder, info)
