"""benchmarks/lensing_results.py's mask-ratio sweep helpers on synthetic bake-off results: the points come from
the right rows in mask-ratio order, and the AUC-against-mask-ratio figure is written."""

from __future__ import annotations

import pytest

from tests._benchmarks import benchmark_module


@pytest.fixture(scope="module")
def results_script():
    with benchmark_module("lensing_results") as module:
        yield module


def _row(model, protocol, auc, std=0.01):
    return {"model": model, "protocol": protocol, "macro_f1": {"mean": auc - 0.2, "std": std},
            "roc_auc": {"mean": auc, "std": std}}


def _bakeoff():
    return {"rows": [_row("lensing-mae", "logistic", 0.81), _row("lensing-mae-mask50", "logistic", 0.70),
                     _row("random-init:vit_tiny_patch4_64", "logistic", 0.60),
                     _row("lensing-mae-mask75", "logistic", 0.76), _row("lensing-mae", "knn", 0.99)]}


RATIOS = {"lensing-mae-mask50": 0.5, "lensing-mae-mask75": 0.75, "lensing-mae": 0.9}


def test_sweep_points_are_the_protocols_arms_in_mask_ratio_order(results_script):
    points = results_script.sweep_points(_bakeoff(), RATIOS)
    assert [p["mask_ratio"] for p in points] == [0.5, 0.75, 0.9]
    assert [p["roc_auc"]["mean"] for p in points] == [0.70, 0.76, 0.81]  # logistic rows only, no baseline
    assert [p["arm"] for p in points] == ["lensing-mae-mask50", "lensing-mae-mask75", "lensing-mae"]
    bad = _bakeoff()
    del bad["rows"][0]["roc_auc"]
    with pytest.raises(ValueError, match="no roc_auc"):
        results_script.sweep_points(bad, RATIOS)


def test_auc_against_mask_ratio_figure(results_script, tmp_path):
    points = results_script.sweep_points(_bakeoff(), RATIOS)
    path = results_script.plot_auc_vs_mask_ratio(points, tmp_path / "sweep.png", baseline={"mean": 0.6})
    assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    with pytest.raises(ValueError, match="no sweep points"):
        results_script.plot_auc_vs_mask_ratio([], tmp_path / "empty.png")


def test_sweep_recipes_set_only_the_mask_ratio():
    from tessera.config import to_dict
    from tessera.train.config import resolve_pretrain_config

    base = to_dict(resolve_pretrain_config("lensing-mae"))
    for name, ratio in RATIOS.items():
        cfg = to_dict(resolve_pretrain_config(name))
        assert cfg["model"]["mask_ratio"] == ratio
        cfg["model"]["mask_ratio"] = base["model"]["mask_ratio"]
        assert cfg == base
