"""The simulated image <-> spectrum pairs through `tessera align` end to end (the README example on tiny data):
FITS images and NPY spectra with flags from one CSV, the morphology label as the class target (spectral_class
kept out), zero-shot and few-shot results for the simulated targets; and the stores joined on sky position."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tessera.cli import main

TINY = ["head.dim=16", "head.heads=2", "head.hidden=16", "train.batch_size=8", "train.progress=false",
        "train.max_steps=3", "train.checkpoint_every=3"]


@pytest.mark.slow
def test_simulated_pairs_align_and_report_their_targets(tmp_path, capsys):
    sim = tmp_path / "sim"
    assert main(["simulate", "pairs", "--out", str(sim), "--n", "40", "--quiet"]) == 0
    run = tmp_path / "run"
    assert main(["align", "--a", "random:vit_micro_patch8_32", "--b", "random-spectrum:200",
                 "--pairs", str(sim / "pairs.csv"), "--out", str(run), *TINY]) == 0
    res = json.loads((run / "results.json").read_text())
    assert res["n_train"] == 32 and res["n_held_out"] == 8
    zero, few = res["aligned"]["zero_shot"]["a"], res["aligned"]["few_shot"]["b"]
    targets = {"spectral_index", "curvature", "peak_freq_mhz", "total_flux_jy", "angular_size_arcsec"}
    assert targets <= set(zero) and targets == set(few)
    assert "class_accuracy" in zero and "spectral_class" not in zero  # label is the class, spectral_class neither
    assert res["aligned"]["cross_modal"]["a->b"]["n_queries"] == 8

    # the same sources joined on position: the image catalogue against the spectrum catalogue
    spectra = pd.read_csv(sim / "spectra.csv")
    spectra.loc[0, "dec_deg"] += 10.0 / 3600  # one spectrum 10" off: outside a 3" radius
    spectra.to_csv(sim / "spectra.csv", index=False)
    capsys.readouterr()
    assert main(["align", "--a", "random:vit_micro_patch8_32", "--b", "random-spectrum:200", "--no-eval",
                 "--pairs", f"match:{sim / 'images.csv'},{sim / 'spectra.csv'}", "--match-radius", "3",
                 "--out", str(tmp_path / "matched"), *TINY]) == 0
    assert "2 row(s) left unpaired" in capsys.readouterr().out
    split = json.loads((tmp_path / "matched" / "split.json").read_text())
    assert len(split["train"]) + len(split["held_out"]) == 39
    assert sorted(e["path"] for e in split["excluded"]) == ["images/src_00000.fits", "spectra/src_00000.npy"]
    assert np.isfinite(pd.read_csv(sim / "images.csv").ra_deg).all()
