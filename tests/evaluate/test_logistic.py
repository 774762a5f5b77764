"""The converged logistic probe: equals a direct scikit-learn fit; invariant to offset and scale, unlike the strict
probe."""

import numpy as np
import pytest

from tessera.evaluate.config import EvalConfig, LinearConfig
from tessera.evaluate.datasets import EvalData
from tessera.evaluate.features import extract_features
from tessera.evaluate.folds import stratified_folds
from tessera.evaluate.logistic import c_grid
from tessera.evaluate.registry import ProtocolInput, get_protocol

from tests.evaluate.doubles import TinyEncoder, synthetic_set


class ArrayFeatures:
    """A FeatureProvider stand-in serving fixed (8, N, D) D4 features."""

    def __init__(self, feats):
        self.feats = feats

    def get(self, split, layer, d4=False):
        return self.feats if d4 else self.feats[:1]


@pytest.fixture(scope="module")
def setup():
    ls = synthetic_set(n_per_class=12, seed=3)
    feats = extract_features(TinyEncoder(), ls, d4=True)  # (8, N, D)
    return ls, feats, stratified_folds(ls.labels, 3, 0)


def _predict(protocol, ls, feats, folds, cfg):
    inp = ProtocolInput(encoder=None, data=EvalData("syn", ls), layer=2, readout="mean_patch", cfg=cfg,
                        features=ArrayFeatures(feats), device="cpu")
    predictor = get_protocol(protocol).predictor(inp)
    return [predictor(tr, te, k) for k, (tr, te) in enumerate(folds)]


def test_c_grid_is_inverse_strength():
    grid = c_grid(EvalConfig().logistic)
    assert len(grid) == 13 and np.isclose(grid.min(), 1e-4) and np.isclose(grid.max(), 1e4)
    np.testing.assert_allclose(np.log10(grid), np.linspace(-4, 4, 13))


def test_logistic_equals_direct_sklearn_fit(setup):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    ls, feats, folds = setup
    cfg = EvalConfig(progress=False)
    results = _predict("logistic", ls, feats, folds, cfg)
    avg = feats.mean(axis=0)  # the default: D4-averaged features
    for (tr, te), fr in zip(folds, results):
        assert fr.info["converged"] and fr.info["C"] in c_grid(cfg.logistic)
        scaler = StandardScaler().fit(avg[tr].astype(np.float64))
        direct = LogisticRegression(C=fr.info["C"], solver="lbfgs", max_iter=10000, class_weight="balanced")
        direct.fit(scaler.transform(avg[tr].astype(np.float64)), ls.labels[tr])
        np.testing.assert_array_equal(fr.y_pred, direct.predict(scaler.transform(avg[te].astype(np.float64))))
        np.testing.assert_allclose(fr.scores.sum(axis=1), 1.0, atol=1e-9)


def test_offset_and_scale_change_strict_probe_not_logistic(setup):
    ls, feats, folds = setup
    cfg = EvalConfig(progress=False, linear=LinearConfig(epochs=5, batch_size=16))
    variants = {"plain": feats, "offset": feats + 50.0, "scaled": feats * 1e-3}
    logistic = {k: np.concatenate([fr.y_pred for fr in _predict("logistic", ls, f, folds, cfg)]) for k,
                f in variants.items()}
    strict = {k: np.concatenate([fr.y_pred for fr in _predict("linear", ls, f, folds, cfg)]) for k,
              f in variants.items()}
    np.testing.assert_array_equal(logistic["plain"], logistic["offset"])
    np.testing.assert_array_equal(logistic["plain"], logistic["scaled"])
    # The strict probe (raw features, fixed AdamW budget) depends on the features' offset and scale: why both exist.
    assert np.any(strict["plain"] != strict["offset"]) or np.any(strict["plain"] != strict["scaled"])


def test_augment_rows_and_nonconvergence_reported(setup):
    ls, feats, folds = setup
    cfg = EvalConfig(progress=False)
    cfg.logistic.d4 = "augment"
    cfg.logistic.max_iter = 2
    cfg.logistic.n_values = 2
    results = _predict("logistic", ls, feats, folds, cfg)
    assert all(not fr.info["converged"] and fr.info["n_iter"] == 2 for fr in results)
    assert all(len(fr.y_pred) == len(te) for fr, (_, te) in zip(results, folds))


def test_warm_started_regularization_path_equals_cold_fits():
    """choose_c warm-starts each C from the previous one (speed); the converged scores must be those of cold fits."""
    from tessera.evaluate.config import LogisticConfig
    from tessera.evaluate.logistic import _cv_score, _regularization_path, c_grid, fit_logistic

    rng = np.random.default_rng(0)
    x = rng.normal(size=(90, 6)) + np.repeat(np.eye(3, 6) * 1.5, 30, axis=0)
    y = np.repeat(np.arange(3), 30)
    cfg = LogisticConfig(tol=1e-8)
    tr, va = np.arange(90) % 3 != 0, np.arange(90) % 3 == 0
    warm = _regularization_path(x[tr], y[tr], x[va], y[va], c_grid(cfg), cfg)
    cold = []
    for C in c_grid(cfg):
        model, _, _ = fit_logistic(x[tr], y[tr], C, cfg)  # its own StandardScaler, fitted on the same rows
        cold.append(_cv_score(model, x[va], y[va], cfg.cv_scoring, np.unique(y)))
    assert np.allclose(warm, cold, atol=1e-5)
