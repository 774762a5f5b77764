"""What an embedding set is made from: every cutout of a CutoutStore, or every image of an evaluate data spec.

A source is a list of items with stable string ids (``cutout_id``), a provenance table (one row per item, in
item order) and random access to the items' images ``(C, H, W)`` float32 in [0, 1]. Store ids are
``<shard stem>:<offset>``: shard names carry the input's content key (corpus/ingest.py), so an id never
changes when the store grows and a changed input file gets new ids. Data-spec ids are the image paths.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tessera.errors import TesseraError

ID = "cutout_id"
# Provenance columns of a store manifest that are copied into an embedding set's table (DESIGN §3.2).
STORE_COLUMNS = ("path", "source", "format", "hdu", "dataset", "plane", "x", "y", "h", "w", "channels", "ra", "dec")


@dataclass
class EmbedSource:
    """``kind``: "store" | "data"; ``ref``: the store path (resolved) or the data spec; ``table``: provenance,
    one row per item with ``cutout_id`` first; images through :meth:`image`."""

    kind: str
    ref: str
    table: pd.DataFrame
    _store: Any = None
    _images: list[np.ndarray] | None = None
    _positions: dict[str, int] = field(default_factory=dict)

    def __post_init__(self):
        self._positions = {cid: i for i, cid in enumerate(self.table[ID].tolist())}

    def __len__(self) -> int:
        return len(self.table)

    @property
    def ids(self) -> list[str]:
        return self.table[ID].tolist()

    def position(self, cutout_id: str) -> int | None:
        """Item position of ``cutout_id`` in this source, or None."""
        return self._positions.get(str(cutout_id))

    def image(self, position: int) -> np.ndarray:
        """Item ``position`` as float32 (C, H, W) in [0, 1]."""
        if self._store is not None:
            return self._store.get_array(int(self.table["store_index"].iat[position]))
        return np.asarray(self._images[position], dtype=np.float32)

    def shape(self, position: int) -> tuple[int, ...]:
        if self._store is not None:
            row = self.table.iloc[position]
            return (int(row["channels"]), int(row["h"]), int(row["w"]))
        return tuple(self._images[position].shape)

    def describe(self) -> dict:
        return {"kind": self.kind, "ref": self.ref}


def store_cutout_ids(manifest: pd.DataFrame) -> list[str]:
    """``<shard stem>:<offset>`` per manifest row."""
    stems = manifest["shard"].astype(str).str.replace(r"\.npy$", "", regex=True)
    return (stems + ":" + manifest["offset"].astype("int64").astype(str)).tolist()


def from_store(path: str | Path) -> EmbedSource:
    """Every cutout of the CutoutStore at ``path``, in manifest order."""
    from tessera.corpus.store import CutoutStore

    store = CutoutStore(path)
    manifest = store.manifest.reset_index(drop=True)
    table = pd.DataFrame({ID: store_cutout_ids(manifest)})
    for col in STORE_COLUMNS:
        if col in manifest.columns:
            table[col] = manifest[col].to_numpy()
    table["store_index"] = np.arange(len(manifest), dtype=np.int64)
    if table[ID].duplicated().any():
        raise TesseraError(f"{path}: the manifest lists one cutout (shard, offset) twice; re-ingest the store")
    return EmbedSource("store", str(Path(path).resolve()), table, _store=store)


def _spec_folder(spec: str) -> Path:
    """The folder a data spec's relative image paths are relative to (the CSV's or the benchmark's folder)."""
    from tessera.evaluate.benchmarks import parse_spec

    path = Path(parse_spec(spec)[1])
    return path if path.is_dir() else path.parent


def _absolute_paths(paths: pd.Series, folder: Path) -> list[str]:
    """Image paths made absolute where the file exists (the WCS footprint of a position query reads it)."""
    out = []
    for p in paths.astype(str):
        full = Path(p) if Path(p).is_absolute() else folder / p
        out.append(str(full.resolve()) if full.is_file() else p)
    return out


def _data_table(ls, part: str) -> pd.DataFrame:
    """A LabeledSet's meta as provenance: ``source`` -> ``path``, ``ra_deg``/``dec_deg`` -> ``ra``/``dec``."""
    meta = ls.meta.reset_index(drop=True).rename(columns={"source": "path", "ra_deg": "ra", "dec_deg": "dec"})
    meta.insert(0, ID, [str(s) for s in ls.sources])
    meta["part"] = part
    if "survey" in meta.columns and "source" not in meta.columns:
        meta["source"] = meta["survey"]
    return meta


def from_data_spec(spec: str, hdu: int | None = None) -> EmbedSource:
    """Every image of an evaluate data spec (``frdeep:PATH``, a CSV or class folders...; evaluate/benchmarks.py),
    its ``test`` images too where the spec has them (``frdeep-pairs:``: FIRST then NVSS)."""
    from tessera.evaluate.benchmarks import load_eval_data

    data = load_eval_data(spec, hdu=hdu)
    parts = [("train", data.train)] + ([("test", data.test)] if data.test is not None else [])
    tables = [_data_table(ls, name) for name, ls in parts]
    folder = _spec_folder(spec)
    for t in tables:
        t["path"] = _absolute_paths(t["path"], folder)
    images = [img for _, ls in parts for img in ls.images]
    table = pd.concat(tables, ignore_index=True)
    dup = table[ID].duplicated(keep=False)
    if dup.any():  # the same file in two parts (train and test): keep both, told apart by the part
        table.loc[dup, ID] = table.loc[dup, ID] + "#" + table.loc[dup, "part"]
    return EmbedSource("data", spec, table, _images=images)


def open_source(kind: str, ref: str, hdu: int | None = None) -> EmbedSource:
    """Reopen the source an embedding set was made from (``set.json`` ``source``)."""
    if kind == "store":
        return from_store(ref)
    if kind == "data":
        return from_data_spec(ref, hdu=hdu)
    raise TesseraError(f"unknown embedding source kind {kind!r} (store or data)")
