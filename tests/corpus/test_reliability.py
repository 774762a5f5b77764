"""Issue 17 in ingest: data that was lost (scaled-integer FITS, silently dropped inputs, blanked pixels, mixed
channels), a destructive --overwrite, a corrupt journal line, and workers that outlived a killed parent."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits
from PIL import Image

from tessera.cli import main
from tessera.corpus.config import IngestConfig
from tessera.corpus.ingest import JOURNAL, run_ingest
from tessera.corpus.normalize import zscale_normalize
from tessera.corpus.store import CutoutStore
from tessera.errors import TesseraError
from tests.corpus._synth import sky, write_fits

REPO = Path(__file__).resolve().parents[2]
CFG = IngestConfig(tile=64, min_tile=32)


def _skipped(store: Path) -> dict[str, str]:
    frame = pd.read_parquet(store / "skipped.parquet")
    return {Path(p).name: r for p, r in zip(frame["path"], frame["reason"])}


def _astropy_scaled(path: Path) -> np.ndarray:
    with fits.open(path, memmap=False) as f:
        return np.asarray(f[0].data, dtype=np.float32)


def test_scaled_integer_fits_are_ingested_with_astropys_values(tmp_path, rng):
    d = tmp_path / "in"
    d.mkdir()
    raw = np.round(sky(rng, 128, 128) / 1e-6).clip(-32000, 32000).astype(np.int16)
    raw[70, 70] = -32768
    hdu = fits.PrimaryHDU(raw)
    hdu.header["BSCALE"], hdu.header["BZERO"], hdu.header["BLANK"] = 1e-6, 2e-3, -32768
    hdu.writeto(d / "int16.fits")
    hdu.writeto(d / "int16.fits.gz")
    fits.PrimaryHDU(rng.integers(0, 65000, size=(64, 128)).astype(np.uint16)).writeto(d / "u16.fits")
    assert fits.getheader(d / "u16.fits")["BZERO"] == 32768
    report = run_ingest([d], tmp_path / "store", CFG, progress=False)
    assert report["inputs_read"] == 3 and report["skipped_inputs"] == []
    # 4 + 4 tiles of the int16 files, one of each dropped for its BLANK pixel (seed rule), 2 of the uint16 one.
    assert report["tiles_written"] == 3 + 3 + 2 and report["tiles_dropped"]["nan_or_inf"] == 2
    store = CutoutStore(tmp_path / "store")
    for i in range(len(store)):
        arr, row = store[i]
        tile = _astropy_scaled(Path(row["path"]))[row["y"] : row["y"] + 64, row["x"] : row["x"] + 64]
        np.testing.assert_allclose(arr[0], zscale_normalize(tile), atol=1e-3)
        assert row["raw_max"] == pytest.approx(float(tile.max())) and row["raw_min"] == pytest.approx(float(tile.min()))


def test_every_input_without_a_cutout_is_in_skipped_parquet(tmp_path, rng, monkeypatch):
    d = tmp_path / "in"
    (d / "sub" / "locked").mkdir(parents=True)
    write_fits(d / "good.fits", sky(rng, 64, 64))
    write_fits(d / "allnan.fits", np.full((64, 64), np.nan, dtype=np.float32))
    write_fits(d / "sub" / "locked" / "hidden_from_us.fits", sky(rng, 64, 64))
    os.symlink(d / "gone.fits", d / "dangling.fits")
    os.symlink(d / "loop_b.fits", d / "loop_a.fits")
    os.symlink(d / "loop_a.fits", d / "loop_b.fits")
    # Tests run as root, for whom chmod 000 blocks nothing: make listing that directory fail as it would.
    real_scandir = os.scandir

    def scandir(path="."):
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    report = run_ingest([d, tmp_path / "missing.fits", str(tmp_path / "nothing_*.fits")], tmp_path / "store", CFG,
                        progress=False)
    skipped = _skipped(tmp_path / "store")
    assert skipped["allnan.fits"] == "no_cutouts"
    assert skipped["locked"] == "unreadable_dir"
    assert skipped["dangling.fits"] == "broken_link"
    assert skipped["loop_a.fits"] == skipped["loop_b.fits"] == "link_loop"
    assert skipped["missing.fits"] == skipped["nothing_*.fits"] == "missing"
    assert "good.fits" not in skipped and report["inputs_read"] == 2
    assert report["inputs_skipped"] == 6
    reasons = {Path(r["path"]).name: r["reason"] for r in report["skipped_inputs"]}
    assert "cannot list directory" in reasons["locked"] and "dangling symlink" in reasons["dangling.fits"]


def test_nan_fraction_threshold_keeps_lightly_blanked_cutouts(tmp_path, rng):
    img = sky(rng, 128, 128)
    img[5, 5] = img[6, 9] = img[40, 3] = np.nan  # 3 blanked pixels in tile (0, 0): 0.07 %
    img[64:128, 64:128] = np.nan  # a blanked border: tile (1, 1)
    path = write_fits(tmp_path / "m.fits", img)
    seed_rule = run_ingest([path], tmp_path / "s0", CFG, progress=False)
    assert seed_rule["tiles_written"] == 2 and seed_rule["tiles_dropped"]["nan_or_inf"] == 2
    cfg = IngestConfig(tile=64, min_tile=32, max_nan_fraction=0.01)
    kept = run_ingest([path], tmp_path / "s1", cfg, progress=False)
    assert kept["tiles_written"] == 3 and kept["tiles_dropped"]["nan_or_inf"] == 1
    assert kept["tiles_kept"] == {"kept_with_blanks": 1}
    store = CutoutStore(tmp_path / "s1")
    row = store.manifest.query("x == 0 and y == 0").index[0]
    arr = store.get_array(row)[0]
    expected = zscale_normalize(img[:64, :64])  # ZScale on the finite pixels, blanks -> 0 (DESIGN §3.1)
    np.testing.assert_allclose(arr, expected, atol=1e-3)
    assert arr[5, 5] == 0 and np.isfinite(arr).all()
    assert store.manifest.loc[row, "raw_max"] == pytest.approx(float(np.nanmax(img[:64, :64])))
    with pytest.raises(TesseraError, match="store was built with"):  # a content setting: a store keeps one
        run_ingest([path], tmp_path / "s0", cfg, progress=False)
    assert main(["ingest", str(path), "--out", str(tmp_path / "s2"), "--tile", "64", "max_nan_fraction=1.5",
                 "--quiet"]) == 2


def test_one_channel_count_per_store_and_gray_converts(tmp_path, rng):
    d = tmp_path / "in"
    d.mkdir()
    for k in range(2):
        write_fits(d / f"m{k}.fits", sky(rng, 64, 64))
    Image.fromarray(rng.integers(0, 255, size=(64, 64, 4), dtype=np.uint8), mode="RGBA").save(d / "a_rgba.png")
    report = run_ingest([d], tmp_path / "store", CFG, progress=False)
    assert report["inputs_read"] == 2 and report["tiles_written"] == 2
    assert "has 3 channel(s), the store has 1" in _reason(report, "a_rgba.png")
    assert CutoutStore(tmp_path / "store").channels == 1
    gray = run_ingest([d], tmp_path / "gray", IngestConfig(tile=64, min_tile=32, to_gray=True), progress=False)
    assert gray["inputs_read"] == 3 and CutoutStore(tmp_path / "gray").channels == 1
    # The next run appends: the store's channel count is the one already in it, even if most new inputs differ.
    e = tmp_path / "rgb"
    e.mkdir()
    for k in range(3):
        Image.fromarray(rng.integers(0, 255, size=(64, 64, 3), dtype=np.uint8)).save(e / f"c{k}.png")
    more = run_ingest([d, e], tmp_path / "store", CFG, progress=False)
    assert more["inputs_read"] == 2 and sum("the store has 1" in r["reason"] for r in more["skipped_inputs"]) == 4


def _reason(report: dict, name: str) -> str:
    return next(r["reason"] for r in report["skipped_inputs"] if Path(r["path"]).name == name)


def test_a_store_with_mixed_channel_counts_is_refused_on_open(tmp_path, rng):
    write_fits(tmp_path / "m.fits", sky(rng, 64, 64))
    run_ingest([tmp_path / "m.fits"], tmp_path / "store", CFG, progress=False)
    manifest = pd.read_parquet(tmp_path / "store" / "manifest.parquet")
    manifest = pd.concat([manifest, manifest.assign(channels=3)], ignore_index=True)  # as older versions wrote
    manifest.to_parquet(tmp_path / "store" / "manifest.parquet")
    with pytest.raises(TesseraError, match="different channel counts.*C=3"):
        CutoutStore(tmp_path / "store")


def test_out_equal_to_inside_or_containing_an_input_is_refused(tmp_path, rng, capsys):
    d = tmp_path / "in"
    d.mkdir()
    path = write_fits(d / "m.fits", sky(rng, 64, 64))
    for out in (d, d / "store", tmp_path):
        assert main(["ingest", str(d), "--out", str(out), "--overwrite", "--quiet", "tile=64"]) == 2
        assert "choose an output directory apart from the inputs" in capsys.readouterr().err
    assert path.is_file()


def test_corrupt_journal_line_in_the_middle_is_healed(tmp_path, rng, caplog):
    d = tmp_path / "in"
    d.mkdir()
    for k in range(3):
        write_fits(d / f"m{k}.fits", sky(rng, 128, 128))
    store = tmp_path / "store"
    run_ingest([d], store, CFG, progress=False)
    reference = (store / "manifest.parquet").read_bytes()
    lines = (store / JOURNAL).read_bytes().splitlines(keepends=True)
    lines[1] = lines[1][:30] + b"\x00\xff garbage" + lines[1][60:]
    (store / JOURNAL).write_bytes(b"".join(lines))
    with caplog.at_level(logging.WARNING):
        report = run_ingest([d], store, CFG, progress=False)
    assert report["run"]["inputs_processed"] == 1
    assert any("line 2" in r.getMessage() for r in caplog.records)
    assert (store / "manifest.parquet").read_bytes() == reference
    assert all(json.loads(line) for line in (store / JOURNAL).read_bytes().splitlines())


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _ingest_cmd(d: Path, store: Path, *extra: str, slow: str = "0") -> list[str]:
    return [sys.executable, "-m", "tests.corpus._slow_ingest", slow, str(d), "--out", str(store), "--tile", "64",
            "--min-tile", "32", "--quiet", *extra]


def _env() -> dict:
    import tessera

    src = str(Path(tessera.__file__).resolve().parents[1])  # the tessera under test, in the child too
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": src}


def _inputs(tmp_path: Path, n: int) -> Path:
    rng = np.random.default_rng(1)
    d = tmp_path / "in"
    d.mkdir()
    for k in range(n):
        write_fits(d / f"m{k:02d}.fits", sky(rng, 128, 128))
    return d


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")
def test_workers_die_with_a_sigkilled_parent(tmp_path):
    d = _inputs(tmp_path, 6)
    proc = subprocess.Popen(_ingest_cmd(d, tmp_path / "store", "--workers", "2", slow="0.5"), env=_env(), cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    workers: list[int] = []
    while time.monotonic() < deadline and proc.poll() is None:
        workers = _children(proc.pid)
        if len(workers) >= 2 and (tmp_path / "store" / JOURNAL).exists():
            break
        time.sleep(0.05)
    assert proc.poll() is None and len(workers) >= 2
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(_alive(w) for w in workers):
        time.sleep(0.1)
    survivors = [w for w in workers if _alive(w)]
    for w in survivors:  # do not leave them behind if the test fails
        os.kill(w, signal.SIGKILL)
    assert survivors == []


@pytest.mark.slow
def test_overwrite_of_a_store_being_written_is_refused(tmp_path):
    d = _inputs(tmp_path, 6)
    store = tmp_path / "store"
    # Slow enough (6 inputs x 2 pauses x 1.5 s) that the second process starts long before the writer is done,
    # even on a loaded CI machine where starting Python takes seconds.
    writer = subprocess.Popen(_ingest_cmd(d, store, slow="1.5"), env=_env(), cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (store / JOURNAL).exists():
        time.sleep(0.02)
    assert writer.poll() is None
    second = subprocess.run(_ingest_cmd(d, store, "--overwrite"), env=_env(), cwd=REPO, capture_output=True, text=True)
    assert second.returncode == 2 and "another ingest" in second.stderr
    out, err = writer.communicate(timeout=120)
    assert writer.returncode == 0, err
    s = CutoutStore(store)
    assert len(s) == 24 and all(s.get_array(i).shape == (1, 64, 64) for i in range(len(s)))  # every shard is there
