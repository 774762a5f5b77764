"""A simulated cutout store made with NumPy only (no astropy, no pandas), for the loader benchmarks and the GPU
suite on machines that have PyTorch but not tessera's corpus dependencies.

The layout mirrors one CutoutStore shard: a float16 ``(N, 1, S, S)`` ``.npy`` array memory-mapped on first use,
so ``get_array(i)`` costs what ``tessera.corpus.store.CutoutStore.get_array`` costs (one page-in, float16 ->
float32). Each cutout is faint noise plus a few elliptical Gaussian sources (compact cores and extended lobes),
clipped to [0, 1]: radio-like enough for the anchors and the non-empty criterion to behave as on real data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

FILE = "cutouts_f16.npy"


def simulate_cutouts(n: int, size: int, seed: int = 0) -> np.ndarray:
    """(n, 1, size, size) float16 in [0, 1]."""
    rng = np.random.default_rng(seed)
    arr = np.empty((n, 1, size, size), np.float16)
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    for i in range(n):
        img = rng.normal(0.02, 0.01, (size, size)).astype(np.float32)
        for _ in range(rng.integers(1, 5)):
            cy, cx = rng.uniform(0.1 * size, 0.9 * size, 2)
            sy, sx = rng.uniform(0.005, 0.06, 2) * size
            r = int(4 * max(sy, sx)) + 1  # only a window around the source: fast at any cutout size
            y0, y1, x0, x1 = max(0, int(cy) - r), min(size, int(cy) + r), max(0, int(cx) - r), min(size, int(cx) + r)
            win = np.exp(-((yy[y0:y1, x0:x1] - cy) ** 2 / (2 * sy**2) + (xx[y0:y1, x0:x1] - cx) ** 2 / (2 * sx**2)))
            img[y0:y1, x0:x1] += rng.uniform(0.3, 1.0) * win
        arr[i, 0] = np.clip(img, 0.0, 1.0)
    return arr


def make_store(path: str | Path, n: int, size: int, seed: int = 0) -> Path:
    """Write the store to ``path`` (a directory) unless it already holds one of this shape."""
    path = Path(path)
    file = path / FILE
    if file.exists():
        existing = np.load(file, mmap_mode="r")
        if existing.shape == (n, 1, size, size):
            return path
    path.mkdir(parents=True, exist_ok=True)
    tmp = path / (FILE + ".tmp.npy")
    np.save(tmp, simulate_cutouts(n, size, seed))
    tmp.replace(file)
    return path


class NpyStore:
    """``len(store)``, ``get_array(i) -> (1, S, S) float32``, ``row(i)`` (provenance) over :func:`make_store`'s file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._map = None
        self._len = int(np.load(self.path / FILE, mmap_mode="r").shape[0])

    def __len__(self) -> int:
        return self._len

    def _array(self) -> np.ndarray:
        if self._map is None:
            self._map = np.load(self.path / FILE, mmap_mode="r")
        return self._map

    def get_array(self, i: int) -> np.ndarray:
        return np.asarray(self._array()[int(i)], dtype=np.float32)

    def row(self, i: int) -> dict:
        return {"path": str(self.path / FILE), "index": int(i)}

    def __getstate__(self) -> dict:  # DataLoader workers reopen the memory map
        return {**self.__dict__, "_map": None}
