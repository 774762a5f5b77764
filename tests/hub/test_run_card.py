"""A real (one-step) `tessera pretrain` run: its RUN/model carries a card describing its corpus and recipe."""

from __future__ import annotations

import json

from tessera.cli import main
from tests.train.conftest import build_store, make_blob_arrays
from tests.train.test_engine import MICRO

BASE = [o for o in MICRO if "progress" not in o] + ["train.branch=reconstruction", "train.progress=false",
                                                     "train.max_steps=1"]


def test_pretrain_export_card_names_the_corpus_and_recipe(tmp_path):
    from huggingface_hub import ModelCard

    store = build_store(make_blob_arrays(tmp_path, 8), tmp_path / "store", tile=64)
    run = tmp_path / "run"
    assert main(["pretrain", "--corpus", str(store), "--out", str(run), *BASE]) == 0
    card = ModelCard.load(run / "model" / "README.md")
    corpus = json.loads((run / "corpus.json").read_text())
    assert card.data.library_name == "tessera" and "reconstruction" in card.data.tags
    assert f"- cutouts: {corpus['cutouts']}" in card.text and corpus["manifest_sha256"] in card.text
    assert "Stages: reconstruction." in card.text
    out = tmp_path / "export"
    assert main(["export", str(run), "--out", str(out), "--corpus", str(store), "--quiet"]) == 0
    assert "- inputs: 8" in ModelCard.load(out / "README.md").text
