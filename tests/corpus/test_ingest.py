"""The ingest job and the CutoutStore: filters counted per reason, cubes, formats, bad inputs, idempotence, append."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from PIL import Image

from tessera.cli import main
from tessera.corpus.config import IngestConfig
from tessera.corpus.ingest import run_ingest
from tessera.corpus.normalize import zscale_normalize
from tessera.corpus.store import CutoutDataset, CutoutStore
from tessera.errors import ConfigError, TesseraError
from tests.corpus._synth import celestial_header, sky, write_fits

CFG = IngestConfig(tile=64, min_tile=32)


def mosaic_with_bad_tiles(rng) -> np.ndarray:
    """256x256 sky cut into 16 tiles of 64: tile (0,0) has a NaN, (0,1) is all zero, (1,0) is constant."""
    img = sky(rng, 256, 256)
    img[10, 10] = np.nan
    img[0:64, 64:128] = 0.0
    img[64:128, 0:64] = 5.0
    return img


def test_filters_counts_normalization_and_wcs(tmp_path, rng):
    img = mosaic_with_bad_tiles(rng)
    hdr = celestial_header(256, 256, ra=150.0, dec=2.0)
    (tmp_path / "in").mkdir()
    path = write_fits(tmp_path / "in" / "m.fits", img, hdr)
    report = run_ingest([path], tmp_path / "store", CFG, progress=False)
    assert report["tiles_written"] == 13
    assert report["tiles_dropped"] == {"nan_or_inf": 1, "all_zero": 1, "constant": 1}
    assert report["per_input"][0]["dropped"] == {"nan_or_inf": 1, "all_zero": 1, "constant": 1}
    store = CutoutStore(tmp_path / "store")
    m = store.manifest
    assert len(store) == 13
    kept = set(zip(m["y"], m["x"]))
    assert not kept & {(0, 0), (0, 64), (64, 0)}
    wcs = WCS(hdr)
    for i in (0, 5, 12):
        arr, row = store[i]
        y, x = row["y"], row["x"]
        raw = img[y : y + 64, x : x + 64]
        assert arr.shape == (1, 64, 64) and arr.dtype == np.float32
        np.testing.assert_allclose(arr[0], zscale_normalize(raw), atol=1e-3)  # float16 storage
        assert row["raw_max"] == pytest.approx(float(raw.max()))
        assert row["raw_median"] == pytest.approx(float(np.median(raw)))
        ra, dec = wcs.all_pix2world(x + 31.5, y + 31.5, 0)
        assert row["ra"] == pytest.approx(float(ra), abs=1e-6) and row["dec"] == pytest.approx(float(dec), abs=1e-6)
        assert row["source"] == "in" and row["hdu"] == 0 and row["path"] == str(path.resolve())
    written = json.loads((tmp_path / "store" / "report.json").read_text())
    assert written["tiles_written"] == 13
    assert (tmp_path / "store" / "config.yaml").read_text().startswith("tile: 64")


def test_cubes_compressed_and_multi_hdu(tmp_path, rng):
    d = tmp_path / "in"
    d.mkdir()
    write_fits(d / "c3.fits", np.stack([sky(rng, 128, 128) for _ in range(3)]))
    hdr = celestial_header(128, 128)
    hdr["CTYPE3"], hdr["CTYPE4"] = "FREQ", "STOKES"
    write_fits(d / "c4.fits", sky(rng, 128, 128)[None, None], hdr)
    write_fits(d / "g.fits.gz", sky(rng, 64, 128))
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(sky(rng, 64, 64))]).writeto(d / "comp.fits")
    run_ingest([d], tmp_path / "store", CFG, progress=False)
    m = CutoutStore(tmp_path / "store").manifest
    per_file = m.groupby(m["path"].str.rsplit("/", n=1).str[-1]).size().to_dict()
    assert per_file == {"c3.fits": 12, "c4.fits": 4, "g.fits.gz": 2, "comp.fits": 1}
    assert sorted(m[m["path"].str.endswith("c3.fits")]["plane"].unique()) == [0, 1, 2]
    assert m[m["path"].str.endswith("comp.fits")]["hdu"].tolist() == [1]
    assert m[m["path"].str.endswith("c4.fits")]["ra"].notna().all()
    assert m[m["path"].str.endswith("c3.fits")]["ra"].isna().all()  # no WCS in that header
    assert list(m["path"]) == sorted(m["path"])  # deterministic order: sorted by input path


def test_images_arrays_and_channels(tmp_path, rng):
    d = tmp_path / "in"
    d.mkdir()
    Image.fromarray(rng.integers(0, 255, size=(80, 90, 3), dtype=np.uint8)).save(d / "rgb.png")
    gray = rng.integers(0, 255, size=(80, 90), dtype=np.uint8)
    Image.fromarray(np.repeat(gray[..., None], 3, axis=2)).save(d / "gray3.png")
    Image.fromarray(rng.integers(0, 65535, size=(70, 70)).astype(np.uint16)).save(d / "g16.png")
    np.save(d / "stack.npy", rng.normal(size=(2, 64, 64)).astype(np.float32))
    with h5py.File(d / "cube.h5", "w") as f:
        f["imgs"] = rng.normal(size=(3, 40, 40))
        f["labels"] = np.arange(3)
    report = run_ingest([d], tmp_path / "store", IngestConfig(tile=128, min_tile=32), progress=False)
    m = CutoutStore(tmp_path / "store").manifest
    by = {name: g for name, g in m.groupby(m["path"].str.rsplit("/", n=1).str[-1])}
    # One channel count per store (issue 17): the lone RGB image among gray ones is skipped, with the reason.
    assert "rgb.png" not in by
    skipped = {r["path"].rsplit("/", 1)[-1]: r["reason"] for r in report["skipped_inputs"]}
    assert "has 3 channel(s), the store has 1" in skipped["rgb.png"] and "--gray" in skipped["rgb.png"]
    assert by["gray3.png"]["channels"].tolist() == [1]
    assert by["g16.png"]["raw_max"].iloc[0] > 255
    assert by["stack.npy"]["plane"].tolist() == [0, 1]
    assert by["cube.h5"]["dataset"].tolist() == ["imgs"] * 3 and by["cube.h5"]["plane"].tolist() == [0, 1, 2]
    assert report["inputs_read"] == 4
    store = CutoutStore(tmp_path / "store")
    shapes = {store.get_array(i).shape for i in range(len(store))}
    assert (1, 70, 70) in shapes and (1, 40, 40) in shapes  # mixed sizes in one store
    run_ingest([d / "rgb.png"], tmp_path / "rgb", IngestConfig(tile=128, min_tile=32), progress=False)
    rgb = CutoutStore(tmp_path / "rgb").manifest
    assert rgb["channels"].tolist() == [3] and rgb[["h", "w"]].values.tolist() == [[80, 90]]
    gray_cfg = IngestConfig(tile=128, min_tile=32, to_gray=True)
    run_ingest([d / "rgb.png"], tmp_path / "gray", gray_cfg, progress=False)
    assert CutoutStore(tmp_path / "gray").get_array(0).shape == (1, 80, 90)


def test_bad_inputs_are_skipped_with_reasons(tmp_path, rng, capsys):
    d = tmp_path / "in"
    d.mkdir()
    good = write_fits(d / "good.fits", sky(rng, 128, 128))
    raw = good.read_bytes()
    (d / "trunc.fits").write_bytes(raw[: len(raw) - 20000])
    (d / "garbage.fits").write_bytes(b"\x00garbage" * 400)
    (d / "empty.png").write_bytes(b"")
    (d / "notes.txt").write_text("not an image")
    write_fits(d / "tiny.fits", sky(rng, 8, 8))
    write_fits(d / "allnan.fits", np.full((64, 64), np.nan, dtype=np.float32))
    rc = main(["ingest", str(d), "--out", str(tmp_path / "store"), "--tile", "64", "--min-tile", "32", "--quiet"])
    assert rc == 0
    report = json.loads((tmp_path / "store" / "report.json").read_text())
    reasons = {r["path"].rsplit("/", 1)[-1]: r["reason"] for r in report["skipped_inputs"]}
    assert set(reasons) == {"trunc.fits", "garbage.fits", "empty.png", "notes.txt", "tiny.fits"}
    for name, reason in reasons.items():
        assert name in reason and "\n" not in reason
    assert "too_small" in reasons["tiny.fits"] and "not a supported format" in reasons["notes.txt"]
    assert report["tiles_written"] == 4 and report["tiles_dropped"]["nan_or_inf"] == 1
    skipped = CutoutStore(tmp_path / "store").path / "skipped.parquet"
    import pandas as pd

    assert set(pd.read_parquet(skipped)["path"].str.rsplit("/", n=1).str[-1]) >= set(reasons)
    # Nothing readable at all: a clear error and exit status 2.
    rc = main(["ingest", str(d / "garbage.fits"), str(d / "notes.txt"), "--out", str(tmp_path / "s2"), "--quiet"])
    assert rc == 2
    assert "nothing could be read" in capsys.readouterr().err
    with pytest.raises(TesseraError, match="nothing could be read"):
        run_ingest([tmp_path / "missing.fits"], tmp_path / "s3", CFG, progress=False)


def test_rerun_is_idempotent_and_new_inputs_append(tmp_path, rng):
    d = tmp_path / "in"
    d.mkdir()
    write_fits(d / "a.fits", sky(rng, 128, 128))
    write_fits(d / "c.fits", sky(rng, 128, 128))
    store_dir = tmp_path / "store"
    run_ingest([d], store_dir, CFG, progress=False)
    before = (store_dir / "manifest.parquet").read_bytes()
    shards_before = sorted(p.name for p in (store_dir / "shards").iterdir())
    report = run_ingest([d], store_dir, CFG, progress=False)
    assert report["run"]["inputs_processed"] == 0 and report["run"]["inputs_already_done"] == 2
    assert (store_dir / "manifest.parquet").read_bytes() == before
    assert sorted(p.name for p in (store_dir / "shards").iterdir()) == shards_before
    old = CutoutStore(store_dir)
    old_arrays = {tuple(r): old.get_array(i) for i, r in enumerate(old.manifest[["path", "y", "x"]].values.tolist())}
    write_fits(d / "b.fits", sky(rng, 128, 64))
    report = run_ingest([d], store_dir, CFG, progress=False)
    assert report["run"]["inputs_processed"] == 1 and report["tiles_written"] == 10
    new = CutoutStore(store_dir)
    assert new.manifest["path"].str.endswith("b.fits").sum() == 2
    for i, r in enumerate(new.manifest[["path", "y", "x"]].values.tolist()):
        if tuple(r) in old_arrays:
            np.testing.assert_array_equal(new.get_array(i), old_arrays[tuple(r)])
    with pytest.raises(TesseraError, match="store was built with"):
        run_ingest([d], store_dir, IngestConfig(tile=32, min_tile=32), progress=False)


def test_parallel_workers_match_serial(tmp_path, rng):
    d = tmp_path / "in"
    d.mkdir()
    for k in range(4):
        write_fits(d / f"m{k}.fits", sky(rng, 128, 128))
    run_ingest([d], tmp_path / "serial", CFG, progress=False)
    run_ingest([d], tmp_path / "par", IngestConfig(tile=64, min_tile=32, workers=2), progress=False)
    a, b = CutoutStore(tmp_path / "serial"), CutoutStore(tmp_path / "par")
    assert a.manifest.equals(b.manifest)
    assert all(np.array_equal(a.get_array(i), b.get_array(i)) for i in range(len(a)))


def test_store_and_dataset_access(tmp_path, rng):
    import torch

    d = tmp_path / "in"
    d.mkdir()
    write_fits(d / "a.fits", sky(rng, 128, 128))
    run_ingest([d], tmp_path / "store", CFG, progress=False)
    store = CutoutStore(tmp_path / "store")
    np.testing.assert_array_equal(store.get_array(-1), store.get_array(len(store) - 1))
    with pytest.raises(IndexError):
        store.get_array(len(store))
    ds = CutoutDataset(tmp_path / "store")
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert batch.shape == (4, 1, 64, 64) and batch.dtype == torch.float32
    assert 0.0 <= float(batch.min()) and float(batch.max()) <= 1.0
    with pytest.raises(TesseraError, match="not a cutout store"):
        CutoutStore(tmp_path / "in")


def test_config_validation_names_the_key():
    with pytest.raises(ConfigError, match="min_tile"):
        IngestConfig(min_tile=0).validate()
    with pytest.raises(ConfigError, match="stride"):
        IngestConfig(stride=-1).validate()
    with pytest.raises(ConfigError, match="workers"):
        IngestConfig(workers=0).validate()


def test_cli_overrides_after_inputs(tmp_path, rng):
    d = tmp_path / "in"
    d.mkdir()
    write_fits(d / "a.fits", sky(rng, 128, 128))
    rc = main(["ingest", str(d), "tile=32", "min_tile=16", "--out", str(tmp_path / "store"), "--quiet"])
    assert rc == 0
    assert len(CutoutStore(tmp_path / "store")) == 16


def test_simulated_mosaics_with_nan_borders_and_cube_axes(tmp_path):
    from tessera.simulate.config import SimulateRadioConfig
    from tessera.simulate.sky import simulate_radio

    cfg = SimulateRadioConfig(size=256, mosaics=2, nan_border_prob=1.0, cube_axis_prob=1.0, seed=3)
    paths = simulate_radio(cfg, tmp_path / "sim")
    with fits.open(paths[0]) as h:
        assert h[0].header["NAXIS"] in (3, 4)
    report = run_ingest([tmp_path / "sim"], tmp_path / "store", CFG, progress=False)
    assert report["inputs_read"] == 2
    assert report["tiles_dropped"]["nan_or_inf"] > 0  # NaN coverage borders are filtered
    store = CutoutStore(tmp_path / "store")
    assert len(store) == report["tiles_written"] == 32 - report["tiles_dropped"]["nan_or_inf"]
    assert store.manifest["ra"].notna().all()
    assert all(np.isfinite(store.get_array(i)).all() for i in range(len(store)))


def test_real_fits_png_and_ska(shared_data, tmp_path, capfd):
    first = sorted((shared_data / "frdeep_fits" / "FIRST").glob("*.fits"))[:3]
    pngs = sorted((shared_data / "first_radio_galaxies" / "FRII").glob("*.png"))[:3]
    ska = shared_data / "ska_sdc1_crop" / "sdc1_560mhz_1000h_crop.fits"
    report = run_ingest([*first, *pngs, ska], tmp_path / "store", IngestConfig(tile=512), progress=False)
    err = capfd.readouterr().err
    assert "VerifyWarning" not in err and "Unprintable" not in err  # quiet on non-printable COMMENT cards
    store = CutoutStore(tmp_path / "store")
    m = store.manifest
    assert report["inputs_read"] == 7 and len(store) == 7  # all smaller than 512: taken whole
    fits_rows = m[m["format"] == "fits"]
    assert fits_rows["ra"].notna().all() and (fits_rows["channels"] == 1).all()
    png_rows = m[m["format"] == "pil"]
    assert (png_rows["h"] == 300).all() and (png_rows["channels"] == 1).all()
    ska_row = m[m["path"].str.endswith("crop.fits")].iloc[0]
    assert (ska_row["h"], ska_row["w"]) == (160, 174) and ska_row["dec"] == pytest.approx(-30.0, abs=1.0)


def test_center_crop_cuts_the_same_field_as_the_evaluation_key(shared_data, tmp_path):
    """``--center-crop N`` stores what the evaluation's ``center_crop=N`` shows the encoder: the central N x N of
    the normalized image, with the manifest's box and sky position at that field (a pretraining corpus at the
    evaluation's field, README "Why: the evaluation images show the sources at a few pixels")."""
    from tessera.evaluate.datasets import center_cropped, load_labeled

    for label in ("FRII", "Compact"):  # two classes: a labeled set of one class is refused
        folder = tmp_path / "labeled" / label
        folder.mkdir(parents=True)
        (folder / f"{label}.png").symlink_to(sorted((shared_data / "first_radio_galaxies" / label).glob("*.png"))[0])
    fits_in = sorted((shared_data / "frdeep_fits" / "FIRST").glob("*.fits"))[:1]
    inputs = [tmp_path / "labeled", *fits_in]
    whole = CutoutStore(run_ingest(inputs, tmp_path / "whole", IngestConfig(tile=512), progress=False)["store"])
    store = CutoutStore(run_ingest(inputs, tmp_path / "crop", IngestConfig(tile=512, center_crop=128),
                                   progress=False)["store"])
    evaluated = center_cropped(load_labeled(tmp_path / "labeled"), 128)
    pngs = store.manifest["format"] == "pil"
    assert pngs.sum() == 2 and (store.manifest["h"] == 128).all() and (store.manifest["w"] == 128).all()
    assert (store.manifest.loc[pngs, "y"] == 86).all() and (store.manifest.loc[pngs, "x"] == 86).all()
    for i in np.flatnonzero(pngs.to_numpy()):
        arr, row = store[int(i)]
        j = [Path(p).name for p in evaluated.sources].index(Path(row["path"]).parent.name + ".png")  # link name
        np.testing.assert_allclose(arr, evaluated.images[j], atol=2e-3)  # float16 storage
    fits_row = store.manifest[store.manifest["format"] == "fits"].iloc[0]
    whole_row = whole.manifest[whole.manifest["format"] == "fits"].iloc[0]
    assert (fits_row["y"], fits_row["x"]) == (11, 11)  # 150 px FR-DEEP cutout
    assert fits_row["ra"] == pytest.approx(whole_row["ra"], abs=2e-4)  # same centre, half a pixel at most


def test_center_crop_is_a_content_setting_of_the_store(tmp_path, rng):
    path = write_fits(tmp_path / "m.fits", sky(rng, 100, 100), celestial_header(100, 100))
    run_ingest([path], tmp_path / "store", IngestConfig(tile=512, center_crop=64), progress=False)
    with pytest.raises(TesseraError, match="center_crop"):
        run_ingest([path], tmp_path / "store", IngestConfig(tile=512), progress=False)
    with pytest.raises(ConfigError, match="'center_crop'"):
        IngestConfig(center_crop=4).validate()
