"""Embedding sets: resumable after a failure mid-run, append-only on a grown store, one set per encoder."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from tessera.corpus.store import CutoutStore
from tessera.errors import TesseraError
from tessera.search.embed import SHARDS, EmbeddingSet, embed_source
from tessera.search.source import from_store, store_cutout_ids
from tests.search.conftest import MODEL, ingest, write_mosaic


class Boom(RuntimeError):
    pass


def _embed(encoder, store, out, **kw):
    kw = {"model_ref": MODEL, "batch": 8, "shard_size": 16, "progress": False, **kw}
    return embed_source(encoder, from_store(store), out, **kw)


def _assert_same(a: EmbeddingSet, b: EmbeddingSet) -> None:
    np.testing.assert_array_equal(a.vectors(), b.vectors())
    pd.testing.assert_frame_equal(a.table(), b.table())


def test_failure_mid_run_then_rerun_equals_uninterrupted(tmp_path, store, encoder, emb):
    def fail_after_second(i):
        if i == 1:
            raise Boom("injected")

    with pytest.raises(Boom):
        _embed(encoder, store, tmp_path / "emb", after_shard=fail_after_second)
    part = EmbeddingSet.open(tmp_path / "emb")
    assert len(part) == 32  # two committed shards of 16
    # What a kill -9 while writing shard 2 leaves: its array without its table, and a temporary file.
    shard_dir = part.path / SHARDS
    np.save(shard_dir / "000002.npy", np.zeros((16, part.dim), np.float32))
    (shard_dir / ".tmp-999-000002.parquet").write_bytes(b"partial")
    report = _embed(encoder, store, tmp_path / "emb")
    assert report["embedded"] == 50 - 32 and report["already_done"] == 32
    resumed, full = EmbeddingSet.open(tmp_path / "emb"), EmbeddingSet.open(emb)
    _assert_same(resumed, full)
    assert not list(shard_dir.glob(".tmp-*"))
    table = resumed.table()
    assert table["cutout_id"].is_unique and len(table) == len(CutoutStore(store)) == 50
    assert table["cutout_id"].tolist() == store_cutout_ids(CutoutStore(store).manifest)
    # a second rerun has nothing to do
    assert _embed(encoder, store, tmp_path / "emb")["embedded"] == 0


def test_rows_are_the_encoders_embeddings_of_the_cutouts(emb, store, encoder):
    s, table = EmbeddingSet.open(emb), EmbeddingSet.open(emb).table()
    cs = CutoutStore(store)
    i = 37
    pos = store_cutout_ids(cs.manifest).index(table["cutout_id"].iat[i])
    expected = encoder.embed(torch.from_numpy(cs.get_array(pos)[None])).numpy()[0]
    np.testing.assert_allclose(s.vectors()[i], expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(s.rows(np.array([[i]]))[0, 0], expected, rtol=1e-4, atol=1e-5)
    assert table["ra"].iat[i] == pytest.approx(cs.manifest["ra"].iat[pos])
    assert table["path"].iat[i] == cs.manifest["path"].iat[pos]


def test_grown_store_embeds_only_its_new_cutouts(tmp_path, mosaics, encoder):
    store = ingest(mosaics[:1], tmp_path / "store")
    first = _embed(encoder, store, tmp_path / "emb")
    assert first["embedded"] == 25
    before = EmbeddingSet.open(tmp_path / "emb")
    v0, t0 = before.vectors(), before.table()
    extra = write_mosaic(tmp_path / "more", "c.fits", 3, 152.0, 3.0)
    ingest([extra], store)
    second = _embed(encoder, store, tmp_path / "emb")
    assert second["embedded"] == 25 and second["already_done"] == 25
    after = EmbeddingSet.open(tmp_path / "emb")
    np.testing.assert_array_equal(after.vectors()[:25], v0)
    pd.testing.assert_frame_equal(after.table().iloc[:25], t0)
    assert sorted(after.table()["cutout_id"]) == sorted(store_cutout_ids(CutoutStore(store).manifest))
    assert set(after.table()["path"].iloc[25:]) == {str(extra.resolve())}


def test_another_model_readout_or_layer_writes_a_separate_set(tmp_path, store, encoder):
    from tessera.models.load import load

    out = tmp_path / "emb"
    a = _embed(encoder, store, out)
    b = _embed(encoder, store, out, readout="cls")
    c = _embed(encoder, store, out, layer=0)
    other = load(MODEL)
    with torch.no_grad():
        weight = dict(other.module.named_parameters())["backbone.embeddings.patch_embeddings.projection.weight"]
        weight.add_(0.05)  # other weights: another fingerprint
    d = _embed(other, store, out)
    sets = {a["set"], b["set"], c["set"], d["set"]}
    assert len(sets) == 4 and d["fingerprint"] != a["fingerprint"]
    assert all(r["embedded"] == 50 for r in (a, b, c, d))
    assert not np.allclose(EmbeddingSet.open(a["set"]).vectors(), EmbeddingSet.open(d["set"]).vectors())
    with pytest.raises(TesseraError, match="holds 4 embedding sets"):
        EmbeddingSet.open(out)


def test_another_corpus_into_the_same_set_is_refused(tmp_path, store, mosaics, encoder):
    other = ingest(mosaics[1:], tmp_path / "other")
    _embed(encoder, store, tmp_path / "emb")
    with pytest.raises(TesseraError, match="use another --out"):
        _embed(encoder, other, tmp_path / "emb")


def test_bad_layer_is_refused_before_any_work(tmp_path, store, encoder):
    with pytest.raises(TesseraError, match="--layer 7: out of range"):
        _embed(encoder, store, tmp_path / "emb", layer=7)
    assert not (tmp_path / "emb").exists()


@pytest.mark.slow
def test_kill_9_of_tessera_embed_then_rerun_equals_an_uninterrupted_run(tmp_path, store, encoder):
    """A real SIGKILL of the command while it writes shards; the rerun completes the set exactly."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from tessera.cli import main

    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(repo / "src"), str(repo)])}
    argv = ["embed", "--model", MODEL, "--corpus", str(store), "--batch", "4", "--shard-size", "8", "--quiet"]
    # slowed table writes (the test hook lives in tests/search/_slow_embed.py, not in production code)
    cmd = [sys.executable, "-m", "tests.search._slow_embed", "0.4", *argv, "--out", str(tmp_path / "killed")]
    proc = subprocess.Popen(cmd, env=env, cwd=repo)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list((tmp_path / "killed").glob("*/shards/*.parquet"))) >= 2:
            break
        time.sleep(0.05)
    time.sleep(0.2)  # land inside the slow window of the next shard (array written, table not yet)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    committed = len(EmbeddingSet.open(tmp_path / "killed"))
    assert 0 < committed < 50
    assert main([*argv, "--out", str(tmp_path / "killed")]) == 0
    assert main([*argv, "--out", str(tmp_path / "whole")]) == 0
    _assert_same(EmbeddingSet.open(tmp_path / "killed"), EmbeddingSet.open(tmp_path / "whole"))
