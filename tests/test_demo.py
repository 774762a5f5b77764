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
    # The bake-off's ranking protocols next to the strict ones, and the line that says so.
    assert report.count("logistic Macro-F1") == 1
    assert "ranking protocols are `logistic`" in report and "`knn-std`" in report and "offset" in report
    logistic = json.loads(next((out / "eval_standardized").glob("*/logistic/results.json")).read_text())
    assert logistic["protocol"] == "logistic" and logistic["folds"] == 3
    for artefact in ("views_reconstruction.png", "views_contrastive.png", "loss_curves.png",
                     "eval/confusion_linear.png", "eval/confusion_knn.png", "run/model/model.safetensors",
                     "corpus/manifest.parquet", "morphology/labels.csv", "sky/catalogue.csv",
                     "eval_standardized/comparison.md"):
        assert (out / artefact).is_file(), artefact
    # The report lists the exact public commands, each usable on its own.
    for command in ("tessera simulate radio", "tessera simulate morphology", "tessera ingest", "tessera views",
                    "tessera pretrain --config cpu", "tessera evaluate"):
        assert command in report, command
    # The corpus is the sky's tiles plus every labeled image, labels unused (the transductive case).
    import pandas as pd

    sources = pd.read_parquet(out / "corpus" / "manifest.parquet")["path"]
    labeled = len((out / "morphology" / "labels.csv").read_text().splitlines()) - 1
    assert sources.str.contains("/morphology/").sum() == labeled and sources.str.contains("/sky/").sum() > 0
    assert "transductive" in report
    stages = {json.loads(line)["stage"] for line in (out / "run" / "metrics.jsonl").read_text().splitlines()}
    assert stages == {"reconstruction", "contrastive"}  # two-stage ran both stages
    result = json.loads(next((out / "eval").glob("*/linear/results.json")).read_text())
    assert result["classes"] == ["Bent", "Compact", "FRI", "FRII"] and result["folds"] == 3
    ending = capsys.readouterr().out.split("Demo finished")[-1]  # both tables are printed at the end
    assert ending.count("random-init") == 2 and "Fold-standardized" in ending
    assert "the bake-off ranks by logistic and knn-std" in ending


def test_demo_refuses_a_non_empty_output(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("x")
    assert main(["demo", "--out", str(tmp_path), "--budget", "tiny"]) == 2
    assert "not empty" in capsys.readouterr().err


def _write_two_stage_metrics(run, steps_per_stage=4, global_step=True):
    """The engine's layout: RUN/metrics.jsonl with every stage, plus each stage's own file."""
    import json as _json

    run.mkdir(parents=True)
    top = []
    for index, (stage, sub) in enumerate((("reconstruction", "stage1_reconstruction"), ("contrastive",
        "stage2_contrastive"))):
        rows = []
        for step in range(1, steps_per_stage + 1):
            row = {"stage": stage, "stage_index": index, "step": step, "loss": (0.05 if index == 0 else 5.0) / step}
            if global_step:
                row["global_step"] = index * steps_per_stage + step
            rows.append(row)
        (run / sub).mkdir()
        (run / sub / "metrics.jsonl").write_text("".join(_json.dumps(r) + "\n" for r in rows))
        top += rows
    (run / "metrics.jsonl").write_text("".join(_json.dumps(r) + "\n" for r in top))


def test_loss_curves_put_stage_2_after_stage_1_on_one_axis(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tessera.demo import draw_loss_curves, loss_curve_series, plot_loss_curves

    run = tmp_path / "run"
    _write_two_stage_metrics(run)
    series = loss_curve_series(run)
    assert [(s.stage_index, s.stage) for s in series] == [(0, "reconstruction"), (1, "contrastive")]
    fig, ax = plt.subplots()
    lines = draw_loss_curves(ax, series)
    xs = [list(line.get_xdata()) for line in lines]
    assert xs == [[1, 2, 3, 4], [5, 6, 7, 8]]  # one line per stage, stage 2 after stage 1, none joining them
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["stage 1: reconstruction", "stage 2: contrastive"]
    assert ax.get_yscale() == "log"  # MSE ~1e-2 and a cross-entropy ~5 both readable
    plt.close(fig)
    assert plot_loss_curves(run, tmp_path / "curves.png").is_file()
    assert plot_loss_curves(tmp_path / "empty", tmp_path / "none.png") is None


def test_loss_curves_offset_stages_without_global_step(tmp_path):
    """Older rows without ``global_step``: each stage starts after the last step of the one before."""
    from tessera.demo import loss_curve_series

    run = tmp_path / "run"
    _write_two_stage_metrics(run, steps_per_stage=3, global_step=False)
    assert [s.steps for s in loss_curve_series(run)] == [[1, 2, 3], [4, 5, 6]]
