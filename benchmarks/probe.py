"""Linear-probe speed: cached D4 features vs the naive loop (encoder on every augmented batch, every epoch).

Prints one JSON object: both wall times, the speed-up, and whether the two probes predict identically.
Usage: OMP_NUM_THREADS=1 python benchmarks/probe.py [--data first:../shared/data/first_radio_galaxies]
       [--model random:vit_tiny_patch8_64] [--max-per-class 40] [--epochs 20]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=f"first:{REPO.parent / 'shared/data/first_radio_galaxies'}")
    parser.add_argument("--model", default="random:vit_tiny_patch8_64")
    parser.add_argument("--max-per-class", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()

    import torch

    from tessera.evaluate.benchmarks import load_eval_data
    from tessera.evaluate.config import LinearConfig
    from tessera.evaluate.features import extract_features
    from tessera.evaluate.folds import stratified_folds
    from tessera.evaluate.linear import predict, train_probe_cached, train_probe_naive

    sys.path.insert(0, str(REPO))
    if args.model.startswith("random:"):
        from tests.evaluate.helpers import tiny_random_encoder  # tessera.load, or the models Encoder until load lands

        encoder = tiny_random_encoder()
    else:
        import tessera

        encoder = tessera.load(args.model)
    data = load_eval_data(args.data, max_per_class=args.max_per_class)
    ls = data.train
    cfg = LinearConfig(epochs=args.epochs, batch_size=args.batch_size)
    folds = stratified_folds(ls.labels, 3, 0)  # the protocol: K = 3 probes share one feature extraction
    device = next(encoder.module.parameters()).device

    t0 = time.perf_counter()
    feats = extract_features(encoder, ls, chunk_size=64)  # all 8 D4 elements, every image (no disk cache: timed cold)
    heads_cached = [train_probe_cached(feats, ls.labels, tr, len(ls.classes), cfg, seed=k) for k, (tr,
        _) in enumerate(folds)]
    t_cached = time.perf_counter() - t0

    t0 = time.perf_counter()
    heads_naive = [train_probe_naive(encoder, ls, tr, len(ls.classes), cfg, seed=k, readout="mean_patch", device=device)
                   for k, (tr, _) in enumerate(folds)]
    t_naive = time.perf_counter() - t0

    same, diff = True, 0.0
    for (_, te), hc, hn in zip(folds, heads_cached, heads_naive):
        p_cached, l_cached = predict(hc, feats[0, te])
        p_naive, l_naive = predict(hn, feats[0, te])
        same &= bool(np.array_equal(p_cached, p_naive))
        diff = max(diff, float(np.abs(l_cached - l_naive).max()))
    print(json.dumps({
        "benchmark": "linear_probe_cached_vs_naive", "data": args.data, "model": args.model, "n_images": len(ls),
        "folds": len(folds), "epochs": args.epochs, "batch_size": args.batch_size, "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "cached_s": round(t_cached, 3), "naive_s": round(t_naive, 3), "speedup": round(t_naive / t_cached, 2),
        "identical_predictions": same,
        "max_abs_logit_diff": diff,
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
