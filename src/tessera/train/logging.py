"""Metrics logging on rank 0: ``metrics.jsonl`` (one JSON object per logged step), optional TensorBoard."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

from tessera.io import atomic_write_text


def _plain(value: Any) -> Any:
    """JSON-safe scalars (tensors -> float; NaN/inf kept as strings so the file stays valid JSON)."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class MetricsLogger:
    """Append one JSON line per logged step to every path in ``paths``; mirror scalars to TensorBoard if asked.

    Only the main process should construct one with ``enabled=True``; on other ranks every call is a no-op.
    """

    def __init__(self, paths: list[str | Path], tensorboard_dir: str | Path | None = None, enabled: bool = True):
        self.paths = [Path(p) for p in paths] if enabled else []
        self.enabled = enabled
        self.writer = None
        if enabled and tensorboard_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:  # TensorBoard is optional: metrics.jsonl stays the record of the run.
                warnings.warn(f"train.tensorboard=true but TensorBoard is not importable ({exc}); "
                              "logging to metrics.jsonl only", RuntimeWarning, stacklevel=2)
            else:
                self.writer = SummaryWriter(log_dir=str(tensorboard_dir))

    def log(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        record = {k: _plain(v) for k, v in record.items()}
        line = json.dumps(record) + "\n"
        for path in self.paths:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a") as fh:
                fh.write(line)
        if self.writer is not None:
            step = int(record.get("global_step", record.get("step", 0)))
            stage = record.get("stage", "train")
            for key, value in record.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and key not in ("step",
                    "global_step"):
                    self.writer.add_scalar(f"{stage}/{key}", value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """All records of a ``metrics.jsonl``."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def truncate_metrics(path: str | Path, keep) -> None:
    """Rewrite ``metrics.jsonl`` keeping the records for which ``keep(record)`` is true (used on resume, so
    steps logged after the last checkpoint are not duplicated)."""
    path = Path(path)
    if not path.exists():
        return
    records = [r for r in read_metrics(path) if keep(r)]
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in records))
