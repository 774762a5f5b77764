"""The bake-off reports ROC AUC beside macro-F1 for a data set whose fold metrics include it (issue 16: the
lensing classes and the mask-ratio sweep are judged by macro ROC AUC); ranking stays on macro-F1."""

from __future__ import annotations

import csv

import pytest

from tessera.bakeoff import fold_summary
from tessera.bakeoff_report import ranked_table, write_csv


def _folds(f1s, aucs):
    return [{"macro_f1": f, "weighted_f1": f, "accuracy": f, "roc_auc": a, "repeat": 0} for f, a in zip(f1s, aucs)]


def test_fold_summary_adds_roc_auc_only_when_every_fold_has_it():
    s = fold_summary(_folds([0.5, 0.7], [0.8, 0.9]))
    assert s["macro_f1"] == pytest.approx({"mean": 0.6, "std": 0.1})
    assert s["roc_auc"] == pytest.approx({"mean": 0.85, "std": 0.05})
    assert "roc_auc" not in fold_summary(_folds([0.5, 0.7], [0.8, None]))  # a fold without class scores
    assert "roc_auc" not in fold_summary([{"macro_f1": 0.5}])  # results from before the metric existed


def _result():
    lens = [("mae", 0.61, 0.80, 0.90), ("random-init:x", 0.40, 0.55, 0.65)]
    rows = []
    for model, f1a, auca, aucb in lens:
        per_fold = _folds([f1a, f1a], [auca, aucb])
        rows.append({"data": "lens", "model": model, "protocol": "logistic", "per_fold": per_fold,
                     **fold_summary(per_fold)})
    # a data set whose protocol gives no class scores: no ROC-AUC column there
    rows.append({"data": "other", "model": "mae", "protocol": "knn", "per_fold": [{"macro_f1": 0.5}],
                 **fold_summary([{"macro_f1": 0.5}])})
    rows[0]["gain"] = {"mean": 0.21, "std": 0.0, "wins": 2, "n": 2, "per_fold": [0.21, 0.21]}
    return {"rows": rows, "ranking": [{"model": "mae"}]}


def test_ranked_table_has_a_roc_auc_column_where_the_rows_carry_it():
    table = ranked_table(_result(), "lens").splitlines()
    head = [c.strip() for c in table[0].strip("|").split("|")]
    assert head == ["rank", "model", "logistic macro-F1", "logistic ROC-AUC", "logistic gain vs random"]
    mae = [c.strip() for c in table[2].strip("|").split("|")]
    assert mae[1] == "mae" and mae[3] == "0.850 ± 0.050"
    base = [c.strip() for c in table[3].strip("|").split("|")]
    assert base[1] == "random-init:x" and base[3] == "0.600 ± 0.050"
    assert "ROC-AUC" not in ranked_table(_result(), "other")


def test_results_csv_has_the_per_fold_roc_auc(tmp_path):
    path = write_csv(_result(), tmp_path / "r.csv")
    rows = list(csv.DictReader(path.open()))
    assert [r["roc_auc"] for r in rows] == ["0.8000", "0.9000", "0.5500", "0.6500", ""]
