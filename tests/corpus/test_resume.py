"""Resumability: an ingest killed with SIGKILL at an arbitrary point, re-run, gives exactly the store of an
uninterrupted run (same manifest rows, same arrays, no leftover or duplicated shard)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tessera.corpus.config import IngestConfig
from tessera.corpus.ingest import JOURNAL, run_ingest
from tessera.corpus.store import CutoutStore
from tests.corpus._synth import sky, write_fits

REPO = Path(__file__).resolve().parents[2]


def _inputs(tmp_path: Path, n: int = 8) -> Path:
    rng = np.random.default_rng(1)
    d = tmp_path / "in"
    d.mkdir()
    for k in range(n):
        write_fits(d / f"m{k:02d}.fits", sky(rng, 128, 128))
    return d


def _journal_lines(store: Path) -> int:
    path = store / JOURNAL
    return path.read_bytes().count(b"\n") if path.exists() else 0


def _shards(store: Path) -> list[str]:
    d = store / "shards"
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def _assert_same_store(a: Path, b: Path) -> None:
    sa, sb = CutoutStore(a), CutoutStore(b)
    assert sa.manifest.equals(sb.manifest)
    assert len(sa) == len(sb) > 0
    for i in range(len(sa)):
        np.testing.assert_array_equal(sa.get_array(i), sb.get_array(i))
    assert _shards(a) == _shards(b)  # no orphaned or temporary shard left behind
    assert (a / "manifest.parquet").read_bytes() == (b / "manifest.parquet").read_bytes()


@pytest.mark.slow
def test_sigkill_midway_then_rerun_equals_uninterrupted(tmp_path):
    d = _inputs(tmp_path)
    cfg = IngestConfig(tile=64, min_tile=32)
    reference = tmp_path / "reference"
    run_ingest([d], reference, cfg, progress=False)

    store = tmp_path / "store"
    args = [str(d), "--out", str(store), "--tile", "64", "--min-tile", "32", "--quiet"]
    cmd = [sys.executable, "-m", "tests.corpus._slow_ingest", "0.4", *args]  # slowed journal writes (test hook)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # Kill in the window where an input's shards are durable but its journal record is not yet written.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        done = _journal_lines(store)
        if done >= 2 and len(_shards(store)) > done:
            break
        time.sleep(0.01)
    assert proc.poll() is None, f"ingest finished before it could be killed: {proc.communicate()}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = _journal_lines(store)
    assert 2 <= killed_at < 8
    assert not (store / "manifest.parquet").exists()  # the manifest is only written at the end

    rerun = subprocess.run([sys.executable, "-m", "tessera.cli", "ingest", *args], env=env, cwd=REPO,
                           capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert _journal_lines(store) == 8  # each input recorded once
    _assert_same_store(store, reference)


def test_torn_journal_line_is_redone(tmp_path):
    d = _inputs(tmp_path, n=3)
    cfg = IngestConfig(tile=64, min_tile=32)
    store = tmp_path / "store"
    run_ingest([d], store, cfg, progress=False)
    reference = (store / "manifest.parquet").read_bytes()
    # Simulate a kill during the last journal write: drop the last record and leave half of it.
    lines = (store / JOURNAL).read_bytes().splitlines(keepends=True)
    (store / JOURNAL).write_bytes(b"".join(lines[:-1]) + lines[-1][:40])
    report = run_ingest([d], store, cfg, progress=False)
    assert report["run"]["inputs_processed"] == 1
    assert _journal_lines(store) == 3
    assert (store / "manifest.parquet").read_bytes() == reference


def test_changed_input_replaces_its_cutouts(tmp_path):
    d = _inputs(tmp_path, n=2)
    cfg = IngestConfig(tile=64, min_tile=32)
    store = tmp_path / "store"
    run_ingest([d], store, cfg, progress=False)
    old_shards = set(_shards(store))
    write_fits(d / "m00.fits", sky(np.random.default_rng(9), 64, 128))  # rewritten: 2 tiles instead of 4
    report = run_ingest([d], store, cfg, progress=False)
    assert report["tiles_written"] == 6
    assert len(CutoutStore(store)) == 6
    assert len(set(_shards(store)) - old_shards) == 1 and len(old_shards - set(_shards(store))) == 1


def test_lock_refuses_a_concurrent_writer(tmp_path):
    from tessera.errors import TesseraError

    d = _inputs(tmp_path, n=1)
    store = tmp_path / "store"
    run_ingest([d], store, IngestConfig(tile=64, min_tile=32), progress=False)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (store / ".lock").write_text(str(sleeper.pid))
        with pytest.raises(TesseraError, match="another ingest"):
            run_ingest([d], store, IngestConfig(tile=64, min_tile=32), progress=False)
    finally:
        sleeper.kill()
        sleeper.wait()
    # The holder is gone: its stale lock is taken over.
    run_ingest([d], store, IngestConfig(tile=64, min_tile=32), progress=False)
    assert not (store / ".lock").exists()
