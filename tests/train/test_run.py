"""The Run object: --resume needs only --out (it reads the run's own config.yaml), a changed config or corpus
is refused naming what changed, and the run's layout files are written before training."""

from __future__ import annotations

import json
import shutil

import pytest

from tessera.cli import main
from tessera.errors import TesseraError
from tessera.train.logging import read_metrics
from tessera.train.run import config_differences, resolve_run_config
from tests.train.test_engine import MICRO

BASE = [o for o in MICRO if "progress" not in o] + ["train.branch=reconstruction", "train.progress=false"]


def test_config_differences_names_every_dotted_key():
    a = {"train": {"lr": 1.0, "seed": 0}, "model": {"preset": "x"}}
    b = {"train": {"lr": 2.0, "seed": 1}, "model": {"preset": "x"}, "views": {"output_size": 32}}
    assert config_differences(a, b) == ["train.lr", "train.seed", "views"]
    assert config_differences(a, a) == []


def test_resume_needs_only_out_and_refuses_changed_config(blob_store, tmp_path, capsys):
    run = tmp_path / "run"
    # "paper"-like: a non-default preset setting the resume must not need repeated (train.max_steps=2).
    assert main(["pretrain", "--corpus", str(blob_store), "--out", str(run), *BASE, "train.max_steps=2",
                 "train.lr=0.002"]) == 0
    saved = resolve_run_config(None, [], run, resume=True)
    assert saved.train.lr == pytest.approx(0.002) and saved.train.max_steps == 2
    assert json.loads((run / "corpus.json").read_text())["cutouts"] == 32
    assert main(["pretrain", "--corpus", str(blob_store), "--out", str(run), "--resume"]) == 0
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl")] == [1, 2]
    capsys.readouterr()
    assert main(["pretrain", "--corpus", str(blob_store), "--out", str(run), "--resume", "train.lr=0.1",
                 "train.seed=5"]) == 2
    err = capsys.readouterr().err.strip()
    assert "train.lr" in err and "train.seed" in err and "\n" not in err


def test_resume_on_another_corpus_is_refused(blob_store, tmp_path):
    from tessera.train.engine import pretrain
    from tessera.train.config import resolve_pretrain_config

    cfg = resolve_pretrain_config("cpu", BASE + ["train.max_steps=1"])
    pretrain(cfg, blob_store, tmp_path / "run")
    other = tmp_path / "other"
    shutil.copytree(blob_store, other)
    pretrain(cfg, other, tmp_path / "run", resume=True)  # a copy (same manifest bytes) is the same corpus
    import pandas as pd

    manifest = pd.read_parquet(other / "manifest.parquet")
    manifest.iloc[:-4].to_parquet(other / "manifest.parquet", index=False)  # four cutouts fewer
    with pytest.raises(TesseraError, match="not the corpus"):
        pretrain(cfg, other, tmp_path / "run", resume=True)
