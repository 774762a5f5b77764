"""The few-shot MLP probe (seed 003 §6: one hidden layer of 32) and its ``mlp`` protocol in tessera evaluate."""

import numpy as np
import pytest

from tessera.errors import ConfigError
from tessera.evaluate.config import EvalConfig
from tessera.evaluate.datasets import EvalData
from tessera.evaluate.mlp import mlp_regress
from tessera.evaluate.protocol import evaluate

from tests.evaluate.doubles import TinyEncoder, synthetic_set


def test_mlp_fits_a_nonlinear_target_a_linear_model_cannot():
    from sklearn.linear_model import LinearRegression
    from sklearn.metrics import r2_score

    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 4)) * 100.0  # unscaled features: the probe standardizes them itself
    y = np.abs(x[:, 0] / 100.0) + np.sin(x[:, 1] / 100.0) + 5.0
    pred = mlp_regress(x[:500], y[:500], x[500:], seed=0)
    linear = LinearRegression().fit(x[:500], y[:500]).predict(x[500:])
    assert r2_score(y[500:], pred) > 0.8 > r2_score(y[500:], linear) + 0.3
    np.testing.assert_array_equal(pred, mlp_regress(x[:500], y[:500], x[500:], seed=0))  # seeded


def test_mlp_protocol_regresses_a_target_and_refuses_classification(tmp_path):
    ls = synthetic_set(10, seed=1)
    ls.meta["size"] = ls.labels * 2.0 + np.random.default_rng(0).normal(0, 0.1, len(ls))
    data = EvalData("syn", ls)
    res = evaluate([TinyEncoder()], data, "mlp", tmp_path, EvalConfig(progress=False, target="size"))[0]
    assert res["task"] == "regression" and res["protocol"] == "mlp" and res["r2"]["mean"] > 0.5
    with pytest.raises(ConfigError, match="target"):
        evaluate([TinyEncoder()], data, "mlp", tmp_path / "x", EvalConfig(progress=False))
