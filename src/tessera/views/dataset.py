"""A torch Dataset of views over a cutout store, a pure function of (seed, rank, index, epoch): the same views
for any number of DataLoader workers (so an exact resume holds however the data is read), different across
DDP ranks."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from tessera import dist as tessera_dist
from tessera.seeding import mix_seed
from tessera.views.config import ViewConfig
from tessera.views.generator import Branch, ViewGenerator
from tessera.views.sampling import ArrayStore, draw_view_batch


def view_seed(base: int, index: int, epoch: int = 0, rank: int = 0, worker: int = 0) -> int:
    """A 63-bit seed = f(base seed, rank, worker, index, epoch), see :func:`tessera.seeding.mix_seed`.

    ViewDataset passes ``worker=0`` always: which worker reads an item must not change its views."""
    return mix_seed(base, rank, worker, index, epoch)


def current_rank() -> int:
    """The DDP rank (:func:`tessera.dist.rank`), 0 for a single process."""
    return tessera_dist.rank()


class ViewDataset(Dataset):
    """``ds[i] -> (V, C, S, S)`` views of cutout i (or of a resampled cutout when i's views are empty).

    The generator of item i is seeded with ``view_seed(seed, i, epoch, rank)`` (no worker id: the views do not
    depend on which DataLoader worker reads the item, nor on how many there are); call ``set_epoch(e)`` each
    epoch (with persistent DataLoader workers, set it before the workers start). ``rank`` defaults to the
    torch.distributed rank. Counts of resamples and give-ups of this process are in ``ds.stats`` (per worker
    process when read by workers).
    """

    def __init__(self, store: ArrayStore, cfg: ViewConfig, branch: Branch, seed: int = 0, rank: int | None = None):
        self.store = store
        self.gen = ViewGenerator(cfg, branch)
        self.seed = int(seed)
        self.rank = current_rank() if rank is None else int(rank)
        self.epoch = 0
        self.stats = {"resampled": 0, "gave_up": 0}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, i: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(view_seed(self.seed, i, self.epoch, self.rank))
        views, stats = draw_view_batch(self.store, [i], self.gen, generator, "cpu", self.gen.cfg.max_attempts)
        self.stats["resampled"] += stats["resampled"]
        self.stats["gave_up"] += stats["gave_up"]
        return views[0]
