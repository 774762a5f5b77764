"""The k-NN monitor wired by `tessera pretrain` (train never imports evaluate), the self-distillation health
warning, and `tessera views --objective` previews."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tessera.train.config import resolve_pretrain_config
from tessera.train.engine import pretrain
from tessera.train.logging import read_metrics
from tessera.train.monitors import DistillationMonitor

MICRO = ["model.preset=vit_micro_patch8_32", "train.progress=false", "train.log_every=10",
         "train.effective_batch=null", "objective.byol.batch_size=4", "objective.byol.proj_hidden=16",
         "objective.byol.pred_hidden=16", "objective.byol.proj_dim=8"]


def test_knn_monitor_is_logged_every_n_steps(blob_store, shared_data, tmp_path):
    from tessera.commands.pretrain import build_knn_monitor

    monitor = build_knn_monitor(str(shared_data / "first_radio_galaxies" / "labels.csv"), max_images=24)
    calls = []

    def recording(encoder, step):
        calls.append(step)
        return monitor(encoder, step)

    cfg = resolve_pretrain_config("cpu", MICRO + ["train.branch=byol", "train.max_steps=3", "train.monitor_every=2"])
    run = pretrain(cfg, blob_store, tmp_path / "run", monitor=recording)
    records = read_metrics(run / "metrics.jsonl")
    assert calls == [2, 3]  # every monitor_every steps and at the end
    scored = [r for r in records if "monitor_knn_macro_f1" in r]
    assert [r["step"] for r in scored] == [2, 3] and all(0.0 <= r["monitor_knn_macro_f1"] <= 1.0 for r in scored)


def test_train_does_not_import_evaluate():
    code = "import tessera.train.engine, sys; print(any(m.startswith('tessera.evaluate') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_distillation_monitor_names_the_likely_fix():
    mon = DistillationMonitor()
    assert mon.diagnose({"distill_teacher_entropy": 2.0, "distill_max_entropy": 4.0, "distill_kl": 0.5}) is None
    uniform = {"distill_teacher_entropy": 3.99, "distill_max_entropy": 4.0, "distill_kl": 1e-5}
    assert "objective.dino.teacher_temp" in mon.diagnose(uniform)
    assert "train.lr" in mon.diagnose({"distill_teacher_entropy": 0.01, "distill_max_entropy": 4.0, "distill_kl": 0.3})
    assert "train.lr" in mon.diagnose({"distill_spread": 0.001})
    with pytest.warns(RuntimeWarning, match="teacher_temp"):
        assert mon.check(uniform, "dino", 5) == {"distill_collapse": True}
    assert mon.check({"loss": 1.0}, "contrastive", 5) == {}  # other objectives: no stats, no flag


@pytest.mark.parametrize("objective", ["dino", "byol", "contrastive"])
def test_views_command_previews_any_registered_objective(blob_store, tmp_path, objective):
    from tessera.cli import main

    out = tmp_path / f"{objective}.png"
    args = ["views", str(blob_store), "output_size=32", "--out", str(out), "--objective", objective, "--n", "1",
            "--cutouts", "2"]
    if objective == "dino":
        args.insert(3, "views.multicrop.local_crops=3")
    assert main(args) == 0 and out.stat().st_size > 3000
    saved = out.with_suffix(".yaml").read_text()
    assert "output_size: 32" in saved
    if objective == "dino":
        assert "local_crops: 3" in saved
