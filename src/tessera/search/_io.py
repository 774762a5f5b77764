"""Atomic file writes for embedding sets and indexes (DESIGN §2.1: ``tessera/io.py`` does not exist yet; the
integrator points these at it once it does). A file is either complete under its final name or absent: written
to a temporary sibling, flushed, fsynced, then renamed with ``os.replace`` (atomic on POSIX)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

TMP_PREFIX = ".tmp-"


def atomic_write(path: str | Path, write: Callable[[object], None]) -> Path:
    """Call ``write(binary_file)`` on a temporary sibling of ``path``, fsync it, rename it to ``path``."""
    path = Path(path)
    tmp = path.with_name(f"{TMP_PREFIX}{os.getpid()}-{path.name}")
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda fh: fh.write(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def remove_stale_temporaries(folder: Path) -> int:
    """Delete ``.tmp-*`` files a killed writer left in ``folder``; returns how many."""
    n = 0
    for p in folder.glob(f"{TMP_PREFIX}*"):
        p.unlink(missing_ok=True)
        n += 1
    return n
