"""The converged linear probe (issue 11): the question "how linearly separable are these features", without the
optimizer-budget and feature-scale artefacts of the strict probe (seed 000 §9.2 makes 60-80 AdamW steps on raw
features). This is the linear-probe protocol of CLIP (Radford et al. 2021, §3.2) and most SSL papers:

1. standardize every feature with the training fold's mean and std (so an offset or scale of the features
   changes nothing: the test in tests/evaluate/test_logistic.py shows the strict probe does change);
2. multinomial logistic regression (scikit-learn, L-BFGS) run to convergence (``max_iter``; a fit that stops
   there is reported, never hidden), balanced class weights;
3. L2 strength per outer fold from an inner stratified K-fold CV over 13 log-spaced values 1e-4..1e4.
   scikit-learn's ``C`` is the inverse strength (lambda = 1 / C); the grid is symmetric, so it is also the C grid.

Features are the D4-averaged cache by default (``logistic.d4``: "average" | "augment" | "none").
"""

from __future__ import annotations

import warnings

import numpy as np


def c_grid(cfg) -> np.ndarray:
    """The C values tried: 1 / strength for ``n_values`` log-spaced strengths in [strength_min, strength_max]."""
    strengths = np.logspace(np.log10(cfg.strength_min), np.log10(cfg.strength_max), cfg.n_values)
    return np.sort(1.0 / strengths)


def _balanced_weights(y: np.ndarray) -> np.ndarray:
    """Per-row weights n / (C_present * count_c), as class_weight="balanced"."""
    classes, counts = np.unique(y, return_counts=True)
    w = {c: len(y) / (len(classes) * n) for c, n in zip(classes, counts)}
    return np.array([w[c] for c in y])


def fit_logistic(x: np.ndarray, y: np.ndarray, C: float, cfg):
    """StandardScaler (fit on x) + LogisticRegression(lbfgs, balanced, C) -> (pipeline, converged, n_iter).

    x: (n, D), y: (n,) class ids."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=float(C), solver="lbfgs", max_iter=cfg.max_iter,
                                                               tol=cfg.tol, class_weight="balanced"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # recorded below instead of printed per fit
        model.fit(np.asarray(x, dtype=np.float64), y)
    n_iter = int(np.max(model[-1].n_iter_))
    return model, n_iter < cfg.max_iter, n_iter


def _cv_score(model, x: np.ndarray, y: np.ndarray, scoring: str, classes: np.ndarray) -> float:
    """Higher is better: minus the class-balanced log loss, or macro-F1."""
    from sklearn.metrics import f1_score, log_loss

    if scoring == "macro_f1":
        return float(f1_score(y, model.predict(x), average="macro", zero_division=0))
    proba = model.predict_proba(x)
    return -float(log_loss(y, proba, labels=model.classes_, sample_weight=_balanced_weights(y)))


def _regularization_path(x_tr, y_tr, x_va, y_va, grid: np.ndarray, cfg) -> list[float]:
    """Validation scores of one inner split for every C of ``grid`` (ascending), each fit warm-started from the
    previous, stronger-regularized solution. The objective is strictly convex, so the converged solution does not
    depend on the starting point; only the iterations do (cold starts at C = 1e4 took thousands of L-BFGS
    iterations on FIRST)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(np.asarray(x_tr, dtype=np.float64))
    x_tr = scaler.transform(np.asarray(x_tr, dtype=np.float64))
    x_va = scaler.transform(np.asarray(x_va, dtype=np.float64))
    model = LogisticRegression(solver="lbfgs", max_iter=cfg.max_iter, tol=cfg.tol, class_weight="balanced",
                               warm_start=True)
    scores = []
    for C in grid:
        model.set_params(C=float(C))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(x_tr, y_tr)
        scores.append(_cv_score(model, x_va, y_va, cfg.cv_scoring, np.unique(y_tr)))
    return scores


def choose_c(rows_of, y: np.ndarray, cfg, seed: int) -> tuple[float, dict]:
    """Inner stratified CV over the C grid on one training fold.

    rows_of(sample_idx) -> (x_rows, y_rows) expands training samples to their rows (one row, or 8 with D4
    augmentation: the inner folds split samples, never the rows of one image). y: (n,) labels of the samples.
    Returns (best C, {"C": ..., "cv_score": ...}); with fewer than 2 samples of some class, C = 1 (no CV).
    """
    from sklearn.model_selection import StratifiedKFold

    counts = np.bincount(y)
    counts = counts[counts > 0]
    k = min(cfg.inner_folds, int(counts.min()))
    grid = c_grid(cfg)
    if k < 2 or len(counts) < 2:
        return 1.0, {"C": 1.0, "cv_score": None}
    splits = list(StratifiedKFold(k, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))
    per_split = [_regularization_path(*rows_of(tr), *rows_of(va), grid, cfg) for tr, va in splits]
    scores = [float(np.mean([split[i] for split in per_split])) for i in range(len(grid))]
    best = int(np.argmax(scores))  # first maximum: the smallest C, i.e. the strongest regularization, wins ties
    return float(grid[best]), {"C": float(grid[best]), "cv_score": scores[best]}


def logistic_fold(train_rows, test_x: np.ndarray, y_train: np.ndarray, cfg, seed: int):
    """Fit on one outer training fold and score its test rows.

    train_rows(local_idx) -> (x, y) rows of training samples ``local_idx`` (indices into y_train);
    test_x (m, D). Returns (pred (m,), proba (m, C_present) aligned to ``classes``, classes, info)."""
    C, info = choose_c(train_rows, y_train, cfg, seed)
    x, y = train_rows(np.arange(len(y_train)))
    model, converged, n_iter = fit_logistic(x, y, C, cfg)
    info = {**info, "converged": bool(converged), "n_iter": n_iter}
    return model.predict(np.asarray(test_x, dtype=np.float64)), model.predict_proba(np.asarray(test_x,
        dtype=np.float64)), \
        model.classes_, info


def _d4_views(inp, split: str, mode: str) -> np.ndarray:
    """(E, N, D): the 8 D4 features ("augment"), their mean ((1, N, D), "average") or the identity ("none")."""
    if mode == "none":
        return inp.features.get(split, inp.layer, d4=False)
    feats = inp.features.get(split, inp.layer, d4=True)
    return feats if mode == "augment" else feats.mean(axis=0, keepdims=True)


def _predictor(inp):
    from tessera.evaluate.registry import FoldResult

    cfg = inp.cfg.logistic
    train = _d4_views(inp, "train", cfg.d4)  # (E, N, D)
    test = train if inp.data.test is None else _d4_views(inp, "test", cfg.d4)
    test_x = test[0] if cfg.d4 != "augment" else inp.features.get("test" if inp.data.test is not None else "train",
                                                                   inp.layer, d4=False)[0]
    y_all = inp.y_train

    def fit_predict(train_idx, test_idx, seed):
        train_idx = np.asarray(train_idx)
        y_train = y_all[train_idx]

        def rows_of(local):
            samples = train_idx[np.asarray(local)]
            x = train[:, samples].reshape(-1, train.shape[-1])  # element-major: E blocks of the samples
            return x, np.tile(y_all[samples], train.shape[0])

        pred, proba, classes, info = logistic_fold(rows_of, test_x[test_idx], y_train, cfg, seed)
        scores = np.zeros((len(test_idx), inp.n_classes))
        scores[:, classes] = proba  # a class absent from the training fold scores 0
        return FoldResult(inp.y_test[test_idx], pred, scores, info)

    return fit_predict


def _protocol():
    from tessera.evaluate.registry import Protocol

    return Protocol("logistic", frozenset({"d4_features", "labels"}), frozenset({"classification"}),
                    predictor=_predictor, label_efficiency=True)


PROTOCOL = _protocol()
