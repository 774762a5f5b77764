"""The file names of a CutoutStore directory (DESIGN §3.2), defined once for the writer and the reader.

::

    STORE/
      config.yaml            resolved IngestConfig
      journal.jsonl          one JSON record per finished input (done or skipped), appended after its shards are durable
      store.json             what the store holds: {"kind": "image", "ndim": 2} or {"kind": "spectrum", "ndim": 1,
                             "length": L, "x_kind": "frequency", "x_unit": "MHz"} (no file: an image store)
      grid.npy               spectrum stores: the (L,) float64 grid every spectrum is resampled onto
      shards/<key>-<n>.npy   float16 (N, C, H, W) cutouts of one input (one shard per cutout shape), or
                             float32 (N, C, L) spectra (NaN = missing channel)
      manifest.parquet       one row per cutout, rebuilt deterministically from the journal
      skipped.parquet        every input or product that yields no cutout, with its reason
      report.json            counts per reason and per input, and the last run's throughput
      .lock                  the pid of the one ingest writing the store
"""

from __future__ import annotations

from pathlib import Path

CONFIG = "config.yaml"
JOURNAL = "journal.jsonl"
MANIFEST = "manifest.parquet"
SKIPPED = "skipped.parquet"
REPORT = "report.json"
SHARDS = "shards"
LOCK = ".lock"
STORE_INFO = "store.json"
GRID = "grid.npy"


def shard_path(store: str | Path, name: str) -> Path:
    """Where shard ``name`` of ``store`` lives."""
    return Path(store) / SHARDS / name
