"""tessera.corpus: read planes -> tile -> filter -> normalize -> write a CutoutStore (seed 000 §3.1-3.2).

Light imports only here; ``from tessera.corpus.store import CutoutStore`` pulls torch.
"""

from tessera.corpus.config import IngestConfig

__all__ = ["IngestConfig"]
