"""Retrieval on constructed and real FR-DEEP pairs; diagnostics on planted high-norm tokens; the CLI flags."""

import json

import numpy as np
import pytest
import torch

from tessera.evaluate.config import DiagnosticsConfig, EvalConfig
from tessera.evaluate.diagnostics import effective_rank, run_diagnostics, source_patch_mask, token_norm_outliers
from tessera.evaluate.protocol import evaluate
from tessera.evaluate.retrieval import label_precision, match_ranks, rank_metrics

from tests.evaluate.doubles import synthetic_set
from tests.evaluate.helpers import tiny_random_encoder


def test_match_ranks_on_constructed_set():
    m = 10
    gallery = np.eye(m)
    wanted = np.array([1, 1, 2, 3, 1, 5, 1, 2, 10, 1])
    queries = np.zeros((m, m))
    for i, r in enumerate(wanted):
        queries[i, i] = 1.0
        others = [j for j in range(m) if j != i][: r - 1]
        queries[i, others] = 2.0  # exactly r - 1 gallery items more similar than the true match
    ranks = match_ranks(queries, gallery, center=False)
    np.testing.assert_array_equal(ranks, wanted)
    met = rank_metrics(ranks, [1, 5, 10], n_boot=200, seed=0)
    assert met["recall@1"]["mean"] == 0.5 and met["recall@5"]["mean"] == 0.9 and met["recall@10"]["mean"] == 1.0
    assert met["median_rank"]["mean"] == 1.5 and met["recall@1"]["std"] > 0 and met["recall@10"]["std"] == 0


def test_label_precision_leave_one_out():
    feats = np.array([[1.0, 0.0], [0.99, 0.1], [0.0, 1.0], [0.1, 0.99]])
    labels = np.array([0, 0, 1, 1])
    p = label_precision(feats, labels, [1, 3], center=False, n_boot=0)
    assert p["precision@1"]["mean"] == 1.0 and np.isclose(p["precision@3"]["mean"], 1 / 3)


@pytest.mark.realdata
def test_frdeep_pairs_retrieval_real(shared_data, tmp_path):
    from tessera.evaluate.pairs import load_frdeep_pairs

    path = shared_data / "frdeep_fits"
    data = load_frdeep_pairs(path, max_per_class=6)
    assert len(data.train) == len(data.test) == 12 and data.options == {"common_field": True}
    assert list(data.train.meta["object"]) == list(data.test.meta["object"])
    first, nvss = data.train.images[0].shape, data.test.images[0].shape
    assert first == (1, 150, 150) and 14 <= nvss[1] <= 22  # 150 px x 1.8"/px in 15"/px NVSS pixels ~ 18
    assert load_frdeep_pairs(path, max_per_class=2, common_field=False).test.images[0].shape == (1, 150, 150)
    cfg = EvalConfig(progress=False, max_per_class=6)
    res = evaluate([tiny_random_encoder()], f"frdeep-pairs:{path}", "retrieval", tmp_path, cfg)[0]
    assert set(res["match_retrieval"]) == {"FIRST->NVSS", "NVSS->FIRST"}
    for metrics in res["match_retrieval"].values():
        assert metrics["n_queries"] == 12 and 1 <= metrics["median_rank"]["mean"] <= 12
        assert metrics["recall@1"]["mean"] <= metrics["recall@5"]["mean"] <= metrics["recall@10"]["mean"]
    assert res["data_options"] == {"common_field": True} and "precision@5" in res["label_retrieval"]


def test_planted_high_norm_tokens_found_exactly():
    g = torch.Generator().manual_seed(0)
    patches = torch.randn(4, 16, 8, generator=g)
    planted = [(0, 3), (2, 0), (3, 15)]
    for i, j in planted:
        patches[i, j] *= 100.0
    found = token_norm_outliers(patches, factor=10.0)
    assert found["count"] == 3 and found["positions"] == planted
    assert np.isclose(found["fraction"], 3 / 64)
    # Source vs background: a bright square under patch (0, 3) of a 4x4 grid on a 32 px image.
    images = torch.zeros(4, 1, 32, 32)
    images[0, :, 0:8, 24:32] = 1.0
    src = source_patch_mask(images, grid=4)
    assert src[0, 3] and int(src.sum()) == 1 and int((found["mask"] & src).sum()) == 1


def test_effective_rank_bounds():
    x = torch.randn(500, 6, generator=torch.Generator().manual_seed(1))
    assert 5.5 < effective_rank(x) <= 6.0
    assert effective_rank(x[:, :1] * torch.ones(1, 6)) < 1.01


def test_diagnose_real_encoder(tmp_path):
    enc = tiny_random_encoder()
    ls = synthetic_set(3)
    diag = run_diagnostics(enc, ls, tmp_path, DiagnosticsConfig(max_images=6, attention_images=2), name="tiny")
    assert diag["n_images"] == 6 and len(diag["cls_patch_cosine"]) == enc.num_layers
    assert diag["outliers"]["on_source"] + diag["outliers"]["on_background"] == diag["outliers"]["count"]
    assert (tmp_path / "diagnostics.png").is_file()
    assert json.loads((tmp_path / "diagnostics.json").read_text())["model"] == "tiny"


@pytest.mark.slow
def test_cli_new_flags(tmp_path, capsys):
    from tessera.cli import main

    from tests.evaluate.doubles import write_synthetic_csv

    csv = write_synthetic_csv(tmp_path / "data", n_per_class=6)
    out = tmp_path / "o"
    code = main(["evaluate", "--model", "random:vit_tiny_patch8_64", "--data", str(csv), "--out", str(out),
                 "--protocol", "logistic", "--protocol", "retrieval", "--layers", "all", "--label-efficiency",
                 "--diagnostics", "label_efficiency.shots=[2,0]", "label_efficiency.draws=2", "logistic.n_values=3",
                 "progress=false"])
    printed = capsys.readouterr().out
    assert code == 0 and "Macro-F1" in printed and "label precision@1" in printed
    for name in ("comparison.md", "label_efficiency.md", "label_efficiency.png", "diagnostics.md",
                 "layer_sweep_logistic.png", "random_vit_tiny_patch8_64/diagnostics.json"):
        assert (out / name).is_file(), name
    r = json.loads((out / "random_vit_tiny_patch8_64" / "logistic" / "results.json").read_text())
    assert "best_layer" in r and r["label_efficiency"][-1]["per_class"] == "all"
