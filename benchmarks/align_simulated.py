"""Simulated image <-> spectrum alignment (issue 14's README result): zero-shot k-NN and few-shot MLP R² of the
spectral index and the angular size from the image tower, the spectrum tower and the aligned space, against
supervised baselines trained end to end on the same labels.

Steps (all on CPU, tiny towers):
1. ``simulate_pairs``: N sources, each a 64 px image and a 200-channel spectrum (tessera.simulate.pairs);
2. a seeded split into the alignment's training pairs and held-out pairs (``tessera.align``'s own split);
3. the spectrum tower (dim 64, 2 blocks) pretrained by masked modelling on the training spectra only, through
   the engine (``tessera.align.spectrum_pretrain.pretrain_spectra``: a spectrum store of the training spectra and
   ``tessera pretrain --config spectrum``, objective ``spectrum-masked``; 6 segments of ``--segment-width``
   channels: seed 003's 6 x 30 of a 7781-channel spectrum would hide 90 % of 200 channels);
4. the image tower: a random-init ``vit_micro_patch8_32`` (no image pretraining fits this budget; say so);
5. ``tessera align`` on the training pairs (frozen backbones unless ``--trainable-blocks``), then
   ``alignment_results``: zero-shot k-NN (k = 16) and few-shot MLP (width 32) R² on the held-out pairs, per tower,
   unaligned (the backbone's mean patch token) and aligned (the tower's shared-space embedding);
6. supervised baselines on the same split and labels: a small CNN on the images and an MLP on the raw spectra.

Prints one JSON object. Usage (about 5 CPU-minutes at the defaults):
    OMP_NUM_THREADS=1 python benchmarks/align_simulated.py [--n 1500] [--steps 400] [--trainable-blocks K]
        [--seed S] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

TARGETS = ("spectral_index", "angular_size_arcsec")


def supervised_cnn(x_train, y_train, x_test, epochs: int, seed: int = 0) -> np.ndarray:
    """A small CNN regressing the standardized targets from images end to end: (N, 1, S, S) -> (M, T)."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    mu, sd = y_train.mean(0), y_train.std(0) + 1e-9
    y = torch.from_numpy(((y_train - mu) / sd).astype(np.float32))
    net = nn.Sequential(nn.Conv2d(1, 16, 3, 2, 1), nn.GELU(), nn.Conv2d(16, 32, 3, 2, 1), nn.GELU(),
                        nn.Conv2d(32, 64, 3, 2, 1), nn.GELU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(64, 64), nn.GELU(), nn.Linear(64, y.shape[1]))
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(y), generator=g).split(64):
            xb = x_train[idx]
            flip = torch.rand(len(idx), generator=g) < 0.5  # the targets do not depend on orientation
            xb = torch.where(flip[:, None, None, None], xb.flip(-1), xb)
            loss = ((net(xb) - y[idx]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        return net.eval()(x_test).numpy() * sd + mu


def spectrum_features(x) -> np.ndarray:
    """Raw spectra (N, 1, L) with NaN -> the tower's own input view as flat features: Z-scored flux with 0 at
    missing channels, the validity mask, and (mean, log std): (N, 2L + 2)."""
    from tessera.models.spectrum import zscore_spectra

    z, valid, stats = zscore_spectra(x.float())
    return np.concatenate([z.flatten(1).numpy(), valid.flatten(1).numpy(), stats.numpy()], axis=1)


def supervised_spectrum_mlp(x_train, y_train, x_test, seed: int = 0) -> np.ndarray:
    from sklearn.neural_network import MLPRegressor
    from sklearn.preprocessing import StandardScaler

    ftr, fte = spectrum_features(x_train), spectrum_features(x_test)
    scale = StandardScaler().fit(ftr)
    mu, sd = y_train.mean(0), y_train.std(0) + 1e-9
    mlp = MLPRegressor(hidden_layer_sizes=(128,), alpha=1e-3, max_iter=400, early_stopping=True, n_iter_no_change=20,
                       random_state=seed).fit(scale.transform(ftr), (y_train - mu) / sd)
    return mlp.predict(scale.transform(fte)) * sd + mu


def r2_table(y_true: np.ndarray, pred: np.ndarray) -> dict:
    from sklearn.metrics import r2_score

    return {t: round(float(r2_score(y_true[:, i], pred[:, i])), 4) for i, t in enumerate(TARGETS)}


def _pick(results: dict, space: str, kind: str, tower: str) -> dict:
    block = results[space].get(kind, {}).get(tower, {})
    return {t: round(block[t]["r2"], 4) for t in TARGETS if t in block}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1500)
    parser.add_argument("--steps", type=int, default=400, help="alignment steps")
    parser.add_argument("--pretrain-steps", type=int, default=300, help="spectrum masked-modelling steps")
    parser.add_argument("--segment-width", type=int, default=8)
    parser.add_argument("--trainable-blocks", type=int, default=0)
    parser.add_argument("--cnn-epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0, help="simulation, split and training seed")
    parser.add_argument("--out", default=None, help="keep the simulated data and runs here (default: a temp dir)")
    args = parser.parse_args()

    import torch

    from tessera.align.config import AlignConfig
    from tessera.align.results import alignment_results
    from tessera.align.spectrum_pretrain import SpectrumPretrainConfig, pretrain_spectra
    from tessera.align.trainer import align, build_model, prepared_pairs
    from tessera.config import resolve_config
    from tessera.models.spectrum import SpectrumEncoder
    from tessera.simulate.pairs import SimulatePairsConfig, simulate_pairs

    torch.set_num_threads(1)
    tmp = None if args.out else tempfile.TemporaryDirectory()
    root = Path(args.out or tmp.name)
    times = {}

    t = time.perf_counter()
    pairs_csv = simulate_pairs(SimulatePairsConfig(n=args.n, seed=args.seed), root / "sim", overwrite=True)
    times["simulate_s"] = time.perf_counter() - t

    overrides = ["a=random:vit_micro_patch8_32", f"b={root / 'spectrum_run' / 'model'}", f"pairs={pairs_csv}",
                 "head.dim=64", "head.hidden=64", "head.heads=4", f"train.max_steps={args.steps}",
                 "train.batch_size=64", "train.lr=1e-3", "train.warmup_fraction=0.05", "train.progress=false",
                 f"train.trainable_blocks={args.trainable_blocks}", "train.checkpoint_every=100000",
                 "train.device=cpu", f"train.seed={args.seed}", f"data.split_seed={args.seed}"]
    # 3. the spectrum tower, pretrained on the alignment's training spectra only (the split is the aligner's own)
    t = time.perf_counter()
    cfg0 = resolve_config(AlignConfig, None, [o if not o.startswith("b=") else "b=random-spectrum:200"
                                              for o in overrides])
    data, train_idx, held_idx = prepared_pairs(cfg0, build_model(cfg0))
    times["read_pairs_s"] = time.perf_counter() - t
    t = time.perf_counter()
    torch.manual_seed(args.seed)
    encoder = SpectrumEncoder(200, dim=64, depth=2, heads=4)
    losses = pretrain_spectra(encoder, data.xb[torch.as_tensor(train_idx)], root / "spectrum_run",
                              SpectrumPretrainConfig(steps=args.pretrain_steps, batch_size=64, lr=1e-3,
                                                     width=args.segment_width, seed=args.seed))
    times["spectrum_pretrain_s"] = time.perf_counter() - t

    # 5. alignment and its held-out evaluation
    t = time.perf_counter()
    cfg = resolve_config(AlignConfig, None, overrides)
    run = align(cfg, root / "align_run", overwrite=True)
    times["align_s"] = time.perf_counter() - t
    t = time.perf_counter()
    res = alignment_results(run)
    times["evaluate_s"] = time.perf_counter() - t

    # 6. supervised baselines on the same split
    t = time.perf_counter()
    y = np.stack([data.targets[k] for k in TARGETS], axis=1)
    tr, te = torch.as_tensor(train_idx), torch.as_tensor(held_idx)
    cnn = supervised_cnn(data.xa[tr], y[train_idx], data.xa[te], args.cnn_epochs, args.seed)
    mlp = supervised_spectrum_mlp(data.xb[tr], y[train_idx], data.xb[te], args.seed)
    times["supervised_s"] = time.perf_counter() - t

    names = res["names"]
    report = {
        "benchmark": "align_simulated", "seed": args.seed, "n_pairs": len(data), "n_train": len(train_idx),
        "n_held_out": len(held_idx),
        "towers": {"image": "random:vit_micro_patch8_32 (random init)",
                   "spectrum": f"SpectrumEncoder(200, dim=64, depth=2), {args.pretrain_steps} masked-modelling "
                               f"steps (6 x {args.segment_width} channels)"},
        "align": {"steps": args.steps, "batch_size": 64, "trainable_blocks": args.trainable_blocks,
                  "head_dim": 64},
        "spectrum_pretrain_loss": {"first": round(losses[0], 4),
                                   "last_mean_10": round(float(np.mean(losses[-10:])), 4)},
        "zero_shot_knn_r2": {tower: {space: _pick(res, space, "zero_shot", name)
                                     for space in ("unaligned", "untrained_head", "aligned")}
                             for tower, name in zip(("image", "spectrum"), names)},
        "few_shot_mlp_r2": {tower: {space: _pick(res, space, "few_shot", name)
                                    for space in ("unaligned", "untrained_head", "aligned")}
                            for tower, name in zip(("image", "spectrum"), names)},
        "supervised_r2": {"image_cnn": r2_table(y[held_idx], cnn), "spectrum_mlp": r2_table(y[held_idx], mlp)},
        "aligned_retrieval": {d: {k: round(v["mean"], 4) for k, v in m.items() if k.startswith(("recall", "median"))}
                              for d, m in res["aligned"]["cross_modal"].items()},
        "seconds": {k: round(v, 1) for k, v in times.items()},
    }
    print(json.dumps(report, indent=1))
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
