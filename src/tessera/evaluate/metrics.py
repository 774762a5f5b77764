"""Fold metrics and their aggregation (seed 000 §9.1 item 5): macro-F1, weighted-F1, accuracy, summed confusion;
plus balanced accuracy and one-vs-rest macro ROC AUC (issue 11), and R² / MAE for ``target`` regression.

Results written before these metrics existed simply lack their keys: :func:`aggregate` and the tables treat
every metric beyond macro/weighted F1 and accuracy as optional.
"""

from __future__ import annotations

import numpy as np

CLASSIFICATION_METRICS = ("macro_f1", "weighted_f1", "accuracy", "balanced_accuracy", "roc_auc")
REGRESSION_METRICS = ("r2", "mae")


def roc_auc_ovr_macro(y_true: np.ndarray, scores: np.ndarray) -> float | None:
    """One-vs-rest ROC AUC averaged over classes (macro): y_true (N,), scores (N, C) class scores/probabilities.

    A class absent from ``y_true`` (or the only one present) has no defined AUC and is left out of the mean;
    None when no class has both positives and negatives.
    """
    from sklearn.metrics import roc_auc_score

    y_true, scores = np.asarray(y_true), np.asarray(scores, dtype=np.float64)
    aucs = []
    for c in range(scores.shape[1]):
        positive = y_true == c
        if 0 < positive.sum() < len(y_true):
            aucs.append(roc_auc_score(positive, scores[:, c]))
    return float(np.mean(aucs)) if aucs else None


def fold_metrics(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, scores: np.ndarray | None = None) -> dict:
    """Metrics of one held-out fold; ``confusion`` rows = true class, columns = predicted (n_classes, n_classes).

    ``scores`` (N, C), if given, are the protocol's class scores (k-NN vote shares, softmax of a linear head,
    ``predict_proba``) for ``roc_auc``; without them ``roc_auc`` is None.
    """
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score

    labels = list(range(n_classes))
    # balanced accuracy = mean recall over the classes present in y_true (sklearn's definition)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "y_pred contains classes not in y_true"
        balanced = float(balanced_accuracy_score(y_true, y_pred))
    return {
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": balanced,
        "roc_auc": roc_auc_ovr_macro(y_true, scores) if scores is not None else None,
        "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    """R² (coefficient of determination) and mean absolute error of one held-out fold."""
    from sklearn.metrics import mean_absolute_error, r2_score

    return {"r2": float(r2_score(y_true, y_pred)), "mae": float(mean_absolute_error(y_true, y_pred))}


def mean_std(values) -> dict:
    """Mean and population std (ddof=0) over folds."""
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": float(arr.mean()), "std": float(arr.std())}


def aggregate(per_fold: list[dict]) -> dict:
    """Fold metrics -> mean/std per metric and (classification) the summed confusion matrix (DESIGN §3.5).

    A metric is aggregated when every fold has a value for it (``roc_auc`` without scores is left out).
    """
    keys = [k for k in CLASSIFICATION_METRICS + REGRESSION_METRICS if all(f.get(k) is not None for f in per_fold)]
    out = {key: mean_std([f[key] for f in per_fold]) for key in keys}
    if per_fold and "confusion" in per_fold[0]:
        out["confusion"] = np.sum([np.asarray(f["confusion"]) for f in per_fold], axis=0).astype(int).tolist()
    metrics = set(CLASSIFICATION_METRICS + REGRESSION_METRICS) | {"confusion"}
    # per fold: the aggregated metrics, then whatever the protocol recorded about the fold (C, convergence, ...)
    out["per_fold"] = [{k: f[k] for k in keys} | {k: v for k, v in f.items() if k not in metrics} for f in per_fold]
    return out


def recall_matrix(confusion) -> np.ndarray:
    """Recall-form confusion (% of each true class), rows summing to 100 (0 for empty rows); seed 000 Fig. 4."""
    cm = np.asarray(confusion, dtype=np.float64)
    rows = cm.sum(axis=1, keepdims=True)
    return np.divide(100.0 * cm, rows, out=np.zeros_like(cm), where=rows > 0)
