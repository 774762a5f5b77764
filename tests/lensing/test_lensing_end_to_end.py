"""Seed 001's workflow end to end on a tiny simulated set, through the public commands (issue 16):
simulate lensing -> ingest the no_sub class -> lensing-mae pretraining -> fine-tuned classification with ROC AUC
against the same model from scratch -> super-resolution against bicubic."""

from __future__ import annotations

import json

import pytest

from tessera.cli import main
from tessera.commands.superres import main as superres_main


@pytest.mark.slow
def test_lensing_workflow(tmp_path):
    sim, store, run = tmp_path / "sim", tmp_path / "store", tmp_path / "run"
    assert main(["simulate", "lensing", "--out", str(sim), "--per-class", "8", "--size", "32", "--seed", "1",
                 "--quiet", "pixel_scale_arcsec=0.2"]) == 0
    # seed 001 pretrains on the no-substructure class only
    ingest = ["ingest", str(sim / "no_sub"), "--out", str(store), "--tile", "32", "--min-tile", "16", "--quiet"]
    assert main(ingest) == 0
    assert main(["pretrain", "--config", "lensing-mae", "--corpus", str(store), "--out", str(run),
                 "model.preset=vit_micro_patch8_32", "train.max_steps=2", "train.batch_size_reconstruction=4",
                 "train.checkpoint_every=2", "train.log_every=1", "train.progress=false"]) == 0
    cfg = (run / "config.yaml").read_text()
    assert "mask_ratio: 0.9" in cfg
    assert main(["evaluate", "--model", f"pretrained={run}", "--model", "scratch=random:vit_micro_patch8_32",
                 "--data", str(sim / "labels.csv"), "--protocol", "finetune", "--out", str(tmp_path / "eval"),
                 "finetune.epochs=1", "finetune.batch_size=8", "progress=false"]) == 0
    for model in ("pretrained", "scratch"):
        result = json.loads((tmp_path / "eval" / model / "finetune" / "results.json").read_text())
        assert result["classes"] == ["axion", "cdm", "no_sub"] and result["n_samples"] == 24
        assert 0.0 <= result["roc_auc"]["mean"] <= 1.0
    out = tmp_path / "sr"
    assert superres_main(["--model", f"pretrained={run}", "--data", str(sim), "--out", str(out), "--quiet",
                 "epochs=1", "width=8", "test_fraction=0.25"]) == 0
    sr = json.loads((out / "results.json").read_text())
    assert [(r["model"], r["mode"]) for r in sr["rows"]] == [("bicubic", "-"), ("pretrained", "frozen"),
                                                             ("pretrained", "finetune")]
    assert sr["lr_size"] == 8 and sr["hr_size"] == 32 and sr["n_test"] == 6
    assert (out / "superres.png").stat().st_size > 0 and "| bicubic |" in (out / "superres.md").read_text()
