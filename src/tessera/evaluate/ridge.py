"""Ridge probe for ``target`` regression (issue 11): features and target standardized with the training fold's
statistics, ridge regression (scikit-learn ``Ridge``, ``alpha`` = the L2 strength itself) with alpha chosen by
an inner K-fold CV (mean squared error) over 13 log-spaced values 1e-4..1e4, on the identity features."""

from __future__ import annotations

import numpy as np


def alpha_grid(cfg) -> np.ndarray:
    return np.logspace(np.log10(cfg.strength_min), np.log10(cfg.strength_max), cfg.n_values)


def ridge_fold(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, cfg, seed: int) -> tuple[np.ndarray, dict]:
    """x_train (n, D), y_train (n,), x_test (m, D) -> (predictions (m,), {"alpha": chosen})."""
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import KFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x_train, x_test = np.asarray(x_train, np.float64), np.asarray(x_test, np.float64)
    mu, sd = float(np.mean(y_train)), float(np.std(y_train)) or 1.0
    z = (np.asarray(y_train, np.float64) - mu) / sd
    k = min(cfg.inner_folds, len(z))
    splits = list(KFold(k, shuffle=True, random_state=seed).split(x_train))
    errors = []
    for alpha in alpha_grid(cfg):
        err = []
        for tr, va in splits:
            model = make_pipeline(StandardScaler(), Ridge(alpha=float(alpha))).fit(x_train[tr], z[tr])
            err.append(float(np.mean((model.predict(x_train[va]) - z[va]) ** 2)))
        errors.append(np.mean(err))
    alpha = float(alpha_grid(cfg)[int(np.argmin(errors))])
    model = make_pipeline(StandardScaler(), Ridge(alpha=alpha)).fit(x_train, z)
    return model.predict(x_test) * sd + mu, {"alpha": alpha}


def _predictor(inp):
    from tessera.evaluate.registry import FoldResult

    feats = inp.features.get("train", inp.layer, d4=False)[0]
    test_feats = feats if inp.data.test is None else inp.features.get("test", inp.layer, d4=False)[0]

    def fit_predict(train_idx, test_idx, seed):
        pred, info = ridge_fold(feats[train_idx], inp.y_train[train_idx], test_feats[test_idx], inp.cfg.ridge, seed)
        return FoldResult(inp.y_test[test_idx], pred, None, info)

    return fit_predict


def _protocol():
    from tessera.evaluate.registry import Protocol

    return Protocol("ridge", frozenset({"features", "targets"}), frozenset({"regression"}), predictor=_predictor)


PROTOCOL = _protocol()
