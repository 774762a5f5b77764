"""Embedding sets, FAISS indexes, similarity search and galleries over a whole survey (issue 13).

``embed.py`` (resumable sharded embedding of a CutoutStore or data spec, one set per encoder fingerprint),
``index.py`` (flat / IVF-PQ / HNSW FAISS indexes, parameters from the size), ``query.py`` (``Index``: search
by cutout id, image, vectors or sky position), ``gallery.py`` (figure and static HTML page).
"""

from tessera.search.embed import EmbeddingSet, embed_source
from tessera.search.index import build_index
from tessera.search.query import Index

__all__ = ["EmbeddingSet", "Index", "build_index", "embed_source"]
