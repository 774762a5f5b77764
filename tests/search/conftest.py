"""Fixtures for the search tests: small simulated FITS mosaics with WCS ingested into stores, a micro encoder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tessera.corpus.config import IngestConfig
from tessera.corpus.ingest import run_ingest
from tests.corpus._synth import celestial_header, sky, write_fits

MODEL = "random:vit_micro_patch8_32"
TILE = 32
SIZE = 160  # 5 x 5 tiles of 32 per mosaic
CFG = IngestConfig(tile=TILE, min_tile=TILE)


def write_mosaic(folder: Path, name: str, seed: int, ra: float, dec: float) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    img = sky(np.random.default_rng(seed), SIZE, SIZE)
    return write_fits(folder / name, img, celestial_header(SIZE, SIZE, ra=ra, dec=dec))


def ingest(paths, store: Path) -> Path:
    run_ingest([str(p) for p in paths], store, CFG, progress=False)
    return store


@pytest.fixture(scope="session")
def mosaics(tmp_path_factory) -> list[Path]:
    d = tmp_path_factory.mktemp("mosaics") / "sim"
    return [write_mosaic(d, "a.fits", 1, 150.0, 2.0), write_mosaic(d, "b.fits", 2, 151.0, 2.5)]


@pytest.fixture(scope="session")
def store(tmp_path_factory, mosaics) -> Path:
    """Both mosaics: 50 cutouts of (1, 32, 32) with RA/Dec."""
    return ingest(mosaics, tmp_path_factory.mktemp("store") / "store")


@pytest.fixture(scope="session")
def encoder():
    from tessera.models.load import load

    return load(MODEL)


@pytest.fixture(scope="session")
def emb(tmp_path_factory, store, encoder) -> Path:
    """The store embedded once with the micro encoder (shards of 16 rows)."""
    from tessera.search.embed import embed_source
    from tessera.search.source import from_store

    out = tmp_path_factory.mktemp("emb") / "emb"
    embed_source(encoder, from_store(store), out, model_ref=MODEL, batch=8, shard_size=16, progress=False)
    return out


def write_set(folder: Path, vectors: np.ndarray, shard_size: int = 50_000, fingerprint: str = "synthetic") -> Path:
    """A synthetic embedding set on disk from vectors (N, D), ids ``v<i>``."""
    import pandas as pd

    from tessera.search.embed import write_embedding_set

    table = pd.DataFrame({"cutout_id": [f"v{i}" for i in range(len(vectors))]})
    return write_embedding_set(folder, vectors, table, fingerprint, shard_size=shard_size).path


def clustered(n: int, d: int, clusters: int, seed: int = 0, spread: float = 0.3) -> np.ndarray:
    """(n, d) float32: Gaussian clusters around random centres (a stand-in for embeddings of object classes)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, d))
    return (centres[rng.integers(0, clusters, n)] + spread * rng.normal(size=(n, d))).astype(np.float32)
