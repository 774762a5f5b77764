"""How large are the sources of a labeled set, in pixels, and at the encoder's input size? Prints one JSON object.

For sets of centred sources in a wide field (FIRST's 300 px cutouts) a whole-field resize to a 64 px encoder
input can leave a galaxy a few pixels across, which no pretraining recipe can recover; this measures it from the
images alone (no labels), to choose ``tessera evaluate ... center_crop=N``. Per image: the fraction of non-zero
pixels, and the half-side of the centred square holding ``--flux`` of the flux above ``--floor``. Run from the
repository root:

    PYTHONPATH=src .venv/bin/python benchmarks/source_extent.py --data first:../shared/data/first_radio_galaxies
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def half_extent(image: np.ndarray, flux: float, floor: float) -> float:
    """Half-side (pixels) of the centred square that holds ``flux`` of the image's flux above ``floor``."""
    a = image.astype(np.float32).max(axis=0) if image.ndim == 3 else image.astype(np.float32)
    h, w = a.shape
    yy, xx = np.nonzero(a > floor)
    if len(yy) == 0:
        return 0.0
    radius = np.maximum(np.abs(yy - h / 2), np.abs(xx - w / 2))
    order = np.argsort(radius)
    cumulative = np.cumsum(a[yy, xx][order]) / a[yy, xx].sum()
    return float(radius[order][min(len(order) - 1, int(np.searchsorted(cumulative, flux)))])


def main(argv: list[str] | None = None) -> dict:
    from tessera.evaluate.benchmarks import load_eval_data

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="any `tessera evaluate --data` spec")
    parser.add_argument("--flux", type=float, default=0.99, help="flux fraction the square must hold")
    parser.add_argument("--floor", type=float, default=0.02, help="pixels at or below this [0, 1] value are ignored")
    parser.add_argument("--input-size", type=int, default=64, help="the encoder's input size")
    args = parser.parse_args(argv)
    images = load_eval_data(args.data).train.images
    side = images[0].shape[-1]
    halves = np.array([half_extent(im, args.flux, args.floor) for im in images])
    nonzero = np.array([(im > 0).mean() for im in images])
    pct = [50, 90, 95, 99]
    result = {
        "data": args.data, "images": len(images), "image_side": int(side),
        "nonzero_fraction_median": float(np.median(nonzero)),
        "half_extent_px": dict(zip(map(str, pct), np.percentile(halves, pct).round(1).tolist())),
        "median_source_px_at_input": round(float(2 * np.median(halves) * args.input_size / side), 1),
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
