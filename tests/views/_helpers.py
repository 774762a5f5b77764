"""Small fixtures for the views tests: simulated sparse cutouts with known sources and an in-memory store."""

from __future__ import annotations

import numpy as np

from tessera.views.config import AugmentConfig, ViewConfig


def blob_image(rng: np.random.Generator, size: int = 256, n_faint: int = 3, noise: float = 0.01):
    """A [0, 1] (1, size, size) cutout: one clearly brightest Gaussian blob plus fainter blobs and noise.

    Returns (image, (x, y) of the brightest source centre in pixel coordinates).
    """
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    img = np.zeros((size, size))
    margin = size * 0.1
    for _ in range(n_faint):
        cx, cy = rng.uniform(margin, size - margin, 2)
        img += 0.3 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * (size / 60) ** 2))
    bx, by = rng.uniform(margin, size - margin, 2)
    img += 1.0 * np.exp(-((xx - bx) ** 2 + (yy - by) ** 2) / (2 * (size / 50) ** 2))
    img += noise * rng.standard_normal(img.shape)
    return np.clip(img, 0, 1).astype(np.float32)[None], (bx, by)


class ArrayStore:
    """In-memory stand-in for CutoutStore: ``len`` and ``get_array``; counts loads."""

    def __init__(self, arrays):
        self.arrays = list(arrays)
        self.calls: list[int] = []

    def __len__(self) -> int:
        return len(self.arrays)

    def get_array(self, i: int) -> np.ndarray:
        self.calls.append(i)
        return self.arrays[i]


def quiet_regime(**on) -> AugmentConfig:
    """A regime with every operator off except those given (e.g. p_asinh=1.0)."""
    base = dict(p_rot90=0.0, p_hflip=0.0, p_asinh=0.0, p_affine=0.0, p_noise=0.0, p_banding=0.0, p_flux=0.0)
    base.update(on)
    return AugmentConfig(**base)


def quiet_config(size: int = 32, **on) -> ViewConfig:
    """ViewConfig with output ``size`` and the given operators on, in both regimes."""
    regime = quiet_regime(**on)
    return ViewConfig(output_size=size, mild=regime, strong=quiet_regime(**on))
