"""A fast probe of the lensing population's learnability (issue 16), used to choose the simulator's macro-lens
ranges before the tessera-run calibration (benchmarks/lensing_calibration.py). Prints one JSON object.

It renders N lenses per class with ``tessera.simulate.lensing.render_sample`` (the simulator's own streams, per-image
min-max stretch) and trains a plain 4-stage CNN (two 3x3 conv + BN + ReLU per stage, 16-128 channels, max-pool,
global average pool) from scratch on 80 % of them for a few epochs (AdamW, one-cycle lr 2e-3, batch 64, random D4
transforms), then reports the macro one-vs-rest ROC AUC on the other 20 % (predictions averaged over 4 rotations)
after every epoch. It is a probe, not the calibration: it holds out one split, and it runs in a few CPU-minutes
per population, so several populations can be compared. The calibration's number comes from ``tessera evaluate``.

    PYTHONPATH=src OMP_NUM_THREADS=1 .venv/bin/python benchmarks/lensing_population_probe.py \\
        --per-class 1000 --epochs 12 source_offset_arcsec=0.05 'axis_ratio_range=[0.9,1.0]'
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from torch import nn


def simulate(cfg, per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 1, S, S) float32 min-max stretched, labels (N,)) for every class of ``cfg``."""
    from tessera.simulate.config import LENSING_CLASSES
    from tessera.simulate.lensing import render_sample

    images, labels = [], []
    for label in cfg.classes:
        k = LENSING_CLASSES.index(label)
        for i in range(per_class):
            image = render_sample(label, np.random.default_rng([cfg.seed, k, i]), cfg).image
            images.append((image - image.min()) / (image.max() - image.min()))
            labels.append(k)
    return np.stack(images)[:, None].astype(np.float32), np.asarray(labels)


def small_cnn(classes: int) -> nn.Module:
    def stage(c_in: int, c_out: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(),
                             nn.Conv2d(c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(2))

    return nn.Sequential(stage(1, 16), stage(16, 32), stage(32, 64), stage(64, 128), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(128, classes))


def random_d4(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    x = torch.rot90(x, int(torch.randint(0, 4, (1,), generator=generator)), (2, 3))
    return torch.flip(x, (3,)) if torch.rand(1, generator=generator) < 0.5 else x


def train_and_score(images: np.ndarray, labels: np.ndarray, epochs: int, seed: int = 0, batch: int = 64) -> dict:
    from sklearn.metrics import confusion_matrix, roc_auc_score

    order = np.random.default_rng(seed).permutation(len(labels))
    cut = int(0.8 * len(labels))
    train, test = order[:cut], order[cut:]
    x_train, y_train = torch.from_numpy(images[train]), torch.from_numpy(labels[train])
    x_test = torch.from_numpy(images[test])
    torch.manual_seed(seed)
    model = small_cnn(int(labels.max()) + 1)
    steps_per_epoch = len(train) // batch
    opt = torch.optim.AdamW(model.parameters(), 2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=epochs * steps_per_epoch)
    generator = torch.Generator().manual_seed(seed)
    curve = []
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(train), generator=generator)
        for b in range(steps_per_epoch):
            j = perm[b * batch : (b + 1) * batch]
            loss = nn.functional.cross_entropy(model(random_d4(x_train[j], generator)), y_train[j])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        model.eval()
        with torch.no_grad():
            logits = sum(model(torch.rot90(x_test, k, (2, 3))) for k in range(4))
        probs = torch.softmax(logits, 1).numpy()
        curve.append(round(float(roc_auc_score(labels[test], probs, multi_class="ovr", average="macro")), 3))
    return {"roc_auc": curve[-1], "roc_auc_per_epoch": curve,
            "per_class_auc": [round(float(roc_auc_score(labels[test] == k, probs[:, k])), 3)
                              for k in range(probs.shape[1])],
            "confusion": confusion_matrix(labels[test], probs.argmax(1)).tolist(), "n_train": len(train),
            "n_test": len(test)}


def main() -> None:
    from tessera.config import apply_overrides
    from tessera.simulate.config import SimulateLensingConfig

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="SimulateLensingConfig overrides")
    parser.add_argument("--per-class", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=12)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = apply_overrides(SimulateLensingConfig(), args.overrides)
    cfg.validate()
    t0 = time.perf_counter()
    images, labels = simulate(cfg, args.per_class)
    t1 = time.perf_counter()
    result = train_and_score(images, labels, args.epochs)
    report = {"overrides": args.overrides, "per_class": args.per_class, "epochs": args.epochs, **result,
              "simulate_s": round(t1 - t0, 1), "train_s": round(time.perf_counter() - t1, 1)}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
