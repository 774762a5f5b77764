import json

import numpy as np
import pytest

from tessera.cli import main
from tessera.evaluate.config import EvalConfig, FinetuneConfig, LinearConfig
from tessera.evaluate.protocol import evaluate, run_evaluation
from tessera.evaluate.report import comparison_table

from tests.evaluate.doubles import TinyEncoder, write_synthetic_csv
from tests.evaluate.helpers import tiny_random_encoder

SCHEMA = {"model", "data", "protocol", "folds", "seed", "classes", "n_samples", "macro_f1", "weighted_f1", "accuracy",
          "per_fold", "confusion", "excluded", "config", "layer"}


def _quick_cfg(**kw):
    return EvalConfig(progress=False, linear=LinearConfig(epochs=5, batch_size=16),
                      finetune=FinetuneConfig(epochs=1, batch_size=16), **kw)


def test_run_evaluation_outputs(tmp_path):
    csv = write_synthetic_csv(tmp_path / "data", n_per_class=9)
    np.save(tmp_path / "data/img/blank.npy", np.zeros((32, 32), np.float32))
    csv.write_text(csv.read_text() + "img/blank.npy,edge,SYN\n")
    a, b = TinyEncoder(name="double-a"), TinyEncoder(seed=1, name="double-b")
    out = tmp_path / "out"
    results = run_evaluation([a, b], str(csv), ["linear", "knn"], out, _quick_cfg(sweep_layers=True))
    assert len(results) == 4
    r = json.loads((out / "double-a" / "linear" / "results.json").read_text())
    assert SCHEMA <= set(r) and r["n_samples"] == 27 and r["classes"] == ["centre", "corner", "edge"]
    assert r["excluded"] == [{"path": "img/blank.npy", "reason": r["excluded"][0]["reason"]}]
    assert np.sum(r["confusion"]) == 27 and len(r["per_fold"]) == 3
    assert [row["layer"] for row in r["layer_sweep"]] == [0, 1, 2]
    for name in ("comparison.md", "comparison.csv", "confusion_linear.png", "confusion_knn.png",
                 "layer_sweep_linear.png", "config.yaml"):
        assert (out / name).is_file(), name
    md = (out / "comparison.md").read_text()
    assert md.count("**") >= 4 and "double-b" in md


def test_comparison_table_bold_and_tie_break():
    def res(model, macro, weighted):
        return {"model": model, "data": "d", "protocol": "linear", "layer": -1,
                "macro_f1": {"mean": macro, "std": 0.01}, "weighted_f1": {"mean": weighted, "std": 0.02}}

    md, df = comparison_table([res("A", 0.7001, 0.70), res("B", 0.7004, 0.75), res("C", 0.5, 0.8)])
    assert df.loc["A", "linear Macro-F1"] == "0.700 ± 0.010"
    lines = md.splitlines()
    assert "**0.700 ± 0.010** | 0.750" in lines[3]  # B wins the macro tie on weighted-F1
    assert "| 0.700 ± 0.010 |" in lines[2]
    assert "**0.800 ± 0.020**" in lines[4]


@pytest.mark.realdata
@pytest.mark.slow
def test_real_first_four_classes_linear_and_finetune(shared_data, tmp_path):
    enc = tiny_random_encoder()
    cfg = _quick_cfg(max_per_class=12)
    res = evaluate([enc], f"first:{shared_data / 'first_radio_galaxies'}", "linear", tmp_path, cfg)[0]
    assert res["classes"] == ["Bent", "Compact", "FRI", "FRII"] and res["n_samples"] == 48
    assert 0.0 <= res["macro_f1"]["mean"] <= 1.0 and np.sum(res["confusion"]) == 48
    ft = evaluate([enc], f"first:{shared_data / 'first_radio_galaxies'}", "finetune", tmp_path, cfg)[0]
    assert np.sum(ft["confusion"]) == 48 and len(ft["per_fold"]) == 3


@pytest.mark.realdata
def test_real_frdeep_and_cross_survey(shared_data, tmp_path):
    enc = tiny_random_encoder()
    cfg = _quick_cfg(max_per_class=10)
    same = evaluate([enc], f"frdeep:{shared_data / 'frdeep_fits'}", "knn", tmp_path, cfg)[0]
    cross = evaluate([enc], f"frdeep-cross:{shared_data / 'frdeep_fits'}", "linear", tmp_path, cfg)[0]
    assert same["classes"] == cross["classes"] == ["FRI", "FRII"]
    assert np.sum(same["confusion"]) == 20 and np.sum(cross["confusion"]) == 20
    assert cross["test_data"] and same["test_data"] is None


def test_cli_evaluate_and_errors(tmp_path, capsys):
    csv = write_synthetic_csv(tmp_path / "data", n_per_class=2)
    csv.write_text(csv.read_text() + "img/missing.npy,edge,SYN\n")
    code = main(["evaluate", "--model", "random:cpu", "--data", str(csv), "--out", str(tmp_path / "o")])
    assert code == 2 and "missing.npy" in capsys.readouterr().err
    code = main(["evaluate", "--model", "random:cpu", "--data", str(csv), "--out", str(tmp_path / "o2"), "knn.k=0"])
    assert code == 2 and "knn.k" in capsys.readouterr().err


class OffsetDominatedEncoder(TinyEncoder):
    """Features = a large common offset + a tiny informative part: what mean-pooled features of sparse radio
    images look like (identical empty-sky tokens swamp the few source tokens)."""

    def features(self, images, layer: int = -1, readout=None):
        return 50.0 + 1e-3 * super().features(images, layer=layer, readout=readout)


def test_standardize_switch_recovers_offset_dominated_features(tmp_path):
    csv = write_synthetic_csv(tmp_path / "data", n_per_class=12)
    enc = OffsetDominatedEncoder(name="offset")
    scores = {}
    for protocol, switch in (("linear", "linear"), ("knn", "knn")):
        for standardize in (False, True):
            cfg = _quick_cfg()
            cfg.linear.epochs = 30
            getattr(cfg, switch).standardize = standardize
            res = evaluate([enc], str(csv), protocol, tmp_path / f"{protocol}-{standardize}", cfg)[0]
            scores[protocol, standardize] = res["macro_f1"]["mean"]
    # The strict protocols see (almost) one point; the fold-fitted z-scoring brings back the separable classes.
    assert scores["linear", True] >= 0.9 and scores["linear", False] <= 0.6
    assert scores["knn", True] >= 0.9 and scores["knn", True] > scores["knn", False]


def test_fold_standardizer_uses_training_rows_only():
    from tessera.evaluate.features import fold_standardizer

    train = np.array([[0.0, 10.0], [2.0, 30.0]])
    scale = fold_standardizer(train)
    np.testing.assert_allclose(scale(train), [[-1.0, -1.0], [1.0, 1.0]], atol=1e-5)
    np.testing.assert_allclose(scale(np.array([[4.0, 50.0]])), [[3.0, 3.0]], atol=1e-5)


@pytest.mark.parametrize("ref,expected", [
    ("mae=runs/a", ("mae", "runs/a")),
    ("random:cpu", ("random:cpu", "random:cpu")),
    ("two-stage=runs/x/model", ("two-stage", "runs/x/model")),
    ("runs/odd=name/model", ("runs/odd=name/model", "runs/odd=name/model")),  # a path with '=' stays a path
])
def test_model_label_syntax(ref, expected):
    from tessera.evaluate.protocol import split_model_label

    assert split_model_label(ref) == expected
