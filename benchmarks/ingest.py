"""Ingest throughput on a simulated corpus of FITS mosaics; prints one JSON object.

Compares, in the same run: a bare read+tile pass (no ZScale, no write), the per-stage cost of the
ingest work on the same tiles (filters, raw statistics, ZScale, float16), and the full
``run_ingest`` with 1 and N workers (MB/s of input and tiles/s, also per worker). Ratios, not absolute
numbers, are what carry over between machines (DESIGN §6).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ingest.py --files 8 --size 2048 --tile 512 --workers 2
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from astropy.io import fits


def make_corpus(folder: Path, files: int, size: int, seed: int = 0) -> list[Path]:
    """``files`` float32 FITS mosaics (size x size) of noise + point sources + a NaN border strip."""
    rng = np.random.default_rng(seed)
    paths = []
    for k in range(files):
        img = rng.normal(0, 1e-4, size=(size, size)).astype(np.float32)
        ys, xs = rng.integers(0, size, 200), rng.integers(0, size, 200)
        img[ys, xs] += rng.uniform(1e-3, 1e-1, 200).astype(np.float32)
        img[:, : size // 16] = np.nan  # an uncovered border, dropped by the NaN filter
        path = folder / f"mosaic_{k:03d}.fits"
        fits.PrimaryHDU(img).writeto(path)
        paths.append(path)
    return paths


def bare_pass(paths: list[Path], tile: int) -> dict:
    """Read every plane and cut its tiles (copying each, as ingest does), no normalization, no write."""
    from tessera.corpus.readers import Plane, iter_planes
    from tessera.corpus.tiling import plan_tiles

    start = time.perf_counter()
    n = 0
    for path in paths:
        for plane in iter_planes(path):
            if isinstance(plane, Plane):
                _, h, w = plane.data.shape
                for y, x, th, tw in plan_tiles(h, w, tile, tile, 64):
                    np.ascontiguousarray(plane.data[:, y : y + th, x : x + tw])
                    n += 1
    return {"seconds": time.perf_counter() - start, "tiles": n}


def stage_costs(paths: list[Path], tile: int) -> dict:
    """Seconds spent per ingest stage on the tiles of the corpus (single process)."""
    from tessera.corpus.filters import drop_reason, pixel_stats
    from tessera.corpus.normalize import zscale_normalize
    from tessera.corpus.readers import Plane, iter_planes
    from tessera.corpus.tiling import plan_tiles

    tiles = []
    for path in paths:
        for plane in iter_planes(path):
            if isinstance(plane, Plane):
                _, h, w = plane.data.shape
                tiles += [plane.data[:, y : y + th, x : x + tw] for y, x, th, tw in plan_tiles(h, w, tile, tile, 64)]
    costs = {}
    t = time.perf_counter()
    kept = [tl for tl in tiles if drop_reason(tl) is None]
    costs["filters"] = time.perf_counter() - t
    t = time.perf_counter()
    for tl in kept:
        pixel_stats(tl)
    costs["raw_stats"] = time.perf_counter() - t
    t = time.perf_counter()
    normed = [zscale_normalize(tl) for tl in kept]
    costs["zscale"] = time.perf_counter() - t
    t = time.perf_counter()
    for a in normed:
        a.astype(np.float16)
    costs["float16"] = time.perf_counter() - t
    return {"kept_tiles": len(kept), "seconds": {k: round(v, 4) for k, v in costs.items()}}


def full_ingest(paths: list[Path], store: Path, tile: int, workers: int) -> dict:
    from tessera.corpus.config import IngestConfig
    from tessera.corpus.ingest import run_ingest

    start = time.perf_counter()
    report = run_ingest(paths, store, IngestConfig(tile=tile, workers=workers), overwrite=True, progress=False)
    seconds = time.perf_counter() - start
    mb = sum(p.stat().st_size for p in paths) / 1e6
    return {
        "workers": workers,
        "seconds": round(seconds, 3),
        "tiles_written": report["tiles_written"],
        "mb_per_s": round(mb / seconds, 2),
        "tiles_per_s": round(report["tiles_written"] / seconds, 2),
        "mb_per_s_per_worker": round(mb / seconds / workers, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "in").mkdir()
        paths = make_corpus(tmp / "in", args.files, args.size)
        mb = sum(p.stat().st_size for p in paths) / 1e6
        bare_pass(paths, args.tile)  # warm the page cache so every pass reads from memory
        bare = bare_pass(paths, args.tile)
        stages = stage_costs(paths, args.tile)
        full_ingest(paths[:1], tmp / "warmup", args.tile, 1)  # imports (pandas, WCS) out of the timed runs
        serial = full_ingest(paths, tmp / "store1", args.tile, 1)
        parallel = full_ingest(paths, tmp / "storeN", args.tile, args.workers) if args.workers > 1 else None
    result = {
        "benchmark": "ingest",
        "corpus": {"files": args.files, "size": args.size, "tile": args.tile, "mb": round(mb, 2)},
        "bare_read_tile": {
            "seconds": round(bare["seconds"], 3),
            "tiles": bare["tiles"],
            "mb_per_s": round(mb / bare["seconds"], 2),
            "tiles_per_s": round(bare["tiles"] / bare["seconds"], 2),
        },
        "stages": stages,
        "ingest_1_worker": serial,
        "ingest_n_workers": parallel,
        "ratio_full_over_bare": round(serial["seconds"] / bare["seconds"], 2),
        "zscale_share_of_full": round(stages["seconds"]["zscale"] / serial["seconds"], 3),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
