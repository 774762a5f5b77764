"""Output directories: refuse to clobber a non-empty directory unless asked to, and never write over an input.

Every command that writes a directory goes through :func:`prepare_output_dir` (or calls
:func:`check_out_vs_inputs` itself before any work): ``--out`` equal to, inside, or containing one of the
command's inputs (pretrain ``--corpus``, evaluate ``--data``, ingest's inputs) is refused, because
``--overwrite`` would delete the input and a run inside its data folder would be read back as data.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from tessera.errors import TesseraError


def _real(path: str | Path) -> Path:
    """Absolute path with symlinks resolved (a missing tail is kept as written)."""
    return Path(os.path.realpath(os.path.expanduser(str(path))))


def check_out_vs_inputs(out: str | Path, inputs: Iterable[str | Path | None]) -> None:
    """Raise TesseraError when ``out`` is, is inside, or contains one of ``inputs``.

    Paths are compared after resolving symlinks, so ``--out link-to-data`` is caught too. Inputs that do
    not exist (``None``, a Hugging Face id, ``random:NAME``) cannot be destroyed and are ignored.
    """
    target = _real(out)
    for item in inputs:
        if item is None or str(item) == "" or not os.path.lexists(os.path.expanduser(str(item))):
            continue
        source = _real(item)
        if target == source:
            relation = "is"
        elif source in target.parents:
            relation = "is inside"
        elif target in source.parents:
            relation = "contains"
        else:
            continue
        raise TesseraError(f"--out {out} {relation} the input {item}; choose an output directory apart from the inputs")


def clear_directory(path: Path, keep: Iterable[str] = ()) -> None:
    """Remove everything inside ``path`` except the entries named in ``keep`` (e.g. a lock file)."""
    keep = set(keep)
    for item in path.iterdir():
        if item.name in keep:
            continue
        if item.is_dir() and not item.is_symlink():
            shutil.rmtree(item)
        else:
            item.unlink()


def prepare_output_dir(
    path: str | Path, overwrite: bool = False, resume: bool = False, inputs: Iterable[str | Path | None] = ()
) -> Path:
    """Create ``path``; an existing non-empty directory is an error unless ``overwrite`` (wipe it) or ``resume`` (keep
    it).

    ``inputs`` are checked first with :func:`check_out_vs_inputs`, before anything is created or removed.
    """
    path = Path(path)
    check_out_vs_inputs(path, inputs)
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
