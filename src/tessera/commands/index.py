"""Build a FAISS index over an embedding set: exact (flat) below about a million vectors, IVF-PQ above, or HNSW.

The chosen parameters (nlist, code size, nprobe...) are written to index.json next to the index.
"""

from __future__ import annotations


def add_arguments(parser):
    parser.add_argument("emb", metavar="EMB", help="an embedding set (or an EMB folder holding one)")
    parser.add_argument("--kind", default="auto", choices=("auto", "flat", "ivf-pq", "hnsw"),
                        help="index kind (default auto: flat below 1e6 vectors, else ivf-pq)")
    parser.add_argument("--metric", default="cosine", choices=("cosine", "l2"), help="similarity (default cosine)")
    parser.add_argument("--center", action="store_true",
                        help="subtract the set's mean vector first (better rankings for mean-pooled ViT features)")


def run(args) -> int:
    from tessera.search.embed import EmbeddingSet
    from tessera.search.index import build_index

    emb = EmbeddingSet.open(args.emb)
    params = build_index(emb, kind=args.kind, metric=args.metric, center=args.center)
    extra = ", ".join(f"{k} {params[k]}" for k in ("nlist", "m", "code_size", "nprobe", "M") if k in params)
    print(f"{emb.path}: {params['kind']} index ({params['metric']}) of {params['n']} x {params['d']} in "
          f"{params['build_seconds']} s" + (", centred" if params["center"] else "") + (f"; {extra}" if extra else ""))
    return 0
