"""`tessera embed --shard I/N` and `--merge`: N processes' parts merged equal one process's set, byte for byte."""

from __future__ import annotations

import json

import pytest

from tessera.cli import main
from tessera.errors import TesseraError
from tessera.search.embed import SET_JSON, SHARDS, TABLE, EmbeddingSet, embed_source, merge_embeddings
from tessera.search.sharding import PARTS, parse_shard, part_range
from tessera.search.source import from_store
from tests.search.conftest import MODEL


class Boom(RuntimeError):
    pass


def _part(encoder, store, out, index, count, **kw):
    kw = {"model_ref": MODEL, "batch": 8, "shard_size": 16, "progress": False, **kw}
    return embed_source(encoder, from_store(store), out, shard=(index, count), **kw)


def _files(emb_dir) -> dict[str, bytes]:
    """Every file of the (one) set under ``emb_dir``, by path relative to the set."""
    folder = EmbeddingSet.open(emb_dir).path
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("count", [1, 2, 3, 4])
def test_n_parts_merged_are_byte_identical_to_one_process(tmp_path, store, encoder, emb, count):
    out = tmp_path / "emb"
    for index in reversed(range(count)):  # finishing order does not matter
        _part(encoder, store, out, index, count)
    assert EmbeddingSet.open(out).shard_names() == []  # nothing is in the set before the merge
    [report] = merge_embeddings(out)
    assert report["parts"] == count and report["rows"] == 50
    assert _files(out) == _files(emb)  # set.json, every shard's .npy and .parquet, table.parquet


def test_merge_twice_is_merge_once(tmp_path, store, encoder):
    out = tmp_path / "emb"
    for index in range(2):
        _part(encoder, store, out, index, 2)
    merge_embeddings(out)
    once = _files(out)
    assert merge_embeddings(out)[0]["parts"] == 0
    assert _files(out) == once


def test_a_killed_part_is_refused_at_merge_then_rerun(tmp_path, store, encoder, emb):
    out = tmp_path / "emb"
    _part(encoder, store, out, 1, 2)

    def fail(i):
        raise Boom("killed")

    with pytest.raises(Boom):
        _part(encoder, store, out, 0, 2, after_shard=fail)  # dies after committing its first shard
    with pytest.raises(TesseraError, match=r"shard 0/2 is unfinished"):
        merge_embeddings(out)
    rerun = _part(encoder, store, out, 0, 2)
    assert rerun["embedded"] == 16 and rerun["already_done"] == 16  # the committed shard is kept
    merge_embeddings(out)
    assert _files(out) == _files(emb)


def test_a_missing_part_is_refused_with_its_index(tmp_path, store, encoder):
    out = tmp_path / "emb"
    for index in (0, 1, 3):
        _part(encoder, store, out, index, 4)
    with pytest.raises(TesseraError, match=r"shard 2/4 is missing") as info:
        merge_embeddings(out)
    assert "\n" not in str(info.value)
    assert (EmbeddingSet.open(out).path / PARTS).is_dir() and not EmbeddingSet.open(out).shard_names()


def test_parts_of_different_settings_are_refused(tmp_path, store, encoder):
    out = tmp_path / "emb"
    _part(encoder, store, out, 0, 2)
    _part(encoder, store, out, 1, 2, batch=4)
    with pytest.raises(TesseraError, match=r"shards of different runs \(batch 8 vs 4\)|\(batch 4 vs 8\)"):
        merge_embeddings(out)
    with pytest.raises(TesseraError, match="a split into 2 processes, not 3"):
        _part(encoder, store, out, 0, 3)


def test_a_grown_store_is_split_from_the_committed_rows(tmp_path, mosaics, encoder):
    from tests.search.conftest import ingest

    store = ingest(mosaics[:1], tmp_path / "store")
    single = tmp_path / "single"
    kw = {"model_ref": MODEL, "batch": 8, "shard_size": 16, "progress": False}
    embed_source(encoder, from_store(store), single, **kw)
    embed_source(encoder, from_store(store), tmp_path / "sharded", **kw)
    ingest(mosaics[1:], store)
    embed_source(encoder, from_store(store), single, **kw)
    for index in range(2):
        _part(encoder, store, tmp_path / "sharded", index, 2)
    merge_embeddings(tmp_path / "sharded")
    assert _files(tmp_path / "sharded") == _files(single)


def test_parts_cover_every_chunk_once():
    for chunks in range(0, 9):
        for count in range(1, 6):
            covered = [k for i in range(count) for k in part_range(chunks, i, count)]
            assert covered == list(range(chunks))


@pytest.mark.parametrize("text, message", [("3/2", "I must be in 0..1"), ("0/0", "N must be a positive"),
                                           ("1-4", "expected I/N"), ("2/2", "I must be in 0..1")])
def test_bad_shard_spec_is_a_one_line_error(text, message, tmp_path, store, capsys):
    with pytest.raises(TesseraError, match=message):
        parse_shard(text)
    rc = main(["embed", "--model", MODEL, "--corpus", str(store), "--out", str(tmp_path / "e"), "--shard", text,
               "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and message in err and len(err.splitlines()) == 1 and not (tmp_path / "e").exists()


def test_cli_shards_and_merge(tmp_path, store, emb, capsys):
    out = tmp_path / "emb"
    base = ["embed", "--model", MODEL, "--corpus", str(store), "--out", str(out), "--batch", "8", "--shard-size", "16",
            "--quiet"]
    assert main([*base, "--shard", "1/2"]) == 0 and main([*base, "--shard", "0/2"]) == 0
    assert main(["embed", "--merge", str(out), "--model", MODEL]) == 2  # --merge does nothing else
    assert main(["embed", "--merge", str(out), "--quiet"]) == 0
    assert "merged 2 parts (4 shards); 50 rows" in capsys.readouterr().out
    assert _files(out) == _files(emb)
    assert json.loads((EmbeddingSet.open(out).path / SET_JSON).read_text())["shard_size"] == 16
    assert (EmbeddingSet.open(out).path / TABLE).is_file() and (EmbeddingSet.open(out).path / SHARDS).is_dir()


def test_torchrun_rank_is_the_shard(tmp_path, store, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    out = tmp_path / "emb"
    assert main(["embed", "--model", MODEL, "--corpus", str(store), "--out", str(out), "--batch", "8",
                 "--shard-size", "16", "--quiet"]) == 0
    part = EmbeddingSet.open(out).path / PARTS / "part-00001-of-00002" / "part.json"
    assert json.loads(part.read_text())["shards"] == ["000002", "000003"]
