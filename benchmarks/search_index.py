"""Similarity search at survey scale: FAISS exact and IVF-PQ vs brute-force NumPy. One JSON object per result.

    python benchmarks/search_index.py --n 100000 --dims 192 768 --kinds flat ivf-pq [--data random clustered]

For each (data, d): N vectors are written as an embedding set, indexed through ``tessera.search.index``
(build time, index bytes), and Q queries are answered by the index and by brute-force NumPy in the same run
(per-query latency, the ratio NumPy / index, recall@10 against exact). ``random``: i.i.d. Gaussian (the hard
case for quantization: no structure to exploit); ``clustered``: Gaussian clusters, like embeddings of classes.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

PARAMS = ("nlist", "m", "code_size", "nprobe", "rerank")


def make_vectors(kind: str, n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "random":
        return rng.normal(size=(n, d)).astype(np.float32)
    centres = rng.normal(size=(max(10, n // 1000), d))
    return (centres[rng.integers(0, len(centres), n)] + 0.3 * rng.normal(size=(n, d))).astype(np.float32)


def _write(folder: Path, x: np.ndarray):
    import pandas as pd

    from tessera.search.embed import write_embedding_set

    table = pd.DataFrame({"cutout_id": [f"v{i}" for i in range(len(x))]})
    return write_embedding_set(folder, x, table, fingerprint="synthetic", shard_size=65536)


def bench_one(data: str, n: int, d: int, kinds: list[str], queries: int, k: int, tmp: Path) -> list[dict]:
    import faiss

    from tessera.search.index import SearchIndex, brute_force, build_index, recall_at_k

    x = make_vectors(data, n, d, seed=0)
    q = make_vectors(data, queries, d, seed=1) if data == "random" else x[:queries] + 0.05
    emb = _write(tmp / f"{data}-{n}-{d}", x)
    start = time.perf_counter()
    _, truth = brute_force(x, q, k)
    numpy_s = (time.perf_counter() - start) / queries
    out = []
    for kind in kinds:
        params = build_index(emb, kind=kind)
        index = SearchIndex.load(emb)
        index.search(q[:2], k)  # warm-up
        start = time.perf_counter()
        _, rows = index.search(q, k)
        per_query = (time.perf_counter() - start) / queries
        size = int(faiss.serialize_index(index.index).nbytes)
        out.append({"bench": "search_index", "data": data, "n": n, "d": d, "kind": kind,
                    "params": {key: params[key] for key in PARAMS if key in params},
                    "build_s": params["build_seconds"], "index_mb": round(size / 2**20, 1),
                    "vectors_mb": round(x.nbytes / 2**20, 1), "query_ms": round(per_query * 1e3, 3),
                    "numpy_query_ms": round(numpy_s * 1e3, 3), "ratio_numpy_over_index": round(numpy_s / per_query, 2),
                    f"recall@{k}": round(recall_at_k(rows, truth), 4), "threads": faiss.omp_get_max_threads()})
        print(json.dumps(out[-1]), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, nargs="+", default=[100_000])
    ap.add_argument("--dims", type=int, nargs="+", default=[192, 768])
    ap.add_argument("--kinds", nargs="+", default=["flat", "ivf-pq"])
    ap.add_argument("--data", nargs="+", default=["random", "clustered"])
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--k", type=int, default=10)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.n:
            for d in args.dims:
                for data in args.data:
                    bench_one(data, n, d, args.kinds, args.queries, args.k, Path(tmp))


if __name__ == "__main__":
    main()
