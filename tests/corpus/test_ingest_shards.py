"""`tessera ingest --shard I/N` and `--merge STORE`: N parts merged equal one process's store, byte for byte."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tessera.cli import main
from tessera.corpus.config import IngestConfig
from tessera.corpus.ingest import run_ingest
from tessera.corpus.layout import CONFIG, MANIFEST, SHARDS, SKIPPED
from tessera.corpus.shards import PARTS, merge_store, part_dir, part_json
from tessera.errors import TesseraError
from tests.corpus._synth import celestial_header, sky, write_fits

CFG = IngestConfig(tile=32, min_tile=32)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Five small FITS mosaics (one all-NaN: no cutouts), one RGB PNG (another channel count), a missing path."""
    from PIL import Image

    d = tmp_path_factory.mktemp("inputs") / "sim"
    d.mkdir()
    rng = np.random.default_rng(0)
    for k in range(4):
        write_fits(d / f"m{k}.fits", sky(rng, 64 + 32 * (k % 2), 64), celestial_header(64 + 32 * (k % 2), 64))
    write_fits(d / "blank.fits", np.full((64, 64), np.nan, np.float32))
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(d / "rgb.png")
    return [str(d), str(d.parent / "missing.fits")]


@pytest.fixture(scope="module")
def single(inputs, tmp_path_factory):
    return _single(inputs, tmp_path_factory.mktemp("single") / "store")


def _single(inputs, store):
    run_ingest(inputs, store, CFG, progress=False)
    return store


def _content(store) -> dict[str, bytes]:
    """What must be identical: manifest, skipped list, config and every shard file."""
    files = {name: (store / name).read_bytes() for name in (MANIFEST, SKIPPED, CONFIG)}
    files.update({f"shards/{p.name}": p.read_bytes() for p in sorted((store / SHARDS).iterdir())})
    return files


@pytest.mark.parametrize("count", [1, 2, 4])
def test_n_parts_merged_are_byte_identical_to_one_process(inputs, single, tmp_path, count):
    store = tmp_path / "store"
    for index in reversed(range(count)):
        run_ingest(inputs, store, CFG, progress=False, shard=(index, count))
    report = merge_store(store)
    assert report["merged_parts"] == count and not (store / PARTS).exists()
    assert _content(store) == _content(single)
    single_report = json.loads((single / "report.json").read_text())
    assert report["tiles_written"] == single_report["tiles_written"]
    assert report["skipped_inputs"] == single_report["skipped_inputs"]  # the PNG (channels) and the missing path


def test_merge_twice_is_merge_once(inputs, tmp_path):
    store = tmp_path / "store"
    for index in range(2):
        run_ingest(inputs, store, CFG, progress=False, shard=(index, 2))
    merge_store(store)
    once = _content(store)
    assert merge_store(store)["merged_parts"] == 0
    assert main(["ingest", "--merge", str(store), "--quiet"]) == 0
    assert _content(store) == once


def test_a_killed_part_is_refused_then_rerun(inputs, single, tmp_path):
    store = tmp_path / "store"
    run_ingest(inputs, store, CFG, progress=False, shard=(1, 2))
    run_ingest(inputs, store, CFG, progress=False, shard=(0, 2))
    # What a kill -9 of part 0 leaves: not marked done, and its journal's last record cut in the middle.
    part = part_dir(store, 0, 2)
    info = json.loads(part_json(store, 0, 2).read_text())
    part_json(store, 0, 2).write_text(json.dumps({**info, "done": False}))
    journal = (part / "journal.jsonl").read_bytes()
    (part / "journal.jsonl").write_bytes(journal[: journal.rindex(b"\n", 0, len(journal) - 1) + 20])
    with pytest.raises(TesseraError, match=r"shard 0/2 is unfinished"):
        merge_store(store)
    again = run_ingest(inputs, store, CFG, progress=False, shard=(0, 2))
    assert again["run"]["inputs_processed"] == 1  # only the input whose record was torn
    merge_store(store)
    assert _content(store) == _content(single)


def test_a_missing_part_is_refused_with_its_index(inputs, tmp_path, capsys):
    store = tmp_path / "store"
    for index in (0, 2, 3):
        run_ingest(inputs, store, CFG, progress=False, shard=(index, 4))
    assert main(["ingest", "--merge", str(store), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "shard 1/4 is missing" in err and len(err.splitlines()) == 1
    assert not (store / MANIFEST).exists()


def test_parts_of_different_settings_or_splits_are_refused(inputs, tmp_path):
    store = tmp_path / "store"
    run_ingest(inputs, store, CFG, progress=False, shard=(0, 2))
    run_ingest(inputs, store, IngestConfig(tile=16, min_tile=16), progress=False, shard=(1, 2))
    with pytest.raises(TesseraError, match=r"shard 1/2 was ingested with .*'tile': 16"):
        merge_store(store)
    with pytest.raises(TesseraError, match="a split into 2 processes, not 3"):
        run_ingest(inputs, store, CFG, progress=False, shard=(0, 3))


def test_parts_append_to_an_existing_store_like_one_process(inputs, tmp_path):
    first = [inputs[0] + "/m0.fits", inputs[0] + "/m1.fits"]
    a, b = _single(first, tmp_path / "a"), _single(first, tmp_path / "b")
    run_ingest(inputs, a, CFG, progress=False)
    for index in range(3):
        run_ingest(inputs, b, CFG, progress=False, shard=(index, 3))
    merge_store(b)
    assert _content(a) == _content(b)


@pytest.mark.parametrize("shard, message", [("3/2", "I must be in 0..1"), ("0/0", "N must be a positive")])
def test_bad_shard_is_a_one_line_error(inputs, tmp_path, capsys, shard, message):
    assert main(["ingest", *inputs, "--out", str(tmp_path / "s"), "--shard", shard, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and not (tmp_path / "s").exists()


def test_cli_shards_then_merge(inputs, single, tmp_path):
    store = tmp_path / "store"
    for index in range(2):
        assert main(["ingest", *inputs, "--out", str(store), "--tile", "32", "--min-tile", "32", "--shard",
                     f"{index}/2", "--quiet"]) == 0
    assert main(["ingest", "--merge", str(store), "--quiet"]) == 0
    assert _content(store) == _content(single)
