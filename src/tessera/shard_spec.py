"""``--shard I/N``: which of N independent processes this one is (ingest and embed, issue 19). Standard library only,
so every layer may use it."""

from __future__ import annotations

import os
import re

from tessera.errors import TesseraError


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` -> (I, N) with 0 <= I < N; a one-line error otherwise."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not match:
        raise TesseraError(f"--shard {text}: expected I/N, e.g. 0/4 (process I of N, counted from 0)")
    index, count = int(match.group(1)), int(match.group(2))
    if count <= 0:
        raise TesseraError(f"--shard {text}: N must be a positive number of processes")
    if index >= count:
        raise TesseraError(f"--shard {text}: I must be in 0..{count - 1} (processes are counted from 0)")
    return index, count


def check_parts_complete(where, parts: list[dict], count: int, command: str) -> None:
    """Every part 0..count-1 of a sharded job present in ``parts`` (dicts with ``index`` and ``done``) and finished;
    else a one-line error naming the first missing or unfinished shard and the ``tessera COMMAND`` that makes it."""
    present = {p["index"] for p in parts}
    missing = [i for i in range(count) if i not in present]
    if missing:
        raise TesseraError(f"{where}: shard {missing[0]}/{count} is missing ({len(missing)} of {count} missing); "
                           f"run `tessera {command} ... --shard {missing[0]}/{count}` first")
    unfinished = [p for p in parts if not p.get("done")]
    if unfinished:
        raise TesseraError(f"{where}: shard {unfinished[0]['index']}/{count} is unfinished (killed or still running); "
                           "rerun it, then merge")


def shard_from_environment() -> tuple[int, int] | None:
    """(RANK, WORLD_SIZE) under torchrun with more than one process, else None."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    return (int(os.environ.get("RANK", "0") or 0), world) if world > 1 else None
