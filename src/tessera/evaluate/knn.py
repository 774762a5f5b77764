"""Weighted k-NN on frozen features: cosine similarity of l2-normalized features, k nearest training samples vote
with weight exp(sim / T) (DINO-style, T = 0.07, k = 20). No training, no augmentation.

The vote shares are the class scores (ROC AUC); with ``target`` set, the same neighbours and weights give a
weighted mean of their targets (k-NN regression).
"""

from __future__ import annotations

import numpy as np
import torch


def _neighbours(train_feats: np.ndarray, test_feats: np.ndarray, k: int, temperature: float, chunk: int = 1024):
    """Yield (start, top_idx (m, k), weights exp(sim/T) (m, k)) for chunks of the test rows."""
    train = torch.nn.functional.normalize(torch.from_numpy(np.asarray(train_feats, dtype=np.float32)), dim=1)
    k = min(k, len(train))
    for s in range(0, len(test_feats), chunk):
        test = torch.nn.functional.normalize(torch.from_numpy(np.asarray(test_feats[s : s + chunk], dtype=np.float32)),
                                             dim=1)
        sim = test @ train.T  # (m, N) cosine similarities
        top_sim, top_idx = sim.topk(k, dim=1)
        yield s, top_idx, torch.exp(top_sim / temperature)


def knn_votes(train_feats: np.ndarray, train_labels: np.ndarray, test_feats: np.ndarray, n_classes: int,
              k: int = 20, temperature: float = 0.07, chunk: int = 1024) -> np.ndarray:
    """Vote shares (M, C), rows summing to 1: train_feats (N, D), train_labels (N,), test_feats (M, D)."""
    labels = torch.from_numpy(np.asarray(train_labels, dtype=np.int64))
    out = []
    for _, top_idx, weights in _neighbours(train_feats, test_feats, k, temperature, chunk):
        votes = torch.zeros(len(top_idx), n_classes, dtype=torch.float64)
        votes.scatter_add_(1, labels[top_idx], weights.double())
        out.append(votes / votes.sum(dim=1, keepdim=True))
    return torch.cat(out).numpy() if out else np.zeros((0, n_classes))


def knn_predict(train_feats: np.ndarray, train_labels: np.ndarray, test_feats: np.ndarray, n_classes: int,
                k: int = 20, temperature: float = 0.07, chunk: int = 1024) -> np.ndarray:
    """train_feats (N, D), train_labels (N,), test_feats (M, D) -> predicted classes (M,)."""
    return knn_votes(train_feats, train_labels, test_feats, n_classes, k, temperature, chunk).argmax(axis=1)


def knn_regress(train_feats: np.ndarray, train_targets: np.ndarray, test_feats: np.ndarray, k: int = 20,
                temperature: float = 0.07, chunk: int = 1024) -> np.ndarray:
    """Weighted mean of the k nearest training targets, weights exp(sim / T): (M,) float64."""
    targets = torch.from_numpy(np.asarray(train_targets, dtype=np.float64))
    out = []
    for _, top_idx, weights in _neighbours(train_feats, test_feats, k, temperature, chunk):
        w = weights.double()
        out.append((w * targets[top_idx]).sum(dim=1) / w.sum(dim=1))
    return torch.cat(out).numpy()


def _predictor(inp):
    from tessera.evaluate.features import fold_standardizer
    from tessera.evaluate.registry import FoldResult

    cfg = inp.cfg.knn
    feats = inp.features.get("train", inp.layer, d4=False)[0]
    test_feats = feats if inp.data.test is None else inp.features.get("test", inp.layer, d4=False)[0]

    def fit_predict(train_idx, test_idx, seed):
        fold_train, fold_test = feats[train_idx], test_feats[test_idx]
        if cfg.standardize:
            scale = fold_standardizer(fold_train)
            fold_train, fold_test = scale(fold_train), scale(fold_test)
        if inp.task == "regression":
            pred = knn_regress(fold_train, inp.y_train[train_idx], fold_test, cfg.k, cfg.temperature)
            return FoldResult(inp.y_test[test_idx], pred)
        votes = knn_votes(fold_train, inp.y_train[train_idx], fold_test, inp.n_classes, cfg.k, cfg.temperature)
        return FoldResult(inp.y_test[test_idx], votes.argmax(axis=1), votes)

    return fit_predict


def _protocol():
    from tessera.evaluate.registry import Protocol

    return Protocol("knn", frozenset({"features", "labels", "targets"}), frozenset({"classification", "regression"}),
                    predictor=_predictor, label_efficiency=True)


PROTOCOL = _protocol()
