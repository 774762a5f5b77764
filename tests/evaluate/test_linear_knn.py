import hashlib

import numpy as np
import torch

from tessera.evaluate.config import LinearConfig
from tessera.evaluate.features import D4_SIZE, d4_transform, extract_features
from tessera.evaluate.folds import stratified_folds
from tessera.evaluate.knn import knn_predict
from tessera.evaluate.linear import predict, train_probe_cached, train_probe_naive
from tessera.evaluate.metrics import fold_metrics

from tests.evaluate.doubles import TinyEncoder, synthetic_set

CFG = LinearConfig(batch_size=16)


def _probe_f1(ls, enc, tmp_path):
    feats = extract_features(enc, ls, cache_root=tmp_path / "cache")
    scores = []
    for k, (tr, te) in enumerate(stratified_folds(ls.labels, 3, 0)):
        head = train_probe_cached(feats, ls.labels, tr, 3, CFG, seed=k)
        scores.append(fold_metrics(ls.labels[te], predict(head, feats[0, te])[0], 3)["macro_f1"])
    return float(np.mean(scores))


def test_d4_is_the_dihedral_group():
    x = torch.arange(16.0).reshape(1, 4, 4)
    outs = {tuple(d4_transform(x, e).flatten().tolist()) for e in range(D4_SIZE)}
    assert len(outs) == 8  # eight distinct exact pixel permutations
    assert torch.equal(d4_transform(x, 0), x)
    assert torch.equal(d4_transform(x, 4), torch.flip(x, dims=(-1,)))


def test_probe_separable_high_and_shuffled_at_chance(tmp_path):
    enc = TinyEncoder()
    ls = synthetic_set(40, seed=0)
    assert _probe_f1(ls, enc, tmp_path) >= 0.95
    ls.labels = np.random.default_rng(3).permutation(ls.labels)
    ls.data_key = "shuffled"
    assert 0.1 <= _probe_f1(ls, enc, tmp_path) <= 0.55  # chance for 3 classes is ~1/3


def test_cached_probe_equals_naive_probe():
    enc = TinyEncoder()
    ls = synthetic_set(12, seed=1)
    tr, te = stratified_folds(ls.labels, 3, 0)[0]
    cfg = LinearConfig(epochs=4, batch_size=8)
    feats = extract_features(enc, ls, chunk_size=7)
    cached = train_probe_cached(feats, ls.labels, tr, 3, cfg, seed=5)
    naive = train_probe_naive(enc, ls, tr, 3, cfg, seed=5)
    p1, l1 = predict(cached, feats[0, te])
    p2, l2 = predict(naive, feats[0, te])
    assert np.array_equal(p1, p2)
    assert np.allclose(l1, l2, atol=1e-4)
    assert torch.allclose(cached.weight, naive.weight, atol=1e-4)
    other = train_probe_cached(feats, ls.labels, tr, 3, cfg, seed=6)
    assert not torch.allclose(cached.weight, other.weight)


def _weights_hash(module):
    return hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in module.state_dict().values())).hexdigest()


def test_probe_leaves_encoder_untouched():
    enc = TinyEncoder()
    ls = synthetic_set(6)
    before = _weights_hash(enc.module)
    enc.module.train()
    feats = extract_features(enc, ls)
    train_probe_naive(enc, ls, np.arange(len(ls)), 3, LinearConfig(epochs=1, batch_size=8))
    train_probe_cached(feats, ls.labels, np.arange(len(ls)), 3, LinearConfig(epochs=1))
    assert _weights_hash(enc.module) == before
    assert all(p.grad is None for p in enc.module.parameters())


def test_feature_cache_reused_and_invalidated_by_fingerprint(tmp_path):
    enc = TinyEncoder()
    ls = synthetic_set(5)
    a = extract_features(enc, ls, cache_root=tmp_path, chunk_size=4)
    chunks = sorted(p.name for p in tmp_path.rglob("chunk_*.npy"))
    assert len(chunks) == 4  # 15 images in chunks of 4, written one by one
    calls = enc.embed_calls
    b = extract_features(enc, ls, cache_root=tmp_path, chunk_size=4)
    assert enc.embed_calls == calls and np.array_equal(a, b)  # nothing recomputed
    # an interrupted run: a lost chunk is recomputed, the others reused
    next(iter(tmp_path.rglob("chunk_0000004_*.npy"))).unlink()
    extract_features(enc, ls, cache_root=tmp_path, chunk_size=4)
    assert enc.embed_calls == calls + D4_SIZE
    with torch.no_grad():
        enc.module.embed.weight.add_(0.5)  # a changed checkpoint
    c = extract_features(enc, ls, cache_root=tmp_path, chunk_size=4)
    assert not np.allclose(a, c)
    assert len(list(tmp_path.glob("*/key.json"))) == 2
    d = extract_features(enc, ls, cache_root=tmp_path, chunk_size=4, layer=0)
    assert not np.allclose(c, d)  # the layer is part of the key


def test_knn_weighted_vote():
    train = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    labels = np.array([0, 0, 1])
    test = np.array([[1.0, 0.05], [0.05, 1.0], [0.6, 0.5]])
    assert knn_predict(train, labels, test, 2, k=1).tolist() == [0, 1, 0]
    # k=3: the single class-1 neighbour wins when it is much closer (exp(sim / T) weights)
    assert knn_predict(train, labels, np.array([[0.1, 1.0]]), 2, k=3, temperature=0.07).tolist() == [1]
    # with a huge temperature, votes are near-uniform and the majority class wins
    assert knn_predict(train, labels, np.array([[0.1, 1.0]]), 2, k=3, temperature=1e6).tolist() == [0]


def test_extract_features_of_the_last_block_with_a_layered_encoder():
    """A tessera Encoder embeds several blocks in one pass and keys them 0-based; extract_features' default
    layer=-1 must still find the last block (it raised KeyError: -1)."""
    from tessera.models.load import load_random

    torch.manual_seed(0)
    enc = load_random("vit_micro_patch8_32")
    ls = synthetic_set(n_per_class=4)
    feats = extract_features(enc, ls, d4=False)[0]
    direct = enc.embed(torch.from_numpy(np.stack(ls.images).astype(np.float32)), layer=enc.num_layers - 1)
    np.testing.assert_allclose(feats, direct.numpy(), atol=1e-5)
    np.testing.assert_allclose(extract_features(enc, ls, layer=-2, d4=False)[0],
                               enc.embed(torch.from_numpy(np.stack(ls.images).astype(np.float32)),
                                         layer=enc.num_layers - 2).numpy(), atol=1e-5)
