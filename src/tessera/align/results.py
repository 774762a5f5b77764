"""Evaluation in the shared space of an alignment run (seed 003 §6), on the pairs held out of the alignment.

- cross-modal retrieval a->b and b->a: recall@k and median rank (:mod:`tessera.evaluate.retrieval`), for
  (1) the unaligned towers (the backbones' own readouts, the evaluation issue's ``frdeep-pairs:`` baseline;
  only meaningful when both towers share a feature space, e.g. one architecture), (2) the untrained heads
  (the run's step-0 model, rebuilt from its seed), (3) the aligned towers;
- in-modal retrieval: label precision@k within each tower's held-out embeddings when a class target exists;
- zero-shot k-NN (seed 003 §6.1: k = 16): each target of the held-out pairs predicted from the training pairs'
  embeddings (``tessera.evaluate.knn``), R² per target and embedding; the class target as k-NN accuracy;
- few-shot MLP (seed 003 §6: one hidden layer of 32, ``tessera.evaluate.mlp``) on the same split, R² per target.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tessera.align.config import AlignConfig
from tessera.align.trainer import build_model, prepared_pairs, read_split
from tessera.align.towers import Tower, load_tower
from tessera.config import load_saved_config


def embed(fn, x: torch.Tensor, batch: int = 128) -> np.ndarray:
    """fn: (b, ...) -> (b, D) applied in eval/no-grad chunks to x (N, ...) -> (N, D) float32."""
    out = []
    with torch.no_grad():
        for lo in range(0, len(x), batch):
            out.append(fn(x[lo : lo + batch]).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


def tower_embeddings(tower: Tower, x: torch.Tensor, aligned: bool) -> np.ndarray:
    tower.eval()
    if aligned:
        return embed(tower, x)
    return embed(lambda v: tower.backbone(v).readout("mean_patch"), x)


def cross_retrieval(za: np.ndarray, zb: np.ndarray, names, ks, center: bool) -> dict:
    from tessera.evaluate.retrieval import match_ranks, rank_metrics

    a, b = names
    return {f"{a}->{b}": rank_metrics(match_ranks(za, zb, center), ks, n_boot=200),
            f"{b}->{a}": rank_metrics(match_ranks(zb, za, center), ks, n_boot=200)}


def zero_shot(train_z: np.ndarray, test_z: np.ndarray, data_train, data_test, k: int) -> dict:
    """R² of each regression target and k-NN accuracy of the class target, from the embeddings."""
    from tessera.evaluate.knn import knn_predict, knn_regress
    from tessera.evaluate.metrics import regression_metrics

    out = {}
    for name, y in data_train.targets.items():
        pred = knn_regress(train_z, y, test_z, k=k)
        out[name] = regression_metrics(data_test.targets[name], pred)
    if data_train.labels is not None:
        pred = knn_predict(train_z, data_train.labels, test_z, len(data_train.classes), k=k)
        out["class_accuracy"] = float(np.mean(pred == data_test.labels))
    return out


def few_shot(train_z: np.ndarray, test_z: np.ndarray, data_train, data_test, seed: int = 0) -> dict:
    """R² and MAE of each regression target from a width-32 MLP on the embeddings (seed 003 §6)."""
    from tessera.evaluate.metrics import regression_metrics
    from tessera.evaluate.mlp import mlp_regress

    return {name: regression_metrics(data_test.targets[name], mlp_regress(train_z, y, test_z, seed=seed))
            for name, y in data_train.targets.items()}


def _space(za_tr, zb_tr, za_te, zb_te, train, test, names, cfg: AlignConfig) -> dict:
    from tessera.evaluate.retrieval import label_precision

    d = cfg.data
    if za_te.shape[1] == zb_te.shape[1]:
        cross = cross_retrieval(za_te, zb_te, names, d.ks, d.retrieval_center)
    else:  # unaligned towers of different widths share no space
        cross = {"skipped": f"feature widths differ ({za_te.shape[1]} vs {zb_te.shape[1]})"}
    out = {"cross_modal": cross,
           "zero_shot": {names[0]: zero_shot(za_tr, za_te, train, test, d.knn_k),
                         names[1]: zero_shot(zb_tr, zb_te, train, test, d.knn_k)}}
    if train.targets:
        out["few_shot"] = {names[0]: few_shot(za_tr, za_te, train, test, d.split_seed),
                           names[1]: few_shot(zb_tr, zb_te, train, test, d.split_seed)}
    if test.labels is not None:
        out["in_modal"] = {n: label_precision(z, test.labels, d.ks, d.retrieval_center, 200)
                           for n, z in zip(names, (za_te, zb_te))}
    return out


def alignment_results(run_dir: str | Path) -> dict:
    """Unaligned, untrained-head and aligned spaces side by side on the run's held-out pairs (module docstring)."""
    run_dir = Path(run_dir)
    cfg = load_saved_config(AlignConfig, run_dir)
    initial = build_model(cfg)
    data, _, _ = prepared_pairs(cfg, initial)
    train_idx, held_idx = read_split(run_dir)
    train, test = data.subset(train_idx), data.subset(held_idx)
    aligned = (load_tower(run_dir, "a").module, load_tower(run_dir, "b").module)
    spaces = {"unaligned": (initial.a, initial.b, False), "untrained_head": (initial.a, initial.b, True),
              "aligned": (aligned[0], aligned[1], True)}
    out = {"run": str(run_dir), "pairs": cfg.pairs, "n_train": len(train), "n_held_out": len(test),
           "names": list(data.names), "center": cfg.data.retrieval_center}
    for name, (ta, tb, is_aligned) in spaces.items():
        z = [tower_embeddings(t, x, is_aligned) for t, x in ((ta, train.xa), (tb, train.xb), (ta, test.xa),
                                                              (tb, test.xb))]
        out[name] = _space(*z, train, test, data.names, cfg)
    return out
