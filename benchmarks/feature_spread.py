"""How spread out, and how class-separated, are the features the probes see? Prints one JSON object.

Per ``--model`` (any ``tessera evaluate --model`` spec), on the images of ``--data`` (optionally at
``--center-crop N``): the effective rank of the fold-free standardized readout features (the exponential of the
entropy of their PCA spectrum, Roy & Vetterli 2007), the share of the uncentred features' energy in their first
singular direction (the common component that the seed's strict linear probe and raw k-NN see and the
offset-invariant probes remove), the mean pairwise cosine, and the ratio of between-class to within-class
variance of the standardized features. Used in the README to say why pretrained encoders lose to random init
under the converged probe (issue 12). Run from the repository root:

    PYTHONPATH=src .venv/bin/python benchmarks/feature_spread.py --data first:../shared/data/first_radio_galaxies \
        --center-crop 128 --model random:resnet_tiny_64 --model RUN
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def effective_rank(z: np.ndarray) -> float:
    """exp(entropy) of the normalized squared singular values of the (N, D) matrix ``z``."""
    s = np.linalg.svd(z, compute_uv=False) ** 2
    p = s / s.sum()
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def class_variance_ratio(z: np.ndarray, labels: np.ndarray) -> float:
    """trace(between-class scatter) / trace(within-class scatter) of ``z``."""
    mean = z.mean(axis=0)
    between = sum((labels == c).sum() * np.sum((z[labels == c].mean(axis=0) - mean) ** 2) for c in np.unique(labels))
    within = sum(np.sum((z[labels == c] - z[labels == c].mean(axis=0)) ** 2) for c in np.unique(labels))
    return float(between / within)


def spread(features: np.ndarray, labels: np.ndarray) -> dict:
    f = features.astype(np.float64)
    z = (f - f.mean(axis=0)) / (f.std(axis=0) + 1e-8)
    energy = np.linalg.svd(f, compute_uv=False) ** 2
    unit = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
    return {"dim": int(f.shape[1]), "effective_rank_standardized": round(effective_rank(z), 2),
            "top_direction_energy_share": round(float(energy[0] / energy.sum()), 4),
            "mean_pairwise_cosine": round(float((unit @ unit.T).mean()), 4),
            "class_variance_ratio": round(class_variance_ratio(z, labels), 4)}


def main(argv: list[str] | None = None) -> dict:
    from tessera.evaluate.benchmarks import load_eval_data
    from tessera.evaluate.datasets import center_cropped
    from tessera.evaluate.features import extract_features, resolve_readout
    from tessera.evaluate.protocol import resolve_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="any `tessera evaluate --data` spec (its training images)")
    parser.add_argument("--model", action="append", required=True, help="any `tessera evaluate --model` spec")
    parser.add_argument("--center-crop", type=int, default=None, help="the evaluation key center_crop=N")
    args = parser.parse_args(argv)
    data = load_eval_data(args.data).train
    if args.center_crop is not None:
        data = center_cropped(data, args.center_crop)
    result = {"data": args.data, "center_crop": args.center_crop, "images": len(data), "models": {}}
    for ref in args.model:
        name, encoder = resolve_model(ref)
        features = extract_features(encoder, data, readout=resolve_readout(encoder, "auto"), d4=False)[0]
        result["models"][name] = spread(features, np.asarray(data.labels))
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
