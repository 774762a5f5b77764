"""`tessera align` end to end on tiny data: frozen towers get no gradient, trainable blocks do, exact resume,
tower loading through tessera.load(RUN, tower=), bad input, and a real FR-DEEP run with retrieval recall."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

import tessera
from tessera.align.config import AlignConfig
from tessera.align.loss import clip_loss
from tessera.align.results import alignment_results
from tessera.align.trainer import align, build_model
from tessera.config import resolve_config
from tessera.errors import TesseraError
from tests.train._hooks import StopRequested, stop_at

TINY = ["head.dim=16", "head.heads=2", "head.hidden=16", "train.batch_size=4", "train.progress=false",
        "train.log_every=1", "train.checkpoint_every=2", "train.lr=1e-3"]


def _image_spectrum_pairs(tmp_path, n=12):
    """n pairs of a 24x24 .npy image and a 40-channel .npy spectrum, with a numeric target and a class."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        np.save(tmp_path / f"img{i}.npy", rng.random((24, 24)).astype(np.float32))
        spec = rng.normal(size=40).astype(np.float32)
        spec[35:] = np.nan if i % 2 else spec[35:]  # missing channels in every other spectrum
        np.save(tmp_path / f"spec{i}.npy", spec)
        rows.append({"path_a": f"img{i}.npy", "path_b": f"spec{i}.npy", "alpha": float(i), "label": "AB"[i % 2]})
    pd.DataFrame(rows).to_csv(tmp_path / "pairs.csv", index=False)
    return tmp_path / "pairs.csv"


def _cfg(pairs, *extra, a="random:vit_micro_patch8_32", b="random-spectrum:40"):
    return resolve_config(AlignConfig, None, [f"a={a}", f"b={b}", f"pairs={pairs}", *TINY, *extra])


def test_frozen_towers_get_no_gradient_and_trainable_blocks_do(tmp_path):
    pairs = _image_spectrum_pairs(tmp_path)
    for k in (0, 1):
        model = build_model(_cfg(pairs, f"train.trainable_blocks={k}"))
        xa = torch.rand(4, 1, 32, 32)
        xb = torch.randn(4, 1, 40)
        loss = clip_loss(*model(xa, xb), model.scale)
        loss.backward()
        for tower in (model.a, model.b):
            assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in tower.head.parameters())
            last = list(tower.backbone.blocks)[-1]
            first = list(tower.backbone.blocks)[0]
            assert all(p.grad is None for p in first.parameters())
            if k == 0:
                assert all(p.grad is None and not p.requires_grad for p in tower.backbone.parameters())
            else:
                assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in last.parameters())


@pytest.mark.slow
def test_resume_is_exact_and_towers_load(tmp_path):
    pairs = _image_spectrum_pairs(tmp_path)
    cfg = _cfg(pairs, "train.max_steps=4")
    straight = align(cfg, tmp_path / "straight")
    with pytest.raises(StopRequested):
        align(cfg, tmp_path / "resumed", after_step=stop_at(2))
    align(cfg, tmp_path / "resumed", resume=True)
    xa, xb = torch.rand(3, 1, 24, 24), torch.randn(3, 1, 40)
    for tower, x in (("a", xa), ("b", xb)):
        e1 = tessera.load(straight, tower=tower)
        e2 = tessera.load(tmp_path / "resumed", tower=tower)
        z1, z2 = e1.embed(x), e2.embed(x)
        assert z1.shape == (3, 16) and torch.allclose(z1.norm(dim=1), torch.ones(3), atol=1e-5)
        assert torch.equal(z1, z2)  # bit-identical after stop + resume
        assert e1.embed(x, readout="mean_patch").shape[1] == e1.module.backbone.hidden_size
    # the log has each step once; the heads moved away from their initial (step-0) state
    steps = [json.loads(line)["step"] for line in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    ea = tessera.load(straight, tower="a")
    initial = build_model(cfg).a.eval()
    with torch.no_grad():
        assert not torch.allclose(initial(ea.prepare(xa)), ea.embed(xa), atol=1e-4)
    # the one-ref form tessera evaluate uses, through its layers= feature path
    via_ref = tessera.load(f"{straight}#tower=a")
    assert torch.equal(via_ref.embed(xa, layers=[-1])[via_ref.num_layers - 1], ea.embed(xa))
    with pytest.raises(TesseraError, match="tower='c'"):
        tessera.load(straight, tower="c")
    # results: held-out retrieval and zero-shot k-NN for every space
    res = alignment_results(straight)
    assert set(res) >= {"unaligned", "untrained_head", "aligned"}
    assert "skipped" in res["unaligned"]["cross_modal"]  # image and spectrum backbones share no space
    cross = res["aligned"]["cross_modal"]["a->b"]
    assert cross["n_queries"] == res["n_held_out"] and 0 <= cross["recall@1"]["mean"] <= cross["recall@5"]["mean"]
    assert "r2" in res["aligned"]["zero_shot"]["a"]["alpha"]
    assert set(res["aligned"]["few_shot"]) == {"a", "b"} and "r2" in res["aligned"]["few_shot"]["b"]["alpha"]


def test_resume_with_another_config_is_refused(tmp_path):
    pairs = _image_spectrum_pairs(tmp_path)
    with pytest.raises(StopRequested):
        align(_cfg(pairs, "train.max_steps=4"), tmp_path / "run", after_step=stop_at(1))
    with pytest.raises(TesseraError, match="train.lr"):
        align(_cfg(pairs, "train.max_steps=4", "train.lr=0.5"), tmp_path / "run", resume=True)


def test_bad_inputs_are_one_line_errors(tmp_path):
    pairs = _image_spectrum_pairs(tmp_path)
    (tmp_path / "img3.npy").unlink()
    (tmp_path / "spec5.npy").unlink()
    with pytest.raises(TesseraError, match=r"2 listed file\(s\) do not exist: .*img3.npy.*spec5.npy"):
        align(_cfg(pairs), tmp_path / "out")
    swapped = pd.read_csv(pairs).rename(columns={"path_a": "path_b", "path_b": "path_a"})
    swapped[~swapped.path_a.isin(["spec5.npy"]) & ~swapped.path_b.isin(["img3.npy"])].to_csv(tmp_path / "sw.csv")
    with pytest.raises(TesseraError, match=r"sw.csv path_a feeds an image tower: .*spec0.npy: no image"):
        align(_cfg(tmp_path / "sw.csv"), tmp_path / "out")
    with pytest.raises(TesseraError, match="tower b a spectrum tower"):
        align(_cfg("frdeep-pairs:/nowhere"), tmp_path / "out")
    with pytest.raises(Exception, match="config key 'train.batch_size'"):
        _cfg(pairs, "train.batch_size=1")


@pytest.mark.slow
def test_frdeep_pairs_alignment_raises_pair_accuracy(shared_data, tmp_path):
    """A handful of real FIRST/NVSS pairs, two tiny random towers, a few steps: the loss falls, and held-out
    recall@k is computed for the unaligned, untrained-head and aligned spaces."""
    cfg = resolve_config(AlignConfig, None, [
        "a=random:vit_micro_patch8_32", "b=random:vit_micro_patch8_32",
        f"pairs=frdeep-pairs:{shared_data / 'frdeep_fits'}", "data.max_pairs=40", "data.holdout_fraction=0.25",
        *TINY, "train.batch_size=10", "train.max_steps=30", "train.lr=3e-3", "train.checkpoint_every=30"])
    run = align(cfg, tmp_path / "run")
    log = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert np.mean([r["loss"] for r in log[-5:]]) < np.mean([r["loss"] for r in log[:5]])
    res = alignment_results(run)
    assert res["names"] == ["FIRST", "NVSS"] and res["n_held_out"] == 10
    for space in ("unaligned", "untrained_head", "aligned"):
        m = res[space]["cross_modal"]["FIRST->NVSS"]
        assert m["n_queries"] == 10 and 0 <= m["recall@1"]["mean"] <= m["recall@10"]["mean"] == 1.0
    assert "class_accuracy" in res["aligned"]["zero_shot"]["FIRST"]


def test_cli_reports_a_missing_pairs_file_in_one_line(tmp_path, capsys):
    from tessera.cli import main

    code = main(["align", "--a", "random:vit_micro_patch8_32", "--b", "random-spectrum:40", "--pairs",
                 str(tmp_path / "nope.csv"), "--out", str(tmp_path / "run"), "head.dim=16", "head.hidden=16"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "nope.csv" in err and err.startswith("tessera align: error:")
    assert not (tmp_path / "run").exists()  # refused before anything is written
