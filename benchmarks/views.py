"""Views/s per CPU core of the batched ViewGenerator vs the per-image NumPy/SciPy reference (same run).

Inputs: simulated sparse 512x512 radio-like cutouts in [0, 1] (a few Gaussian sources on faint noise),
output 224 px (seed 000 §6.1). One torch thread and one process, so the numbers are per core.
Prints one JSON object per (branch, implementation) and one with the speed ratio per branch.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/views.py [--batch 32] [--repeats 5] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from tessera.views.config import ViewConfig
from tessera.views.generator import ViewGenerator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the reference lives with the tests
from tests.views.reference_views import reference_views  # noqa: E402


def sparse_cutouts(n: int, size: int, seed: int = 0) -> np.ndarray:
    """(n, 1, size, size) float32 in [0, 1]: 1-4 Gaussian sources on low-level noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    out = np.empty((n, 1, size, size), np.float32)
    for i in range(n):
        img = 0.02 * rng.standard_normal((size, size)).astype(np.float32) + 0.05
        for _ in range(rng.integers(1, 5)):
            cx, cy = rng.uniform(0.1 * size, 0.9 * size, 2)
            s = rng.uniform(size / 100, size / 25)
            img += rng.uniform(0.3, 1.0) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * s * s))
        out[i, 0] = np.clip(img, 0, 1)
    return out


def time_batched(images: torch.Tensor, cfg: ViewConfig, branch: str, repeats: int) -> float:
    gen = ViewGenerator(cfg, branch)
    generator = torch.Generator(device=images.device).manual_seed(0)
    gen(images, generator)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        if images.is_cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        gen(images, generator)
        if images.is_cuda:
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return images.shape[0] * gen.num_views / best


def time_reference(images: np.ndarray, cfg: ViewConfig, branch: str, repeats: int) -> float:
    rng = np.random.default_rng(0)
    v = 1 if branch == "reconstruction" else 2
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for img in images:
            reference_views(img, cfg, branch, rng)
        best = min(best, time.perf_counter() - t0)
    return len(images) * v / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--output-size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=5, help="best of N timed runs (robust to a shared machine)")
    parser.add_argument("--ref-images", type=int, default=16, help="cutouts timed with the reference")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = ViewConfig(output_size=args.output_size)
    data = sparse_cutouts(args.batch, args.size)
    images = torch.from_numpy(data).to(args.device)
    device_name = torch.cuda.get_device_name() if images.is_cuda else "cpu, 1 thread"
    for branch in ("reconstruction", "contrastive"):
        batched = time_batched(images, cfg, branch, args.repeats)
        ref = time_reference(data[: args.ref_images], cfg, branch, args.repeats)
        common = {"benchmark": "views", "branch": branch, "input": args.size, "output": args.output_size}
        print(json.dumps({**common, "impl": "ViewGenerator", "device": device_name, "batch": args.batch,
                          "views_per_s": round(batched, 1)}))
        print(json.dumps({**common, "impl": "reference_numpy_scipy", "device": "cpu, 1 thread",
                          "views_per_s": round(ref, 1)}))
        print(json.dumps({**common, "ratio_batched_over_reference": round(batched / ref, 2)}))


if __name__ == "__main__":
    main()
