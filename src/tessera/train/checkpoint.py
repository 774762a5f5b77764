"""Checkpoints that resume a run exactly (DESIGN §3.4): model, optimizer, scheduler, scaler, step, RNG states.

The data order and the views are a pure function of (seed, rank, stage, step), so the step number is the whole
data-loader state. Files are written under a temporary name and renamed (``os.replace`` is atomic on POSIX), so
a run killed mid-write never leaves a truncated checkpoint that ``--resume`` would pick up.

Safety (issue 17): a checkpoint is data, never code. Files are read with ``torch.load(weights_only=True)``,
which admits only tensors and plain containers/scalars, so a crafted ``RUN/checkpoints/*.pt`` cannot run
anything; what used to need full pickling (the NumPy RNG state) is stored as plain ints. Every file carries
a SHA-256 over its content (every key, scalar and tensor byte, in order) under ``"integrity"``: a
bit-flipped or random-bytes file is refused with one line, and :func:`latest_checkpoint` falls back to the
newest valid checkpoint with a one-line warning. The digest lives inside the file, so a checkpoint is one
self-verifying file (no sidecar to lose or to leave behind after a failed write).
"""

from __future__ import annotations

import hashlib
import logging
import random
import re
import struct
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tessera.errors import TesseraError
from tessera.io import atomic_open

CHECKPOINT_RE = re.compile(r"^step_(\d+)\.pt$")
INTEGRITY_KEY = "integrity"
INTEGRITY_FORMAT = 1

log = logging.getLogger(__name__)


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
    """The newest checkpoint of ``directory`` that passes :func:`verify_checkpoint`; None when there is none.

    A corrupt newer file is skipped with a one-line warning naming it and the checkpoint used instead;
    when checkpoints exist but none is valid, a TesseraError lists them (resuming from scratch would
    silently discard the run).
    """
    found = list_checkpoints(directory)
    problems: list[str] = []
    for _, path in reversed(found):
        why = verify_checkpoint(path)
        if why is None:
            for problem in problems:
                log.warning("tessera: warning: %s; resuming from %s instead", problem, path.name)
            return path
        problems.append(why)
    if problems:
        raise TesseraError(f"{Path(directory)}: no valid checkpoint ({'; '.join(problems)[:500]})")
    return None


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to ``path`` atomically (``tessera.io.atomic_open``: temp file, fsync, rename)."""
    path = Path(path)
    with atomic_open(path) as fh:
        torch.save(obj, fh)
    return path


def _numpy_rng_state() -> dict[str, Any]:
    """NumPy's legacy global generator state as plain ints/floats (``weights_only`` refuses ndarrays)."""
    st = np.random.get_state(legacy=False)
    return {
        "bit_generator": str(st["bit_generator"]),
        "key": [int(k) for k in st["state"]["key"]],
        "pos": int(st["state"]["pos"]),
        "has_gauss": int(st["has_gauss"]),
        "gauss": float(st["gauss"]),
    }


def _set_numpy_rng_state(st: dict[str, Any]) -> None:
    key = np.asarray(st["key"], dtype=np.uint32)
    np.random.set_state((st["bit_generator"], key, int(st["pos"]), int(st["has_gauss"]), float(st["gauss"])))


def rng_state() -> dict[str, Any]:
    """Python, NumPy, torch CPU and CUDA generator states of this process (tensors and plain Python values only)."""
    version, internal, gauss = random.getstate()
    state = {
        "python": [int(version), [int(v) for v in internal], gauss],
        "numpy": _numpy_rng_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((int(version), tuple(int(v) for v in internal), gauss))
    _set_numpy_rng_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---------------------------------------------------------------- integrity


def _digest_update(h, obj: Any) -> None:
    """Feed a canonical, type-tagged encoding of ``obj`` into ``h`` (containers in their iteration order,
    tensors as dtype + shape + raw bytes), so equal content always gives the same digest."""
    if isinstance(obj, torch.Tensor):
        t = obj.detach().to("cpu").contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}|".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, dict):
        h.update(f"D{len(obj)}|".encode())
        for key, value in obj.items():
            _digest_update(h, key)
            _digest_update(h, value)
    elif isinstance(obj, (list, tuple)):
        h.update(f"{'L' if isinstance(obj, list) else 'U'}{len(obj)}|".encode())
        for item in obj:
            _digest_update(h, item)
    elif isinstance(obj, bool) or obj is None:
        h.update(f"B{obj!r}|".encode())
    elif isinstance(obj, int):
        h.update(f"I{obj}|".encode())
    elif isinstance(obj, float):
        h.update(b"F" + struct.pack("<d", obj))
    elif isinstance(obj, str):
        data = obj.encode("utf-8", "surrogatepass")
        h.update(f"S{len(data)}|".encode() + data)
    elif isinstance(obj, (torch.dtype, torch.device, torch.Size)):
        h.update(f"O{obj!r}|".encode())
    else:
        raise TypeError(
            f"checkpoint state holds a {type(obj).__name__}; only tensors and plain Python values can be stored "
            "(they are what torch.load(weights_only=True) reads back)"
        )


def content_sha256(state: dict[str, Any]) -> str:
    """SHA-256 of a checkpoint's content (everything but its ``integrity`` entry)."""
    h = hashlib.sha256()
    _digest_update(h, {k: v for k, v in state.items() if k != INTEGRITY_KEY})
    return h.hexdigest()


def _read(path: Path, map_location) -> dict[str, Any]:
    """``torch.load(weights_only=True)`` and the integrity check; TesseraError (one line) on any failure."""
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # random bytes, truncation, a refused global: all mean "not a valid checkpoint"
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise TesseraError(f"{path}: cannot read checkpoint ({exc.__class__.__name__}: {first})") from None
    if not isinstance(state, dict) or not isinstance(state.get(INTEGRITY_KEY), dict):
        raise TesseraError(f"{path}: not a tessera checkpoint (no integrity record; written by an older version?)")
    expected = state[INTEGRITY_KEY].get("sha256")
    actual = content_sha256(state)
    if actual != expected:
        raise TesseraError(f"{path}: checkpoint is corrupt (SHA-256 {actual[:12]}... does not match the stored "
                           f"{str(expected)[:12]}...)")
    del state[INTEGRITY_KEY]
    return state


def verify_checkpoint(path: str | Path) -> str | None:
    """None when ``path`` loads safely and its SHA-256 matches, else the one-line reason."""
    try:
        _read(Path(path), "cpu")
    except TesseraError as exc:
        return str(exc)
    return None


def save_checkpoint(directory: str | Path, step: int, state: dict[str, Any], keep: int | None = None) -> Path:
    """Write ``state`` (plus RNG states) as ``directory/step_XXXXXXXX.pt``; keep only the newest ``keep`` files."""
    payload = dict(state, step=step, rng=rng_state())
    payload[INTEGRITY_KEY] = {"format": INTEGRITY_FORMAT, "sha256": content_sha256(payload)}
    path = atomic_torch_save(payload, checkpoint_path(directory, step))
    if keep is not None:
        for _, old in list_checkpoints(directory)[:-keep]:
            old.unlink()
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`: tensors and plain values only (``weights_only``),
    its SHA-256 verified; a crafted, corrupt or foreign file is a TesseraError naming it."""
    return _read(Path(path), map_location)
