"""Reading a CutoutStore (DESIGN §3.2): random access to normalized cutouts and their provenance.

Shards are float16 ``.npy`` arrays ``(N, C, H, W)`` memory-mapped on first use, so ``get_array`` costs
one page-in of one cutout; the manifest (pandas) maps a global index to (shard, offset) and keeps the
provenance of every cutout (file, HDU, plane, tile position, RA/Dec, raw statistics).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from tessera.corpus.layout import MANIFEST, shard_path
from tessera.errors import TesseraError


class CutoutStore:
    """``len(store)``; ``store[i] -> ((C, H, W) float32 in [0, 1], manifest row dict)``; ``get_array(i)``;
    ``manifest``."""

    def __init__(self, path: str | Path):
        import pandas as pd

        self.path = Path(path)
        manifest_path = self.path / MANIFEST
        if not manifest_path.is_file():
            raise TesseraError(f"{self.path}: not a cutout store (no {MANIFEST}; run `tessera ingest` first)")
        self.manifest = pd.read_parquet(manifest_path)
        self.channels = self._one_channel_count()
        codes, names = pd.factorize(self.manifest["shard"], sort=False)
        self._shard_codes = np.asarray(codes, dtype=np.int64)
        self._shard_names = [str(n) for n in names]
        self._offsets = self.manifest["offset"].to_numpy(dtype=np.int64)
        self._maps: dict[int, np.ndarray] = {}

    def _one_channel_count(self) -> int | None:
        """The store's channel count C (None when empty); a store mixing counts (made before ingest kept one
        per store) is refused here, before any training step, instead of failing mid-run on a batch."""
        if "channels" not in self.manifest.columns or self.manifest.empty:
            return None
        counts = self.manifest["channels"].value_counts()
        if len(counts) > 1:
            detail = ", ".join(f"{int(n)} cutouts with C={int(c)}" for c, n in counts.items())
            raise TesseraError(
                f"{self.path}: cutouts with different channel counts ({detail}); re-ingest with --gray, "
                "or into separate stores"
            )
        return int(counts.index[0])

    def __len__(self) -> int:
        return len(self._offsets)

    def _index(self, i: int) -> int:
        n = len(self)
        i = int(i)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"cutout index {i} out of range for a store of {n}")
        return i

    def _shard(self, code: int) -> np.ndarray:
        arr = self._maps.get(code)
        if arr is None:
            path = shard_path(self.path, self._shard_names[code])
            try:
                arr = np.load(path, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise TesseraError(f"{path}: cannot read shard ({type(exc).__name__}: {exc})") from exc
            self._maps[code] = arr
        return arr

    def get_array(self, i: int) -> np.ndarray:
        """Cutout ``i`` as float32 ``(C, H, W)`` in [0, 1] (no manifest lookup beyond shard and offset)."""
        i = self._index(i)
        return np.asarray(self._shard(self._shard_codes[i])[self._offsets[i]], dtype=np.float32)

    def row(self, i: int) -> dict:
        """Manifest row ``i`` as a plain dict (provenance of the cutout)."""
        return self.manifest.iloc[self._index(i)].to_dict()

    def __getitem__(self, i: int) -> tuple[np.ndarray, dict]:
        return self.get_array(i), self.row(i)

    def __repr__(self) -> str:
        return f"CutoutStore({str(self.path)!r}, n={len(self)})"

    def __getstate__(self) -> dict:
        # Memory maps are reopened lazily in each DataLoader worker rather than pickled.
        state = self.__dict__.copy()
        state["_maps"] = {}
        return state


class CutoutDataset(Dataset):
    """A torch Dataset over a CutoutStore: ``ds[i] -> Tensor (C, H, W) float32`` in [0, 1]."""

    def __init__(self, store: CutoutStore | str | Path):
        self.store = store if isinstance(store, CutoutStore) else CutoutStore(store)

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(self.store.get_array(i))
