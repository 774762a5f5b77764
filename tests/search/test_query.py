"""Searching: by cutout id, image file and sky position (cone through the WCS), filters, refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from astropy.io import fits
from astropy.wcs import WCS

from tessera.errors import TesseraError
from tessera.search.index import brute_force
from tessera.search.query import Index, angular_separation_deg, parse_where
from tests.corpus._synth import write_fits
from tests.search.conftest import TILE


@pytest.fixture(scope="module")
def index(emb) -> Index:
    return Index.open(emb)


def test_query_by_id_excludes_itself_and_matches_brute_force(index):
    cid = index.table["cutout_id"].iat[7]
    res = index.query(cid, k=5)
    assert list(res["rank"]) == [1, 2, 3, 4, 5] and set(res["query"]) == {cid}
    assert cid not in set(res["cutout_id"])
    x = index.emb.vectors()
    _, ref = brute_force(x, x[7:8], 6)
    assert list(res["row"]) == [r for r in ref[0] if r != 7][:5]
    assert res["similarity"].is_monotonic_decreasing
    assert {"path", "hdu", "x", "y", "ra", "dec", "source"} <= set(res.columns)


def test_query_by_image_file_finds_its_own_cutout(index, mosaics, tmp_path):
    row = index.table.iloc[31]
    data = fits.getdata(row["path"])
    tile = data[row["y"] : row["y"] + TILE, row["x"] : row["x"] + TILE]
    path = write_fits(tmp_path / "q.fits", tile.astype(np.float32))
    res = index.query_files([path], k=3)
    assert res["cutout_id"].iat[0] == row["cutout_id"]
    assert res["similarity"].iat[0] == pytest.approx(1.0, abs=1e-3)  # float16 storage only


def test_query_by_position_returns_the_cutout_that_contains_it(index):
    row = index.table.iloc[12]
    wcs = WCS(fits.getheader(row["path"])).celestial
    # a pixel near a corner of the tile: inside it, but closer to no other tile's centre than ~its own
    ra, dec = (float(v) for v in wcs.pixel_to_world_values(row["x"] + 2, row["y"] + TILE - 3))
    res, cone = index.query_position(ra, dec, k=4)
    assert cone["cutout_id"].iat[0] == row["cutout_id"] and bool(cone["contains"].iat[0])
    assert cone["contains"].sum() == 1  # non-overlapping tiles: exactly one footprint contains a position
    assert set(res["query"]) == {row["cutout_id"]} and row["cutout_id"] not in set(res["cutout_id"])
    assert len(res) == 4
    # a radius adds the neighbouring tiles' centres (32 px of 3.6" = 115"), nearest first
    _, wide = index.query_position(ra, dec, k=1, radius_arcsec=150)
    assert len(wide) > 1 and wide["separation_arcsec"].is_monotonic_increasing


def test_position_outside_the_footprint_is_refused(index):
    with pytest.raises(TesseraError, match="outside the footprint"):
        index.query_position(10.0, -40.0, k=3)
    with pytest.raises(TesseraError, match="not a sky position"):
        index.query_position(10.0, 95.0, k=3)


def test_where_keeps_only_matching_neighbours(index):
    other = index.table["path"].iat[40]
    res = index.query(index.table["cutout_id"].iat[0], k=5, where={"path": other})
    assert len(res) == 5 and set(res["path"]) == {other}
    with pytest.raises(TesseraError, match="no column 'colour'"):
        index.query(index.table["cutout_id"].iat[0], k=5, where={"colour": "red"})
    assert parse_where(["survey=FIRST"]) == {"survey": "FIRST"}
    with pytest.raises(TesseraError, match="COLUMN=VALUE"):
        parse_where(["survey"])


def test_bad_queries_get_one_line_errors(index):
    with pytest.raises(TesseraError, match="no such cutout") as exc:
        index.query("nope:0", k=3)
    assert "\n" not in str(exc.value)
    with pytest.raises(TesseraError, match="--k 0: must be a positive integer"):
        index.query(index.table["cutout_id"].iat[0], k=0)


def test_a_query_from_another_model_is_refused_with_both_fingerprints(index):
    from tessera.models.load import load

    other = load("random:vit_micro_patch8_32")
    with torch.no_grad():
        dict(other.module.named_parameters())["backbone.embeddings.patch_embeddings.projection.weight"].add_(0.05)
    images = np.random.default_rng(0).uniform(size=(2, 1, 32, 32)).astype(np.float32)
    with pytest.raises(TesseraError) as exc:
        index.query_images(images, k=3, encoder=other)
    assert other.fingerprint in str(exc.value) and index.fingerprint in str(exc.value)
    with pytest.raises(TesseraError, match="abc"):
        index.search_vectors(np.zeros((1, index.emb.dim)), 3, fingerprint="abc")
    # the set's own model (reloaded from set.json) is accepted
    assert len(index.query_images(images, k=3)) == 6


def test_angular_separation():
    assert angular_separation_deg(10, 0, 11, 0) == pytest.approx(1.0)
    assert angular_separation_deg(0, 89.999, 180, 89.999) == pytest.approx(0.002, rel=1e-3)
