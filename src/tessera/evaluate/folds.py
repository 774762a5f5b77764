"""Stratified K-fold splits and balanced class weights (seed 000 §9.1 item 4)."""

from __future__ import annotations

import numpy as np


def stratified_folds(labels: np.ndarray, k: int = 3, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """K (train_idx, test_idx) pairs: sklearn StratifiedKFold(shuffle=True, random_state=seed), as in seed 000 §9.1.

    labels: (N,) int. Test folds are disjoint and cover every sample once.
    """
    from sklearn.model_selection import StratifiedKFold

    labels = np.asarray(labels)
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return [(np.asarray(tr), np.asarray(te)) for tr, te in splitter.split(np.zeros(len(labels)), labels)]


def balanced_class_weights(train_labels: np.ndarray, n_classes: int) -> np.ndarray:
    """sklearn "balanced" weights n / (C_present * count_c), computed on the training folds only.

    A class absent from the training folds gets weight 0 (it contributes no loss term anyway).
    Returns (n_classes,) float32.
    """
    train_labels = np.asarray(train_labels)
    counts = np.bincount(train_labels, minlength=n_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(n_classes)
    weights[present] = len(train_labels) / (present.sum() * counts[present])
    return weights.astype(np.float32)
