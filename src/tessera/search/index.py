"""FAISS indexes over an embedding set (issue 13): exact below about a million vectors, IVF-PQ above, or HNSW.

Cosine similarity is inner product on L2-normalized vectors; ``l2`` is Euclidean distance. IVF-PQ returns
``rerank`` x k candidates from its compressed codes, re-scored exactly from the memory-mapped shards, so its
recall@k is the codes' recall at ``rerank * k`` while memory stays at ``code_size`` bytes a vector (the
shards stay on disk). Every parameter chosen from the size is written into ``index.json`` next to the index.
GPU FAISS is used for searching when ``faiss.get_num_gpus() > 0`` (the index on disk is always a CPU one).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass

import numpy as np

from tessera.errors import TesseraError
from tessera.io import atomic_open, atomic_write_bytes, atomic_write_text
from tessera.search.embed import EmbeddingSet

KINDS = ("auto", "flat", "ivf-pq", "hnsw")
METRICS = ("cosine", "l2")
EXACT_LIMIT = 1_000_000  # "exact below about a million vectors" (issue 13)
INDEX_FILE = "index.faiss"
INDEX_JSON = "index.json"
MEAN_FILE = "index_mean.npy"
MIN_POINTS_PER_LIST = 39  # FAISS warns below 39 training points per centroid
PQ_BITS = 8


def _largest_divisor_at_most(d: int, limit: int) -> int:
    return max(m for m in range(1, max(1, limit) + 1) if d % m == 0)


def choose_params(n: int, d: int, kind: str = "auto", metric: str = "cosine") -> dict:
    """Index parameters for ``n`` vectors of dimension ``d``.

    IVF-PQ: nlist = the power of two nearest 4 sqrt(n) (the FAISS wiki's 4-16 sqrt(n) rule), at most n / 39;
    m = the largest divisor of d up to d / 4 (4 dimensions per 8-bit sub-quantizer: code size m bytes);
    nprobe = nlist / 16 (at least 8); rerank 30 (PQ codes, not nprobe, limit recall: at 1e5 x 192 clustered,
    recall@10 is 0.34 / 0.82 / 0.98 for rerank 1 / 10 / 30, the same for nprobe 64, 128 or 256). HNSW: M 32,
    efConstruction 80, efSearch 128.
    """
    if kind not in KINDS:
        raise TesseraError(f"--kind {kind!r}: unknown (choose from {', '.join(KINDS)})")
    if metric not in METRICS:
        raise TesseraError(f"--metric {metric!r}: unknown (choose from {', '.join(METRICS)})")
    if n <= 0:
        raise TesseraError("the embedding set is empty: nothing to index")
    if kind == "auto":
        kind = "flat" if n < EXACT_LIMIT else "ivf-pq"
    params: dict = {"kind": kind, "metric": metric, "n": int(n), "d": int(d)}
    if kind == "ivf-pq":
        if n < MIN_POINTS_PER_LIST * 2 ** PQ_BITS:
            raise TesseraError(f"--kind ivf-pq: {n} vectors are too few to train product quantizers; use flat")
        nlist = 2 ** round(math.log2(4 * math.sqrt(n)))
        nlist = int(max(1, min(nlist, n // MIN_POINTS_PER_LIST)))
        m = _largest_divisor_at_most(d, d // 4)
        params.update(nlist=nlist, m=m, nbits=PQ_BITS, code_size=m * PQ_BITS // 8,
                      nprobe=int(min(nlist, max(8, nlist // 16))), rerank=30)
    elif kind == "hnsw":
        params.update(M=32, ef_construction=80, ef_search=128)
    return params


def _faiss_metric(metric: str) -> int:
    import faiss

    return faiss.METRIC_INNER_PRODUCT if metric == "cosine" else faiss.METRIC_L2


def prepare_vectors(x: np.ndarray, metric: str) -> np.ndarray:
    """(N, D) -> float32 contiguous, L2-normalized for cosine (zero vectors stay zero)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if metric == "cosine":
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        x = x / np.maximum(norms, 1e-12)
    return np.ascontiguousarray(x, dtype=np.float32)


def build_faiss(vectors: np.ndarray, params: dict, seed: int = 0):
    """A trained, filled FAISS index for prepared ``vectors`` (N, D) with ``params`` of :func:`choose_params`."""
    import faiss

    n, d = vectors.shape
    metric = _faiss_metric(params["metric"])
    kind = params["kind"]
    if kind == "flat":
        index = faiss.IndexFlatIP(d) if metric == faiss.METRIC_INNER_PRODUCT else faiss.IndexFlatL2(d)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, params["M"], metric)
        index.hnsw.efConstruction = params["ef_construction"]
    elif kind == "ivf-pq":
        quantizer = faiss.IndexFlatIP(d) if metric == faiss.METRIC_INNER_PRODUCT else faiss.IndexFlatL2(d)
        index = faiss.IndexIVFPQ(quantizer, d, params["nlist"], params["m"], params["nbits"], metric)
        index.cp.seed = seed
        index.pq.cp.seed = seed
        train_n = min(n, max(64 * params["nlist"], 2 ** 16))
        sample = np.random.default_rng(seed).choice(n, size=train_n, replace=False) if train_n < n else slice(None)
        index.train(vectors[sample])
        index.nprobe = params["nprobe"]
    else:  # pragma: no cover - choose_params resolved every kind
        raise TesseraError(f"unknown index kind {kind!r}")
    index.add(vectors)
    return index


def _apply_search_params(index, params: dict) -> None:
    if params["kind"] == "ivf-pq":
        index.nprobe = params["nprobe"]
    elif params["kind"] == "hnsw":
        index.hnsw.efSearch = params["ef_search"]


def _to_gpu(index):
    """The index on every GPU where FAISS has some (HNSW stays on the CPU: FAISS has no GPU HNSW)."""
    import faiss

    if faiss.get_num_gpus() <= 0 or not hasattr(faiss, "index_cpu_to_all_gpus"):
        return index
    if isinstance(index, faiss.IndexHNSW):
        return index
    try:
        return faiss.index_cpu_to_all_gpus(index)
    except RuntimeError as exc:  # e.g. a PQ code size GPU FAISS does not support: search on the CPU instead
        import warnings

        warnings.warn(f"GPU FAISS refused this index ({str(exc).splitlines()[0]}); searching on the CPU", stacklevel=2)
        return index


def build_index(emb: EmbeddingSet, kind: str = "auto", metric: str = "cosine", seed: int = 0,
                center: bool = False) -> dict:
    """Build and save ``index.faiss`` + ``index.json`` in the set's folder; returns the metadata.

    ``center``: subtract the set's mean vector (saved as ``index_mean.npy``) from every vector and query before
    the metric. Mean-pooled ViT features share a large common component, so uncentred cosine similarities all
    sit near 1 and rank poorly (evaluate/retrieval.py centres for the same reason)."""
    import faiss

    n, d = len(emb), emb.dim
    params = choose_params(n, d, kind, metric)
    params["center"] = bool(center)
    start = time.perf_counter()
    raw = emb.vectors()
    mean = raw.mean(axis=0, dtype=np.float64).astype(np.float32) if center else None
    vectors = prepare_vectors(raw - mean if center else raw, metric)
    del raw
    index = build_faiss(vectors, params, seed)
    params["build_seconds"] = round(time.perf_counter() - start, 3)
    params["fingerprint"] = emb.fingerprint
    params["faiss"] = faiss.__version__
    atomic_write_bytes(emb.path / INDEX_FILE, faiss.serialize_index(index).tobytes())
    if center:
        with atomic_open(emb.path / MEAN_FILE) as fh:
            np.save(fh, mean, allow_pickle=False)
    atomic_write_text(emb.path / INDEX_JSON, json.dumps(params, indent=2))
    return params


@dataclass
class SearchIndex:
    """A FAISS index over ``emb``'s rows with its ``params``; :meth:`search` returns scores and global rows."""

    emb: EmbeddingSet
    index: object
    params: dict
    mean: np.ndarray | None = None  # (D,) subtracted before the metric when the index was built with center

    @classmethod
    def load(cls, emb: EmbeddingSet, metric: str = "cosine") -> "SearchIndex":
        """The saved index of ``emb``; without one, an exact in-memory index (``metric``) is built."""
        import faiss

        json_path = emb.path / INDEX_JSON
        if not json_path.is_file():
            params = choose_params(len(emb), emb.dim, "flat", metric)
            index = build_faiss(prepare_vectors(emb.vectors(), metric), params)
            return cls(emb, _to_gpu(index), params)
        params = json.loads(json_path.read_text())
        n = len(emb)
        if int(params["n"]) != n:
            raise TesseraError(f"{json_path}: index of {params['n']} vectors, the set now has {n}; "
                               "rerun `tessera index`")
        data = np.fromfile(emb.path / INDEX_FILE, dtype=np.uint8)
        index = faiss.deserialize_index(data)
        _apply_search_params(index, params)
        mean = np.load(emb.path / MEAN_FILE) if params.get("center") else None
        return cls(emb, _to_gpu(index), params, mean)

    @property
    def metric(self) -> str:
        return str(self.params["metric"])

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """queries (Q, D) raw embeddings -> (scores (Q, k'), rows (Q, k')), k' = min(k, N), best first.

        Scores: cosine similarity (higher is closer) or Euclidean distance (lower is closer)."""
        if k <= 0:
            raise TesseraError(f"--k {k}: must be a positive integer")
        q = self._prepare(np.atleast_2d(queries))
        k = min(int(k), int(self.params["n"]))
        rerank = int(self.params.get("rerank", 1))
        fetch = min(k * rerank, int(self.params["n"]))
        scores, rows = self.index.search(q, fetch)
        if rerank > 1:
            scores, rows = self._rerank(q, rows, k)
        elif self.metric == "l2":
            scores = np.sqrt(np.maximum(scores, 0))
        return scores[:, :k], rows[:, :k]

    def _prepare(self, x: np.ndarray) -> np.ndarray:
        """(M, D) raw embeddings -> what the index holds: centred when built so, normalized for cosine."""
        x = np.asarray(x, dtype=np.float32)
        if x.shape[-1] != self.emb.dim:
            raise TesseraError(f"query vectors have dimension {x.shape[-1]}, the set {self.emb.dim}")
        return prepare_vectors(x - self.mean if self.mean is not None else x, self.metric)

    def _rerank(self, q: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact scores of the candidate ``rows`` (Q, k*rerank) from the shards; best k of each."""
        valid = rows >= 0
        safe = np.where(valid, rows, 0)
        cand = self._prepare(self.emb.rows(safe).reshape(-1, q.shape[1])).reshape(*safe.shape, -1)
        if self.metric == "cosine":
            exact = np.einsum("qd,qkd->qk", q, cand)
            exact[~valid] = -np.inf
            order = np.argsort(-exact, axis=1, kind="stable")[:, :k]
        else:
            exact = np.sqrt(np.maximum(((cand - q[:, None, :]) ** 2).sum(-1), 0))
            exact[~valid] = np.inf
            order = np.argsort(exact, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(exact, order, 1), np.take_along_axis(rows, order, 1)


def brute_force(vectors: np.ndarray, queries: np.ndarray, k: int,
                metric: str = "cosine") -> tuple[np.ndarray, np.ndarray]:
    """NumPy reference search: (scores (Q, k), rows (Q, k)), same conventions as :meth:`SearchIndex.search`."""
    x, q = prepare_vectors(vectors, metric), prepare_vectors(queries, metric)
    if metric == "cosine":
        s = q @ x.T
        rows = np.argsort(-s, axis=1, kind="stable")[:, :k]
    else:
        s = np.sqrt(np.maximum((q * q).sum(1)[:, None] - 2 * q @ x.T + (x * x).sum(1)[None], 0))
        rows = np.argsort(s, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(s, rows, 1), rows


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean over queries of |found ∩ truth| / k, for (Q, k) row arrays."""
    hits = [len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth)]
    return float(np.mean(hits) / truth.shape[1])
