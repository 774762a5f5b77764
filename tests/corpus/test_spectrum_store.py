"""Spectrum stores (DESIGN §3.2): `tessera ingest --spectra` of NPY, CSV and FITS spectra onto one grid, NaN kept
as missing, provenance and positions in the manifest, bad files skipped and recorded, resume and append."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tessera.cli import main
from tessera.corpus.config import IngestConfig
from tessera.corpus.ingest import run_ingest
from tessera.corpus.store import CutoutStore
from tessera.errors import ConfigError, TesseraError
from tests.corpus._spectra import FREQ_MHZ, power_law, write_csv, write_fits_table

CFG = IngestConfig(kind="spectrum", length=120)


@pytest.fixture
def inputs(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    flux = power_law(-0.7)
    flux[20:30] = np.nan  # an RFI band
    write_csv(d / "a.csv", flux)
    write_csv(d / "b.csv", power_law(-0.1))
    freq_ghz = np.geomspace(0.2, 5.0, 80)  # a narrower band, in GHz
    flags = np.zeros(80, dtype=int)
    flags[40] = 1
    write_fits_table(d / "c.fits", power_law(-0.5, freq=freq_ghz * 1000), flags, freq_ghz, ra=150.25, dec=2.5)
    return d


def test_tables_resampled_onto_one_grid_with_missing_channels_kept(inputs, tmp_path):
    report = run_ingest([inputs], tmp_path / "store", CFG, progress=False)
    store = CutoutStore(tmp_path / "store")
    assert (store.kind, store.ndim, len(store)) == ("spectrum", 1, 3) and report["tiles_written"] == 3
    grid = store.grid
    assert grid.shape == (120,) and np.isclose(grid[0], 100.0) and np.isclose(grid[-1], 10_000.0)
    assert np.allclose(np.diff(np.log(grid)), np.log(100.0) / 119)  # log-spaced over all tables' range
    assert store.info["x_kind"] == "frequency" and store.info["x_unit"] == "MHz"
    m = store.manifest.set_index(store.manifest["path"].str.rsplit("/", n=1).str[-1])
    a = store.get_array(int(np.flatnonzero(m.index == "a.csv")[0]))
    assert a.shape == (1, 120) and a.dtype == np.float32
    band = (grid >= FREQ_MHZ[19]) & (grid <= FREQ_MHZ[30])
    assert np.isnan(a[0, band]).all() and np.isfinite(a[0, ~band]).all()  # the flagged band, and only it
    inside = ~band
    assert np.allclose(a[0, inside], power_law(-0.7, freq=grid[inside]), rtol=2e-3)
    c = store.get_array(int(np.flatnonzero(m.index == "c.fits")[0]))[0]
    span = (grid >= 200.0) & (grid <= 5000.0)
    assert np.isnan(c[~span]).all()  # outside the file's own band: missing
    flagged = np.geomspace(0.2, 5.0, 80)[[39, 41]] * 1000
    near = (grid > flagged[0]) & (grid < flagged[1])
    assert near.any() and np.isnan(c[near]).all()  # next to the flagged sample: missing
    assert m.loc["c.fits", "ra"] == 150.25 and m.loc["c.fits", "dec"] == 2.5 and m.loc["c.fits", "hdu"] == 1
    assert np.isnan(m.loc["a.csv", "ra"]) and (m["w"] == 120).all() and (m["channels"] == 1).all()
    assert np.isclose(m.loc["b.csv", "raw_max"], power_law(-0.1, freq=grid).max(), rtol=1e-3)


def test_npy_spectra_positions_and_bad_files_skipped_rest_kept(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    ok = np.linspace(1, 2, 50, dtype=np.float32)
    ok[5] = np.inf  # non-finite = missing
    np.save(d / "one.npy", ok)
    np.save(d / "many.npy", np.ones((3, 1, 50), np.float32) * np.arange(3, dtype=np.float32)[:, None, None] + 1)
    np.save(d / "short.npy", np.ones(40, np.float32))  # not on the grid
    np.save(d / "blank.npy", np.full(50, np.nan, np.float32))  # no valid channel
    (d / "bad.csv").write_text("a,b,c\nx,y,z\n")  # a table cannot go on a channel-number grid
    (d / "garbage.fits").write_bytes(b"not a FITS file at all" * 10)
    (tmp_path / "pos.csv").write_text("path,ra_deg,dec_deg\nin/one.npy,10.0,-5.0\n")
    cfg = IngestConfig(kind="spectrum", positions=str(tmp_path / "pos.csv"))
    report = run_ingest([d], tmp_path / "store", cfg, progress=False)
    store = CutoutStore(tmp_path / "store")
    assert len(store) == 4 and store.info["x_kind"] == "index" and np.array_equal(store.grid, np.arange(50))
    names = store.manifest["path"].str.rsplit("/", n=1).str[-1].tolist()
    assert names == ["many.npy"] * 3 + ["one.npy"] and store.manifest["plane"].tolist() == [0, 1, 2, 0]
    assert [float(store.get_array(i)[0, 0]) for i in range(3)] == [1.0, 2.0, 3.0]
    one = store.get_array(3)
    assert np.isnan(one[0, 5]) and np.isfinite(np.delete(one[0], 5)).all()
    assert (store.manifest.iloc[3]["ra"], store.manifest.iloc[3]["dec"]) == (10.0, -5.0)
    skipped = pd.read_parquet(tmp_path / "store" / "skipped.parquet")
    reasons = dict(zip(skipped["path"].str.rsplit("/", n=1).str[-1], skipped["detail"]))
    assert set(reasons) == {"short.npy", "blank.npy", "bad.csv", "garbage.fits"}
    assert "40 channels, the store's grid has 50" in reasons["short.npy"]
    assert "no valid channel" in reasons["blank.npy"] and "grid is channel numbers" in reasons["bad.csv"]
    assert report["inputs_skipped"] == 4 and report["tiles_dropped"]["all_missing"] == 1


def test_resume_and_append_keep_the_grid(inputs, tmp_path):
    store_dir = tmp_path / "store"
    run_ingest([inputs / "a.csv", inputs / "b.csv"], store_dir, CFG, progress=False)
    grid = CutoutStore(store_dir).grid
    manifest = (store_dir / "manifest.parquet").read_bytes()
    again = run_ingest([inputs / "a.csv", inputs / "b.csv"], store_dir, CFG, progress=False)
    assert again["run"]["inputs_processed"] == 0 and (store_dir / "manifest.parquet").read_bytes() == manifest
    # Appending a narrower FITS band with kind=auto: the store's kind and grid are kept.
    run_ingest([inputs / "c.fits"], store_dir, IngestConfig(length=120), progress=False)
    store = CutoutStore(store_dir)
    assert len(store) == 3 and np.array_equal(store.grid, grid)
    with pytest.raises(TesseraError, match="store was built with"):
        run_ingest([inputs / "c.fits"], store_dir, IngestConfig(kind="spectrum", length=64), progress=False)


def test_cli_spectra_flag_and_auto_kind(inputs, tmp_path, capsys):
    assert main(["ingest", str(inputs / "a.csv"), str(inputs / "b.csv"), "--out", str(tmp_path / "auto")]) == 0
    assert "2 spectra from 2 inputs" in capsys.readouterr().out  # CSV-only batch: a spectrum store by itself
    assert CutoutStore(tmp_path / "auto").kind == "spectrum"
    assert main(["ingest", str(inputs), "--spectra", "--length", "64", "--out", str(tmp_path / "s"), "--quiet"]) == 0
    assert CutoutStore(tmp_path / "s").grid.shape == (64,)
    with pytest.raises(TesseraError, match="--shard"):
        run_ingest([inputs], tmp_path / "parts", CFG, progress=False, shard=(0, 2))
    with pytest.raises(ConfigError, match="config key 'kind'"):
        run_ingest([inputs], tmp_path / "x", IngestConfig(kind="spectra"), progress=False)
