"""Joining two catalogues on sky position: planted offsets inside the radius match, the rest are reported."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tessera.align.data import match_positions
from tessera.errors import TesseraError


def test_planted_offsets_inside_the_radius_match():
    rng = np.random.default_rng(0)
    ra, dec = rng.uniform(10, 20, 30), rng.uniform(-5, 5, 30)
    offsets = np.where(np.arange(30) < 20, 2.0, 20.0)  # arcsec: 20 inside a 5" radius, 10 outside
    angle = rng.uniform(0, 2 * np.pi, 30)
    ra_b = ra + offsets * np.cos(angle) / 3600 / np.cos(np.radians(dec))
    dec_b = dec + offsets * np.sin(angle) / 3600
    perm = rng.permutation(30)  # side b in another order
    m = match_positions(ra, dec, ra_b[perm], dec_b[perm], radius_arcsec=5.0)
    assert m.a.tolist() == list(range(20))
    assert (perm[m.b] == m.a).all()  # each partner is the planted one
    assert np.allclose(m.separation_arcsec, 2.0, atol=0.01)
    assert m.unmatched_a.tolist() == list(range(20, 30))
    assert sorted(perm[m.unmatched_b].tolist()) == list(range(20, 30))
    with pytest.raises(TesseraError, match="no pair within --match-radius 1.0 arcsec"):
        match_positions(ra, dec, ra_b + 1.0, dec_b, radius_arcsec=1.0)


def test_frdeep_first_and_nvss_rows_join_on_position(shared_data):
    """FR-DEEP lists both surveys' images with RA/Dec: the position join recovers the object pairing."""
    table = pd.read_csv(shared_data / "frdeep_fits" / "labels.csv")
    first, nvss = table[table.survey == "FIRST"].reset_index(), table[table.survey == "NVSS"].reset_index()
    m = match_positions(first.ra_deg, first.dec_deg, nvss.ra_deg, nvss.dec_deg, radius_arcsec=1.0)
    assert len(m.a) > 0.9 * len(first)
    assert (first.object.to_numpy()[m.a] == nvss.object.to_numpy()[m.b]).all()


def test_match_pairs_spec_joins_two_catalogues(tmp_path):
    """--pairs match:A,B: rows within the radius become pairs (targets from A), the others are reported."""
    from tessera.align.config import AlignConfig
    from tessera.align.trainer import build_model, prepared_pairs
    from tessera.config import resolve_config

    rng = np.random.default_rng(1)
    rows_a, rows_b = [], []
    for i in range(10):
        np.save(tmp_path / f"a{i}.npy", rng.random((16, 16)).astype(np.float32))
        np.save(tmp_path / f"b{i}.npy", rng.normal(size=40).astype(np.float32))
        rows_a.append({"path": f"a{i}.npy", "ra_deg": 10.0 + i, "dec_deg": 1.0, "size": float(i)})
        shift = 1.0 if i < 8 else 60.0  # arcsec; the last two have no partner within 3"
        rows_b.append({"path": f"b{i}.npy", "ra_deg": 10.0 + i + shift / 3600, "dec_deg": 1.0})
    pd.DataFrame(rows_a).to_csv(tmp_path / "A.csv", index=False)
    pd.DataFrame(rows_b[::-1]).to_csv(tmp_path / "B.csv", index=False)
    cfg = resolve_config(AlignConfig, None, ["a=random:vit_micro_patch8_32", "b=random-spectrum:40",
                                             f"pairs=match:{tmp_path / 'A.csv'},{tmp_path / 'B.csv'}",
                                             "data.match_radius_arcsec=3", "head.dim=16", "head.hidden=16"])
    data, train, held = prepared_pairs(cfg, build_model(cfg))
    assert len(data) == 8 and data.targets["size"].tolist() == [float(i) for i in range(8)]
    assert [o.split("|")[1] for o in data.objects] == [f"b{i}.npy" for i in range(8)]
    assert sorted(e["path"] for e in data.excluded) == ["a8.npy", "a9.npy", "b8.npy", "b9.npy"]
    assert len(train) + len(held) == 8


def test_a_cutout_store_joins_a_spectrum_catalogue_on_the_manifest_positions(tmp_path):
    """match:STORE,spectra.csv: the store's manifest RA/Dec (from each image's WCS) against the catalogue's."""
    from tessera.align.config import AlignConfig
    from tessera.align.trainer import build_model, prepared_pairs
    from tessera.config import resolve_config
    from tessera.corpus.config import IngestConfig
    from tessera.corpus.ingest import run_ingest
    from tessera.simulate.pairs import SimulatePairsConfig, simulate_pairs

    sim = tmp_path / "sim"
    simulate_pairs(SimulatePairsConfig(n=10, seed=4), sim)
    run_ingest(sorted(str(p) for p in (sim / "images").glob("*.fits")), tmp_path / "store",
               IngestConfig(tile=64, min_tile=64), progress=False)
    spectra = pd.read_csv(sim / "spectra.csv")
    spectra.loc[[2, 7], "ra_deg"] += 30.0 / 3600 / np.cos(np.radians(spectra.dec_deg[[2, 7]]))  # 30" away
    spectra.to_csv(sim / "spectra.csv", index=False)
    overrides = ["a=random:vit_micro_patch8_32", "b=random-spectrum:200", "head.dim=16", "head.hidden=16",
                 f"pairs=match:{tmp_path / 'store'},{sim / 'spectra.csv'}", "data.match_radius_arcsec=3"]
    cfg = resolve_config(AlignConfig, None, overrides)
    data, _, _ = prepared_pairs(cfg, build_model(cfg))
    assert len(data) == 8 and tuple(data.xa.shape) == (8, 1, 32, 32) and tuple(data.xb.shape) == (8, 1, 200)
    kept = [int(o.split("|")[1].split("_")[1][:5]) for o in data.objects]
    assert kept == [0, 1, 3, 4, 5, 6, 8, 9]
    # each image is paired with its own spectrum: the store row names the FITS file it was cut from
    assert all(o.split("|")[0].split("/")[-1].split(".")[0] == o.split("|")[1].split("/")[-1].split(".")[0]
               for o in data.objects)
    reported = sorted(e["path"] for e in data.excluded)
    assert len(reported) == 4 and {"spectra/src_00002.npy", "spectra/src_00007.npy"} <= set(reported)
    # a store cannot feed the spectrum tower
    swapped = resolve_config(AlignConfig, None, ["a=random-spectrum:200", "b=random:vit_micro_patch8_32",
                                                 "head.dim=16", "head.hidden=16", "data.match_radius_arcsec=3",
                                                 f"pairs=match:{tmp_path / 'store'},{sim / 'images.csv'}"])
    with pytest.raises(TesseraError, match="a cutout store holds images, but it feeds a spectrum tower"):
        prepared_pairs(swapped, build_model(swapped))


def test_missing_files_on_either_side_are_reported_before_anything_is_read(tmp_path):
    from tessera.align.config import AlignConfig
    from tessera.align.trainer import build_model, prepared_pairs
    from tessera.config import resolve_config

    rows_a, rows_b = [], []
    for i in range(6):
        (tmp_path / f"a{i}.npy").write_bytes(b"not an array")  # reading side a first would fail differently
        if i != 3:
            np.save(tmp_path / f"b{i}.npy", np.zeros(40, np.float32))
        rows_a.append({"path": f"a{i}.npy", "ra_deg": 10.0 + i, "dec_deg": 1.0})
        rows_b.append({"path": f"b{i}.npy", "ra_deg": 10.0 + i, "dec_deg": 1.0})
    pd.DataFrame(rows_a).to_csv(tmp_path / "A.csv", index=False)
    pd.DataFrame(rows_b).to_csv(tmp_path / "B.csv", index=False)
    cfg = resolve_config(AlignConfig, None, ["a=random:vit_micro_patch8_32", "b=random-spectrum:40",
                                             f"pairs=match:{tmp_path / 'A.csv'},{tmp_path / 'B.csv'}",
                                             "data.match_radius_arcsec=3", "head.dim=16", "head.hidden=16"])
    with pytest.raises(TesseraError, match=r"B.csv: 1 listed file\(s\) do not exist: .*b3.npy"):
        prepared_pairs(cfg, build_model(cfg))
