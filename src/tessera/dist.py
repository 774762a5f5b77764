"""Where this process stands in a distributed job, for every package (DESIGN §5.6; nanoGPT's ``master_process``).

Dependency-free: it imports no other tessera module, and torch only inside the functions, so corpus, views,
models, commands and train can all ask "which rank am I?" the same way. Process-group setup, collectives
and synchronized BatchNorm stay in :mod:`tessera.train.distributed`, which re-exports these helpers.

The rank comes from the initialized process group when there is one, else from the torchrun environment
(``RANK``/``WORLD_SIZE``/``LOCAL_RANK``): a command that prints after training (the group destroyed) or a
spawned DataLoader worker (no group of its own) still knows its rank.
"""

from __future__ import annotations

import os
from typing import Any


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def _group():
    """``torch.distributed`` when a process group is initialized here, else None."""
    import torch.distributed as tdist

    return tdist if tdist.is_available() and tdist.is_initialized() else None


def rank() -> int:
    """This process's global rank (0 for a single process)."""
    group = _group()
    return group.get_rank() if group is not None else _env_int("RANK", 0)


def world_size() -> int:
    """How many processes the job has (1 for a single process)."""
    group = _group()
    return group.get_world_size() if group is not None else _env_int("WORLD_SIZE", 1)


def local_rank() -> int:
    """This process's rank on its node (its device index under torchrun)."""
    return _env_int("LOCAL_RANK", 0)


def is_main() -> bool:
    """Rank 0 (or the only process): the one that logs, prints, writes checkpoints and exports."""
    return rank() == 0


def is_distributed() -> bool:
    """True inside an initialized process group of more than one process."""
    group = _group()
    return group is not None and group.get_world_size() > 1


def barrier() -> None:
    """Wait for every rank (a no-op for a single process)."""
    group = _group()
    if group is not None and group.get_world_size() > 1:
        group.barrier()


def unwrap(model: Any) -> Any:
    """The bare module inside DistributedDataParallel and/or ``torch.compile`` (for saving, export and
    reaching heads; never for the training forward, which must go through DDP's hooks, DESIGN §7)."""
    while True:
        inner = getattr(model, "_orig_mod", None)  # torch.compile's OptimizedModule
        if inner is None and type(model).__name__ == "DistributedDataParallel":
            inner = model.module
        if inner is None:
            return model
        model = inner
