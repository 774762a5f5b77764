"""Cross-survey retrieval on FR-DEEP through the search index: each galaxy's FIRST image finds its NVSS image.

    python benchmarks/search_frdeep.py --data ../shared/data/frdeep_fits \
        --model random:vit_tiny_patch8_64 --model byol=runs/byol_2x

The evaluation issue's ``frdeep-pairs:`` data (FIRST and NVSS images of the same objects, cut to their common
sky field) is embedded with ``tessera.search.embed``, indexed exactly (flat, cosine), and every FIRST image is
searched with ``--where part=test`` (NVSS only), and back. recall@k = fraction of objects whose partner is among
the k nearest. Unlike ``tessera evaluate --protocol retrieval`` the vectors are not centred first: this is what
a user of ``tessera search`` gets.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np


def partner_ranks(index, table, query_part: str, target_part: str, k: int) -> np.ndarray:
    """1-based rank of each query's partner (same ``object``) among its k nearest ``target_part`` rows; k + 1 when
    the partner is not among them."""
    queries = table[table["part"] == query_part]
    res = index.search_vectors(index.emb.rows(queries["row"].to_numpy()), k, where={"part": target_part},
                               names=queries["object"].astype(str).tolist())
    ranks = []
    for obj, group in res.groupby("query", sort=False):
        hit = group.index[group["object"].astype(str) == obj]
        ranks.append(int(group.loc[hit[0], "rank"]) if len(hit) else k + 1)
    return np.asarray(ranks)


def _recalls(ranks: np.ndarray, k: int) -> dict:
    return {"recall@1": round(float(np.mean(ranks <= 1)), 4), f"recall@{k}": round(float(np.mean(ranks <= k)), 4)}


def _protocol_ranks(index, table) -> np.ndarray:
    """The same embeddings under ``tessera evaluate --protocol retrieval`` (each survey centred on its own mean)."""
    from tessera.evaluate.retrieval import match_ranks

    first = table[table["part"] == "train"].set_index("object")
    nvss = table[table["part"] == "test"].set_index("object").loc[first.index]
    return match_ranks(index.emb.rows(first["row"].to_numpy()), index.emb.rows(nvss["row"].to_numpy()))


def main() -> None:
    from tessera.models.load import load
    from tessera.search.embed import embed_source
    from tessera.search.index import build_index
    from tessera.search.query import Index
    from tessera.search.source import from_data_spec

    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data/frdeep_fits")
    ap.add_argument("--model", action="append", help="REF or LABEL=REF (repeatable)")
    ap.add_argument("--k", type=int, default=10)
    args = ap.parse_args()
    start = time.perf_counter()
    source = from_data_spec(f"frdeep-pairs:{args.data}")
    load_s = time.perf_counter() - start
    for item in args.model or ["random:vit_tiny_patch8_64"]:
        label, _, ref = item.rpartition("=")
        encoder = load(ref)
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            report = embed_source(encoder, source, tmp, model_ref=ref, progress=False)
            out = {"bench": "search_frdeep_pairs", "model": label or ref, "ref": ref,
                   "embed_images_per_s": report["images_per_s"], "load_data_s": round(load_s, 1)}
            for center in (False, True):
                build_index(Index.open(tmp).emb, kind="flat", center=center)
                index = Index.open(tmp)
                table = index.table
                out["pairs"] = int((table["part"] == "train").sum())
                for name, (qp, tp) in {"FIRST->NVSS": ("train", "test"), "NVSS->FIRST": ("test", "train")}.items():
                    ranks = partner_ranks(index, table, qp, tp, args.k)
                    out[f"index{'_centred' if center else ''} {name}"] = _recalls(ranks, args.k)
            out["evaluate_protocol FIRST->NVSS"] = _recalls(_protocol_ranks(index, table), args.k)
            out["seconds"] = round(time.perf_counter() - t0, 1)
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
