"""Fold metrics and their aggregation (seed 000 §9.1 item 5): macro-F1, weighted-F1, accuracy, summed confusion."""

from __future__ import annotations

import numpy as np


def fold_metrics(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> dict:
    """Metrics of one held-out fold; ``confusion`` rows = true class, columns = predicted (n_classes, n_classes)."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    labels = list(range(n_classes))
    return {
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def mean_std(values) -> dict:
    """Mean and population std (ddof=0) over folds."""
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": float(arr.mean()), "std": float(arr.std())}


def aggregate(per_fold: list[dict]) -> dict:
    """Fold metrics -> mean/std per metric and the summed confusion matrix (DESIGN §3.5)."""
    out = {key: mean_std([f[key] for f in per_fold]) for key in ("macro_f1", "weighted_f1", "accuracy")}
    out["confusion"] = np.sum([np.asarray(f["confusion"]) for f in per_fold], axis=0).astype(int).tolist()
    out["per_fold"] = [{k: f[k] for k in ("macro_f1", "weighted_f1", "accuracy")} for f in per_fold]
    return out


def recall_matrix(confusion) -> np.ndarray:
    """Recall-form confusion (% of each true class), rows summing to 100 (0 for empty rows); seed 000 Fig. 4."""
    cm = np.asarray(confusion, dtype=np.float64)
    rows = cm.sum(axis=1, keepdims=True)
    return np.divide(100.0 * cm, rows, out=np.zeros_like(cm), where=rows > 0)
