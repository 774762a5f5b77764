"""Checkpoints that resume a run exactly (DESIGN §3.4): model, optimizer, scheduler, scaler, step, RNG states.

The data order and the views are a pure function of (seed, rank, stage, step), so the step number is the whole
data-loader state. Files are written under a temporary name and renamed (``os.replace`` is atomic on POSIX), so
a run killed mid-write never leaves a truncated checkpoint that ``--resume`` would pick up.
"""

from __future__ import annotations

import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tessera.errors import TesseraError

CHECKPOINT_RE = re.compile(r"^step_(\d+)\.pt$")


def checkpoint_path(directory: str | Path, step: int) -> Path:
    return Path(directory) / f"step_{step:08d}.pt"


def list_checkpoints(directory: str | Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of the complete checkpoints in ``directory``, oldest first (temporary files ignored)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        match = CHECKPOINT_RE.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_checkpoint(directory: str | Path) -> Path | None:
    found = list_checkpoints(directory)
    return found[-1][1] if found else None


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to ``path`` via a temporary file in the same directory and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def rng_state() -> dict[str, Any]:
    """Python, NumPy, torch CPU and CUDA generator states of this process."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(directory: str | Path, step: int, state: dict[str, Any], keep: int | None = None) -> Path:
    """Write ``state`` (plus RNG states) as ``directory/step_XXXXXXXX.pt``; keep only the newest ``keep`` files."""
    payload = dict(state, step=step, rng=rng_state())
    path = atomic_torch_save(payload, checkpoint_path(directory, step))
    if keep is not None:
        for _, old in list_checkpoints(directory)[:-keep]:
            old.unlink()
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (a readable error names the file)."""
    path = Path(path)
    try:
        # Our own files: they hold numpy RNG state and config dicts, hence weights_only=False.
        return torch.load(path, map_location=map_location, weights_only=False)
    except (OSError, RuntimeError, EOFError) as exc:
        raise TesseraError(f"{path}: cannot read checkpoint ({exc.__class__.__name__}: {exc})") from None
