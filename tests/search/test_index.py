"""FAISS indexes: exact = brute force, IVF-PQ and HNSW recall@10 on clustered data, parameters from the size."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tessera.errors import TesseraError
from tessera.search.embed import EmbeddingSet
from tessera.search.index import (
    INDEX_JSON,
    SearchIndex,
    brute_force,
    build_index,
    choose_params,
    recall_at_k,
)
from tests.search.conftest import clustered, write_set


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_exact_index_returns_the_brute_force_neighbours(tmp_path, metric):
    x = np.random.default_rng(0).normal(size=(3000, 24)).astype(np.float32)
    emb = EmbeddingSet.open(write_set(tmp_path / "s", x, shard_size=700))  # several shards
    params = build_index(emb, kind="auto", metric=metric)
    assert params["kind"] == "flat"
    index = SearchIndex.load(emb)
    q = np.random.default_rng(1).normal(size=(50, 24)).astype(np.float32)
    scores, rows = index.search(q, 10)
    ref_scores, ref_rows = brute_force(x, q, 10, metric)
    np.testing.assert_array_equal(rows, ref_rows)
    assert recall_at_k(rows, ref_rows) == 1.0
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_ivf_pq_recall_at_10_on_a_clustered_set(tmp_path):
    x = clustered(20_000, 32, clusters=100, seed=0)
    emb = EmbeddingSet.open(write_set(tmp_path / "s", x, shard_size=6000))
    params = build_index(emb, kind="ivf-pq")
    saved = json.loads((emb.path / INDEX_JSON).read_text())
    assert saved == params and saved["kind"] == "ivf-pq"
    assert saved["nlist"] == 512 and saved["m"] == 8 and saved["code_size"] == 8 and saved["nprobe"] == 32
    q = clustered(200, 32, clusters=100, seed=0)[:200] + 0.05
    _, rows = SearchIndex.load(emb).search(q, 10)
    recall = recall_at_k(rows, brute_force(x, q, 10)[1])
    print(f"IVF-PQ recall@10 on 20000 x 32 clustered vectors: {recall:.3f}")
    assert recall >= 0.9


def test_hnsw_recall_at_10(tmp_path):
    x = clustered(5000, 16, clusters=50, seed=2)
    emb = EmbeddingSet.open(write_set(tmp_path / "s", x))
    build_index(emb, kind="hnsw", metric="l2")
    q = x[:100] + 0.01
    _, rows = SearchIndex.load(emb).search(q, 10)
    assert recall_at_k(rows, brute_force(x, q, 10, "l2")[1]) >= 0.9


def test_parameters_are_chosen_from_the_size():
    assert choose_params(999_999, 192)["kind"] == "flat"
    big = choose_params(1_000_000, 192)
    assert big["kind"] == "ivf-pq" and big["nlist"] == 4096 and big["m"] == 48 and big["nprobe"] == 256
    assert choose_params(100_000, 768, "ivf-pq")["m"] == 192
    assert choose_params(100_000, 768, "ivf-pq")["nlist"] == 1024
    with pytest.raises(TesseraError, match="too few"):
        choose_params(5000, 32, "ivf-pq")
    with pytest.raises(TesseraError, match="--kind 'ivfpq': unknown"):
        choose_params(10, 4, "ivfpq")
    with pytest.raises(TesseraError, match="--metric 'dot': unknown"):
        choose_params(10, 4, "flat", "dot")


def test_an_index_older_than_its_set_is_refused(tmp_path):
    x = np.random.default_rng(0).normal(size=(100, 8)).astype(np.float32)
    folder = write_set(tmp_path / "s", x, shard_size=60)
    build_index(EmbeddingSet.open(folder))
    write_set(tmp_path / "s", np.concatenate([x, x[:10]]), shard_size=60)  # the set grew by 10 rows
    with pytest.raises(TesseraError, match="index of 100 vectors, the set now has 110"):
        SearchIndex.load(EmbeddingSet.open(folder))


def test_centred_index_ranks_like_brute_force_on_centred_vectors(tmp_path):
    rng = np.random.default_rng(3)
    x = (rng.normal(size=(2000, 16)) + 5.0).astype(np.float32)  # a large common component, like ViT features
    emb = EmbeddingSet.open(write_set(tmp_path / "s", x, shard_size=900))
    params = build_index(emb, kind="flat", center=True)
    assert params["center"] is True
    index = SearchIndex.load(emb)
    np.testing.assert_allclose(index.mean, x.mean(0), rtol=1e-5)
    q = x[:30] + 0.1 * rng.normal(size=(30, 16)).astype(np.float32)
    _, rows = index.search(q, 10)
    mean = x.mean(0)
    np.testing.assert_array_equal(rows, brute_force(x - mean, q - mean, 10)[1])
    assert recall_at_k(brute_force(x, q, 10)[1], rows) < 0.9  # centring changes the ranking here
