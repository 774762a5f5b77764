"""Reading a CutoutStore (DESIGN §3.2): random access to normalized cutouts and their provenance.

Shards are float16 ``.npy`` arrays ``(N, C, H, W)`` memory-mapped on first use, so ``get_array`` costs
one page-in of one cutout; the manifest (pandas) maps a global index to (shard, offset) and keeps the
provenance of every cutout (file, HDU, plane, tile position, RA/Dec, raw statistics).

The same class reads a spectrum store (``tessera ingest --spectra``, corpus/spectrum_ingest.py): its
``store.json`` says ``kind = "spectrum"``, ``ndim = 1``, and ``get_array`` gives float32 ``(C, L)`` spectra on the
store's grid (:attr:`CutoutStore.grid`) with NaN at missing channels. A store without ``store.json`` (made
before it existed) is an image store. Readers ask :attr:`CutoutStore.ndim`, never the array's shape.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from tessera.corpus.layout import GRID, MANIFEST, STORE_INFO, shard_path
from tessera.errors import TesseraError


class CutoutStore:
    """``len(store)``; ``store[i] -> ((C, H, W) float32 in [0, 1], manifest row dict)``; ``get_array(i)``;
    ``manifest``; ``kind`` / ``ndim`` / ``grid`` (a spectrum store's items are (C, L) float32, NaN = missing)."""

    def __init__(self, path: str | Path):
        import pandas as pd

        self.path = Path(path)
        manifest_path = self.path / MANIFEST
        if not manifest_path.is_file():
            raise TesseraError(f"{self.path}: not a cutout store (no {MANIFEST}; run `tessera ingest` first)")
        self.manifest = pd.read_parquet(manifest_path)
        self.info = read_store_info(self.path)
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

    @property
    def kind(self) -> str:
        """"image" or "spectrum"."""
        return str(self.info["kind"])

    @property
    def ndim(self) -> int:
        """The spatial rank of one sample: 2 for (C, H, W) cutouts, 1 for (C, L) spectra."""
        return int(self.info["ndim"])

    @cached_property
    def grid(self) -> np.ndarray | None:
        """Spectrum stores: the (L,) grid (in ``info["x_unit"]``), read once and read-only; None for image stores."""
        if self.kind != "spectrum":
            return None
        grid = np.load(self.path / GRID, allow_pickle=False)
        grid.setflags(write=False)
        return grid

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
        """Cutout ``i`` as float32 ``(C, H, W)`` in [0, 1], or spectrum ``i`` as float32 ``(C, L)`` (no manifest lookup
        beyond shard and offset)."""
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


IMAGE_INFO = {"kind": "image", "ndim": 2}


def read_store_info(path: str | Path) -> dict:
    """The store's ``store.json`` (kind, ndim, and for spectra length, x_kind, x_unit); image defaults without one."""
    import json

    info_path = Path(path) / STORE_INFO
    if not info_path.is_file():
        return dict(IMAGE_INFO)
    try:
        info = json.loads(info_path.read_text())
    except (OSError, ValueError) as exc:
        raise TesseraError(f"{info_path}: unreadable ({exc})") from None
    if info.get("kind") not in ("image", "spectrum") or info.get("ndim") not in (1, 2):
        raise TesseraError(f"{info_path}: 'kind' must be image or spectrum and 'ndim' 2 or 1, got {info}")
    return info


class CutoutDataset(Dataset):
    """A torch Dataset over a CutoutStore: ``ds[i] -> Tensor (C, H, W) float32`` in [0, 1]."""

    def __init__(self, store: CutoutStore | str | Path):
        self.store = store if isinstance(store, CutoutStore) else CutoutStore(store)

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(self.store.get_array(i))
