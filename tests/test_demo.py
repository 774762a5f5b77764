"""The end-to-end demo, at a seconds-long budget: every public command in sequence, and the report they feed."""

from __future__ import annotations

import json

import pytest

from tessera.cli import main


@pytest.mark.slow
def test_tiny_demo_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--budget", "tiny"]) == 0
    report = (out / "report.md").read_text()
    # The comparison table names both models and both protocols, with mean ± std cells.
    assert "random-init" in report and "pretrained" in report and "±" in report
    assert report.count("linear Macro-F1") == 2 and report.count("knn Macro-F1") == 2  # strict + standardized
    for artefact in ("views_reconstruction.png", "views_contrastive.png", "loss_curves.png",
                     "eval/confusion_linear.png", "eval/confusion_knn.png", "run/model/model.safetensors",
                     "corpus/manifest.parquet", "morphology/labels.csv", "sky/catalogue.csv",
                     "eval_standardized/comparison.md"):
        assert (out / artefact).is_file(), artefact
    # The report lists the exact public commands, each usable on its own.
    for command in ("tessera simulate radio", "tessera simulate morphology", "tessera ingest", "tessera views",
                    "tessera pretrain --config cpu", "tessera evaluate"):
        assert command in report, command
    stages = {json.loads(line)["stage"] for line in (out / "run" / "metrics.jsonl").read_text().splitlines()}
    assert stages == {"reconstruction", "contrastive"}  # two-stage ran both stages
    result = json.loads(next((out / "eval").glob("*/linear/results.json")).read_text())
    assert result["classes"] == ["Bent", "Compact", "FRI", "FRII"] and result["folds"] == 3
    ending = capsys.readouterr().out.split("Demo finished")[-1]  # both tables are printed at the end
    assert ending.count("random-init") == 2 and "Fold-standardized" in ending


def test_demo_refuses_a_non_empty_output(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("x")
    assert main(["demo", "--out", str(tmp_path), "--budget", "tiny"]) == 2
    assert "not empty" in capsys.readouterr().err
