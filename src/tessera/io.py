"""File writing and file identity shared by every package (dependency-free: standard library only).

One atomic write: the bytes go to a temporary file in the destination's own directory (a rename is only
atomic within one filesystem), are flushed and fsynced, and the temporary file is renamed over the
destination with ``os.replace`` (atomic on POSIX). A reader therefore sees the old file or the complete
new one, never a torn one; a crash leaves at most a ``.tmp-<pid>-<name>`` file behind, which
``is_temp_name`` recognizes so cleaners can remove it (corpus/ingest.py does).

One file identity: the resolved path, size and modification time, from which both the cache keys of
evaluation (``file_signature``) and the content keys of ingest are made, so a changed file is a new input
everywhere.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO

TEMP_PREFIX = ".tmp-"


def temp_path(path: str | Path) -> Path:
    """The temporary sibling of ``path`` an atomic write goes through: ``<dir>/.tmp-<pid>-<name>``."""
    path = Path(path)
    return path.with_name(f"{TEMP_PREFIX}{os.getpid()}-{path.name}")


def is_temp_name(name: str) -> bool:
    """Whether a file name is a leftover of an interrupted atomic write."""
    return name.startswith(TEMP_PREFIX)


def remove_temp_files(folder: str | Path) -> int:
    """Delete the temporary siblings (``is_temp_name``) a killed writer left in ``folder``; returns how many."""
    n = 0
    for p in Path(folder).iterdir():
        if is_temp_name(p.name) and p.is_file():
            p.unlink(missing_ok=True)
            n += 1
    return n


def fsync_dir(path: str | Path) -> None:
    """fsync a directory so the renames inside it survive a power loss (POSIX)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb", encoding: str | None = None) -> Iterator[IO]:
    """Open ``path`` for writing so that it appears whole or not at all.

    Yields a file object on the temporary sibling (``temp_path``); on a clean exit it is flushed, fsynced and
    renamed over ``path``; on an exception the temporary file is removed and ``path`` is left as it was.
    The parent directory is created if missing.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open writes whole files (mode 'wb' or 'w'), got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        with open(tmp, mode, encoding=encoding if "b" not in mode else None) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (``atomic_open``); returns ``path``."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (``atomic_open``); returns ``path``."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def file_identity(path: str | Path) -> tuple[str, int, int]:
    """``(resolved path, size in bytes, mtime in ns)``: what makes a file "the same input" for caches and keys."""
    path = Path(path)
    st = path.stat()
    return str(path.resolve()), st.st_size, st.st_mtime_ns


def file_signature(path: str | Path) -> str:
    """``"<resolved path>:<mtime_ns>:<size>"``: a cache-key string that changes when the file changes."""
    resolved, size, mtime_ns = file_identity(path)
    return f"{resolved}:{mtime_ns}:{size}"


def files_signature(paths) -> str:
    """The signatures of several files joined with ``;`` (order kept)."""
    return ";".join(file_signature(p) for p in paths)
