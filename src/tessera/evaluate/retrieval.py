"""Retrieval on frozen features (issue 11): cross-survey match retrieval and label retrieval.

Match retrieval needs a paired set (``EvalData.test`` holds the same objects, in the same order, seen by another
instrument: ``frdeep-pairs:``, ``frdeep-cross:``). Each object's image in one survey queries the other survey's
images of all objects, and the reverse; the rank of the true partner (1 = best) gives recall@k and the median
rank, with a bootstrap std over queries. Label retrieval (any labeled set): for each image, the fraction of its
k nearest other images (leave-one-out) that share its class, precision@k.
Similarity: cosine of the features, after subtracting each image set's own feature mean (``retrieval.center``;
it uses no labels and no matches, and removes the common offset that dominates mean-pooled features of sparse
images).
"""

from __future__ import annotations

import numpy as np


def _unit(x: np.ndarray, center: bool) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if center:
        x = x - x.mean(axis=0, keepdims=True)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def match_ranks(queries: np.ndarray, gallery: np.ndarray, center: bool = True) -> np.ndarray:
    """queries (M, D), gallery (M, D) with query i's true match = gallery i -> rank of the match (M,), 1 = top.

    Rank = 1 + the number of gallery items strictly more similar than the match (ties favour the match)."""
    q, g = _unit(queries, center), _unit(gallery, center)
    sim = q @ g.T  # (M, M)
    true = np.diag(sim)
    return 1 + (sim > true[:, None]).sum(axis=1)


def bootstrap_stat(values: np.ndarray, stat, n: int, seed: int) -> float:
    """Std of ``stat`` over ``n`` resamples (with replacement) of ``values``; 0 when n = 0."""
    if n == 0 or len(values) == 0:
        return 0.0
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(n, len(values)))
    return float(np.std([stat(values[i]) for i in idx]))


def rank_metrics(ranks: np.ndarray, ks, n_boot: int = 1000, seed: int = 0) -> dict:
    """recall@k (fraction of queries whose match ranks <= k) and median rank, each as {"mean", "std"} with the
    bootstrap std over queries."""
    ranks = np.asarray(ranks)
    out = {}
    for k in ks:
        def fn(r, k=k):
            return float(np.mean(r <= k))

        out[f"recall@{k}"] = {"mean": fn(ranks), "std": bootstrap_stat(ranks, fn, n_boot, seed)}
    out["median_rank"] = {"mean": float(np.median(ranks)), "std": bootstrap_stat(ranks, np.median, n_boot, seed)}
    out["n_queries"] = int(len(ranks))
    return out


def label_precision(features: np.ndarray, labels: np.ndarray, ks, center: bool = True, n_boot: int = 1000,
                    seed: int = 0) -> dict:
    """precision@k of same-class neighbours, leave-one-out: features (N, D), labels (N,) -> {"precision@k": ...}."""
    f = _unit(features, center)
    sim = f @ f.T
    np.fill_diagonal(sim, -np.inf)  # a query never retrieves itself
    order = np.argsort(-sim, axis=1, kind="stable")
    labels = np.asarray(labels)
    out = {}
    for k in ks:
        k_eff = min(k, len(labels) - 1)
        hits = (labels[order[:, :k_eff]] == labels[:, None]).mean(axis=1)
        out[f"precision@{k}"] = {"mean": float(hits.mean()), "std": bootstrap_stat(hits, np.mean, n_boot, seed)}
    return out


def _summary(inp) -> dict:
    cfg = inp.cfg.retrieval
    data = inp.data
    train = inp.features.get("train", inp.layer, d4=False)[0]
    out = {"label_retrieval": label_precision(train, data.train.labels, cfg.ks, cfg.center, cfg.bootstrap,
                                              inp.cfg.seed),
           "center": cfg.center}
    if data.test is not None:
        test = inp.features.get("test", inp.layer, d4=False)[0]
        a, b = data.survey_names
        out["match_retrieval"] = {
            f"{a}->{b}": rank_metrics(match_ranks(train, test, cfg.center), cfg.ks, cfg.bootstrap, inp.cfg.seed),
            f"{b}->{a}": rank_metrics(match_ranks(test, train, cfg.center), cfg.ks, cfg.bootstrap, inp.cfg.seed),
        }
    return out


def _protocol():
    from tessera.evaluate.registry import Protocol

    return Protocol("retrieval", frozenset({"features", "labels", "pairs"}), frozenset({"retrieval"}), summary=_summary)


PROTOCOL = _protocol()
