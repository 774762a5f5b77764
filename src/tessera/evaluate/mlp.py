"""Few-shot regression probe (seed 003 §6, "few-shot"): a single-hidden-layer MLP of width 32 trained on frozen
embeddings to regress a target, next to the zero-shot k-NN (``tessera.evaluate.knn``).

Features and target are standardized with the training fold's statistics (the MLP's optimizer and L2 penalty
then see unit-scale inputs whatever the encoder's feature scale); scikit-learn ``MLPRegressor`` (ReLU, Adam,
L2 alpha 1e-3) with early stopping on a 10 % validation split of the training fold, seeded by the fold seed.
"""

from __future__ import annotations

import warnings

import numpy as np

HIDDEN = 32  # seed 003 §6: "a single-hidden-layer MLP with width w = 32"


def mlp_regress(train_feats: np.ndarray, train_targets: np.ndarray, test_feats: np.ndarray, hidden: int = HIDDEN,
                seed: int = 0, max_iter: int = 500) -> np.ndarray:
    """train_feats (N, D), train_targets (N,), test_feats (M, D) -> predictions (M,) float64."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPRegressor

    x_train = np.asarray(train_feats, np.float64)
    x_test = np.asarray(test_feats, np.float64)
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    y = np.asarray(train_targets, np.float64)
    mu, sd = float(y.mean()), float(y.std()) or 1.0
    model = MLPRegressor(hidden_layer_sizes=(hidden,), alpha=1e-3, max_iter=max_iter, random_state=seed,
                         early_stopping=len(y) >= 20, validation_fraction=0.1, n_iter_no_change=20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter is the budget; the R² reports the outcome
        model.fit((x_train - mean) / std, (y - mu) / sd)
    return model.predict((x_test - mean) / std) * sd + mu


def _predictor(inp):
    from tessera.evaluate.registry import FoldResult

    feats = inp.features.get("train", inp.layer, d4=False)[0]
    test_feats = feats if inp.data.test is None else inp.features.get("test", inp.layer, d4=False)[0]

    def fit_predict(train_idx, test_idx, seed):
        pred = mlp_regress(feats[train_idx], inp.y_train[train_idx], test_feats[test_idx], seed=seed)
        return FoldResult(inp.y_test[test_idx], pred, None, {"hidden": HIDDEN})

    return fit_predict


def _protocol():
    from tessera.evaluate.registry import Protocol

    return Protocol("mlp", frozenset({"features", "targets"}), frozenset({"regression"}), predictor=_predictor)


PROTOCOL = _protocol()
