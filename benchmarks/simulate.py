"""Time one simulated radio mosaic (default 2048 x 2048, default population) and print one JSON object.

As the in-run reference, the same script times the single beam convolution of a bare noise image of that size
(the floor any FFT-based simulator pays), so ``ratio_to_fft_floor`` is comparable across noisy machines.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/simulate.py [--size 2048] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
from scipy.signal import fftconvolve

from tessera.simulate import SimulateRadioConfig, render_mosaic
from tessera.simulate.sources import beam_kernel, beam_sigmas_px


def _best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cfg = SimulateRadioConfig(size=args.size, nan_border_prob=1.0, cube_axis_prob=0.0)
    result = {}

    def mosaic():
        _, _, cat = render_mosaic(cfg, np.random.default_rng(0))
        result["sources"] = len(cat)
        result["extended"] = int((cat["class"] != "Compact").sum())

    kernel = beam_kernel(*beam_sigmas_px(cfg.beam_fwhm_arcsec, cfg.beam_minor, cfg.pixel_scale_arcsec), 0.0)
    pad = kernel.shape[0] // 2
    noise = np.random.default_rng(0).standard_normal((args.size + 2 * pad,) * 2)
    seconds = _best_of(args.repeats, mosaic)
    floor = _best_of(args.repeats, lambda: fftconvolve(noise, kernel, mode="valid"))
    print(json.dumps({
        "size": args.size,
        "seconds": round(seconds, 3),
        "sources": result["sources"],
        "extended": result["extended"],
        "fft_floor_seconds": round(floor, 3),
        "ratio_to_fft_floor": round(seconds / floor, 2) if floor > 0 and math.isfinite(floor) else None,
    }))


if __name__ == "__main__":
    main()
