"""Output directories: refuse to clobber a non-empty directory unless asked to."""

from __future__ import annotations

import shutil
from pathlib import Path

from tessera.errors import TesseraError


def prepare_output_dir(path: str | Path, overwrite: bool = False, resume: bool = False) -> Path:
    """Create ``path``; an existing non-empty directory is an error unless ``overwrite`` (wipe it) or ``resume`` (keep it)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise TesseraError(f"{path}: exists and is not a directory")
    if path.is_dir() and any(path.iterdir()):
        if resume:
            return path
        if not overwrite:
            raise TesseraError(f"{path}: output directory exists and is not empty (pass --overwrite to replace it)")
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    return path
