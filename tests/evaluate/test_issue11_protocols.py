"""Issue 11 through the K-fold driver: new metrics, regression, label efficiency, multi-model loading, schema."""

import json

import numpy as np
import pytest

from tessera.errors import ConfigError, TesseraError
from tessera.evaluate.config import EvalConfig, FinetuneConfig, LinearConfig
from tessera.evaluate.datasets import EvalData, LabeledSet
from tessera.evaluate.metrics import fold_metrics, roc_auc_ovr_macro
from tessera.evaluate.protocol import evaluate, label_efficiency, run_evaluation
from tessera.evaluate.report import comparison_table, load_results

from tests.evaluate.doubles import TinyEncoder, synthetic_set, write_synthetic_csv


def _cfg(**kw):
    return EvalConfig(progress=False, linear=LinearConfig(epochs=3, batch_size=16),
                      finetune=FinetuneConfig(epochs=1, batch_size=8), **kw)


def test_balanced_accuracy_and_auc_match_sklearn():
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 60)
    scores = rng.dirichlet(np.ones(3), 60)
    pred = scores.argmax(1)
    m = fold_metrics(y, pred, 3, scores)
    assert np.isclose(m["balanced_accuracy"], balanced_accuracy_score(y, pred))
    assert np.isclose(m["roc_auc"], roc_auc_score(y, scores, multi_class="ovr", average="macro"))
    assert fold_metrics(y, pred, 3)["roc_auc"] is None
    assert roc_auc_ovr_macro(np.zeros(5, int), scores[:5]) is None  # one class present: undefined


@pytest.mark.parametrize("protocol", ["logistic", "knn", "linear"])
def test_new_metric_keys_and_seconds(tmp_path, protocol):
    res = evaluate([TinyEncoder()], EvalData("syn", synthetic_set(10)), protocol, tmp_path, _cfg())[0]
    for key in ("balanced_accuracy", "roc_auc", "macro_f1", "weighted_f1", "accuracy"):
        assert 0.0 <= res[key]["mean"] <= 1.0, key
    assert res["task"] == "classification" and res["seconds"] > 0 and res["test_data"] is None
    assert json.loads((tmp_path / "tiny-double" / protocol / "results.json").read_text())["seconds"] == res["seconds"]
    if protocol == "knn":  # the blob classes are separable in the double's feature space
        assert res["roc_auc"]["mean"] > 0.9


def _regression_set():
    ls = synthetic_set(10, seed=1)
    rng = np.random.default_rng(0)
    ls.meta["size"] = ls.labels * 2.0 + rng.normal(0, 0.1, len(ls))  # a target the features carry
    ls.meta["word"] = "x"
    return EvalData("syn", ls)


@pytest.mark.parametrize("protocol", ["knn", "ridge"])
def test_target_regression(tmp_path, protocol):
    res = evaluate([TinyEncoder()], _regression_set(), protocol, tmp_path, _cfg(target="size"))[0]
    assert res["task"] == "regression" and res["target"] == "size" and "macro_f1" not in res
    assert res["r2"]["mean"] > 0.5 and res["mae"]["mean"] < 1.0 and len(res["per_fold"]) == 3
    md, _ = comparison_table([res])
    assert "R2" in md and "MAE" in md


def test_target_errors_before_work(tmp_path):
    data = _regression_set()
    with pytest.raises(ConfigError, match="target"):
        evaluate([TinyEncoder()], data, "logistic", tmp_path, _cfg(target="size"))
    with pytest.raises(ConfigError, match="target"):
        evaluate([TinyEncoder()], data, "ridge", tmp_path, _cfg())
    with pytest.raises(TesseraError, match="no column 'nope'"):
        evaluate([TinyEncoder()], data, "knn", tmp_path, _cfg(target="nope"))
    with pytest.raises(TesseraError, match="non-numeric"):
        evaluate([TinyEncoder()], data, "knn", tmp_path, _cfg(target="word"))
    assert not any(tmp_path.iterdir())


def test_label_efficiency_numbers(tmp_path):
    cfg = _cfg()
    cfg.label_efficiency.shots = [2, 5, 0]
    cfg.label_efficiency.draws = 3
    cfg.logistic.n_values = 3
    out = label_efficiency([TinyEncoder()], EvalData("syn", synthetic_set(12)), cfg=cfg)
    assert [r["protocol"] for r in out] == ["logistic", "knn"]
    for r in out:
        rows = r["label_efficiency"]
        assert [row["per_class"] for row in rows] == [2, 5, "all"]
        assert [row["n_draws"] for row in rows] == [3, 3, 1]
        assert rows[0]["n_train"] == 6 and rows[1]["n_train"] == 15 and rows[2]["n_train"] == 24
        assert all(0 <= row["macro_f1"]["mean"] <= 1 for row in rows)


def test_bad_second_model_fails_before_first_is_evaluated(tmp_path):
    csv = write_synthetic_csv(tmp_path / "data", n_per_class=6)
    out = tmp_path / "out"
    with pytest.raises(TesseraError):
        run_evaluation([TinyEncoder(), str(tmp_path / "no-such-model")], str(csv), ["knn"], out, _cfg())
    assert not (out / "tiny-double").exists()
    with pytest.raises(TesseraError):
        evaluate([TinyEncoder(), str(tmp_path / "no-such-model")], str(csv), "knn", out, _cfg())
    assert not (out / "tiny-double").exists()


def test_layer_sweep_one_extraction_best_block_and_concat(tmp_path):
    class Counting(TinyEncoder):
        def __init__(self):
            super().__init__()
            self.forwards = 0

        def embed(self, images, readout=None, layer=-1, layers=None):
            self.forwards += 1
            if layers is None:
                return super().embed(images, readout, layer)
            return {b: super(Counting, self).embed(images, readout, b) for b in layers}

    enc = Counting()
    data = EvalData("syn", synthetic_set(6))
    res = evaluate([enc], data, "knn", tmp_path, _cfg(sweep_layers=True, extract_batch_size=64))[0]
    assert enc.forwards == 1  # 18 images, one batch, 3 blocks: one call for the whole sweep
    assert [r["layer"] for r in res["layer_sweep"]] == [0, 1, 2]
    best = max(res["layer_sweep"], key=lambda r: r["macro_f1"]["mean"])
    assert res["best_layer"]["layer"] == best["layer"]
    cat = evaluate([TinyEncoder()], data, "knn", tmp_path / "cat", _cfg(concat_last=2))[0]
    assert cat["concat_last"] == 2
    with pytest.raises(ConfigError, match="concat_last"):
        evaluate([TinyEncoder()], data, "knn", tmp_path / "c4", _cfg(concat_last=4))


def test_old_results_file_still_tabulates(tmp_path):
    old = {"model": "old", "data": "d", "protocol": "linear", "folds": 3, "seed": 0, "classes": ["FRI", "FRII"],
           "n_samples": 832, "macro_f1": {"mean": 0.8, "std": 0.01}, "weighted_f1": {"mean": 0.81, "std": 0.01},
           "accuracy": {"mean": 0.8, "std": 0.0}, "per_fold": [{"macro_f1": 0.8, "weighted_f1": 0.81, "accuracy": 0.8}],
           "confusion": [[1, 0], [0, 1]]}
    (tmp_path / "old.json").write_text(json.dumps(old))
    new = evaluate([TinyEncoder()], EvalData("d", synthetic_set(6)), "linear", tmp_path / "n", _cfg())[0]
    (tmp_path / "new.json").write_text(json.dumps(new))
    loaded = load_results([tmp_path / "old.json", tmp_path / "new.json"])
    assert loaded[0]["task"] == "classification"
    md, df = comparison_table(loaded)
    assert df.loc["old", "linear Macro-F1"] == "0.800 ± 0.010" and df.loc["old", "linear ROC-AUC"] == "-"
    assert df.loc["tiny-double", "linear ROC-AUC"] != "-"


def test_finetune_mixed_image_sizes(tmp_path):
    import pandas as pd

    base = synthetic_set(4, size=32)
    big = synthetic_set(4, seed=5, size=48)
    ls = LabeledSet(images=base.images + big.images, labels=np.concatenate([base.labels, big.labels]),
                    classes=base.classes, sources=base.sources + [s + "b" for s in big.sources],
                    meta=pd.DataFrame({"source": base.sources + big.sources}), excluded=[], data_key="mixed")
    res = evaluate([TinyEncoder()], EvalData("mixed", ls), "finetune", tmp_path, _cfg(folds=2))[0]
    assert np.sum(res["confusion"]) == 24 and "roc_auc" in res


def test_max_folds_runs_first_folds_only(tmp_path):
    res = evaluate([TinyEncoder()], EvalData("syn", synthetic_set(6)), "knn", tmp_path, _cfg(max_folds=1))[0]
    assert len(res["per_fold"]) == 1 and res["folds_run"] == 1 and res["folds"] == 3
