"""A spectrum tower pretrained by `tessera pretrain` on a spectrum store is what `tessera align --b RUN` aligns
(issue 14): simulated pairs -> `ingest --spectra --positions` -> `pretrain --config spectrum` -> `align` with the
pairs matched on sky position against the spectrum store itself."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from tessera.cli import main
from tessera.corpus.store import CutoutStore


@pytest.mark.slow
def test_pretrained_spectrum_run_is_aligned_from_a_spectrum_store(tmp_path):
    from tessera.simulate.pairs import SimulatePairsConfig, simulate_pairs

    sim = simulate_pairs(SimulatePairsConfig(n=24, seed=0), tmp_path / "sim").parent
    store, run, aligned = tmp_path / "specstore", tmp_path / "spec_run", tmp_path / "align"
    assert main(["ingest", "--spectra", str(sim / "spectra"), "--positions", str(sim / "spectra.csv"),
                 "--out", str(store), "--quiet"]) == 0
    s = CutoutStore(store)
    assert len(s) == 24 and s.kind == "spectrum" and s.manifest["ra"].notna().all()
    assert main(["pretrain", "--config", "spectrum", "--corpus", str(store), "--out", str(run),
                 "train.max_steps=3", "model.spectrum.dim=32", "model.spectrum.depth=1", "model.spectrum.heads=2",
                 "objective.spectrum_masked.width=8", "objective.spectrum_masked.batch_size=8",
                 "train.progress=false"]) == 0
    assert main(["align", "--a", "random:vit_micro_patch8_32", "--b", str(run), "--pairs",
                 f"match:{sim / 'images.csv'},{store}", "--match-radius", "3", "--out", str(aligned),
                 "train.max_steps=2", "train.batch_size=8", "train.progress=false", "head.dim=32",
                 "head.hidden=32"]) == 0
    info = json.loads((aligned / "model" / "tower_b" / "tessera.json").read_text())
    assert info["backbone"] == "spectrum" and info["length"] == 200
    pretrained = load_file(str(run / "model" / "model.safetensors"))
    exported = load_file(str(aligned / "model" / "tower_b" / "model.safetensors"))
    assert all(torch.equal(pretrained[k], exported[k]) for k in pretrained)  # frozen backbone, carried over
    split = json.loads((aligned / "split.json").read_text())
    assert len(split["train"]) + len(split["held_out"]) == 24  # every source matched within 3"
