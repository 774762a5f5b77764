"""Real FR-DEEP FITS (FIRST and NVSS, with their WCS): ingest a few, embed, search by sky position."""

from __future__ import annotations

import pandas as pd
import pytest

from tessera.cli import main
from tessera.search.query import Index
from tests.search.conftest import MODEL

N = 5


@pytest.fixture(scope="module")
def frdeep(shared_data):
    labels = pd.read_csv(shared_data / "frdeep_fits" / "labels.csv")
    per_label = labels.drop_duplicates("object").groupby("label")["object"]
    objects = list(per_label.nth([0, 1, 2]).iloc[:N])  # both classes: a data spec needs two
    return shared_data / "frdeep_fits", labels[labels["object"].isin(objects)].reset_index(drop=True)


def test_ingested_frdeep_store_searched_by_position(tmp_path, frdeep, capsys):
    root, labels = frdeep
    first = labels[labels["survey"] == "FIRST"]
    files = [str(root / p) for p in first["path"]]
    assert main(["ingest", *files, "--out", str(tmp_path / "store"), "--quiet"]) == 0
    assert main(["embed", "--model", MODEL, "--corpus", str(tmp_path / "store"), "--out", str(tmp_path / "emb"),
                 "--quiet"]) == 0
    index = Index.open(tmp_path / "emb")
    assert len(index) == N  # 150x150 images, smaller than a tile: each kept whole
    target = first.iloc[2]
    res, cone = index.query_position(float(target["ra_deg"]), float(target["dec_deg"]), k=3)
    seed_path = index.table.set_index("cutout_id").loc[cone["cutout_id"].iat[0], "path"]
    assert seed_path == str((root / target["path"]).resolve())
    assert bool(cone["contains"].iat[0]) and cone["separation_arcsec"].iat[0] < 5  # SkyView centres on the source
    assert len(res) == 3 and seed_path not in set(res["path"])


def test_data_spec_of_two_surveys_with_a_where_filter(tmp_path, frdeep):
    root, labels = frdeep
    csv = tmp_path / "pairs.csv"
    labels.assign(path=[str(root / p) for p in labels["path"]]).to_csv(csv, index=False)
    assert main(["embed", "--model", MODEL, "--data", str(csv), "--out", str(tmp_path / "emb"), "--quiet"]) == 0
    index = Index.open(tmp_path / "emb")
    assert len(index) == 2 * N and set(index.table["survey"]) == {"FIRST", "NVSS"}
    first_id = index.table.loc[index.table["survey"] == "FIRST", "cutout_id"].iat[0]
    res = index.query(first_id, k=N, where={"survey": "NVSS"})
    assert len(res) == N and set(res["survey"]) == {"NVSS"}
    # both surveys' images of an object contain its position: the cone finds the two
    target = labels.iloc[0]
    _, cone = index.query_position(float(target["ra_deg"]), float(target["dec_deg"]), k=2)
    found = set(index.table.set_index("cutout_id").loc[cone["cutout_id"], "object"])
    assert target["object"] in found and cone["contains"].sum() >= 2
