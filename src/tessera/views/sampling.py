"""Dataset-level non-empty rejection sampling (seed 000 §7.1.1): a host-side loop that re-reads cutouts
(:func:`draw_view_batch`, for ViewDataset and the figures) and a device-side pool of spares read ahead with the
batch (:func:`views_from_pool`, the training loop).

If any view of a sample fails the non-empty criterion, a *different* cutout index is drawn and its views
generated, up to ``max_attempts`` times; after that the last draw is kept and counted as a give-up rather
than looping forever. Only this known failure is retried; any exception from the store propagates, with
the cutout index added to its message.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol, Sequence

import numpy as np
import torch

from tessera.views.generator import ViewBatch, ViewGenerator


class ArrayStore(Protocol):
    """Anything with a length and ``get_array(i) -> (C, H, W)`` float32 in [0, 1] (e.g. corpus CutoutStore)."""

    def __len__(self) -> int: ...

    def get_array(self, i: int) -> np.ndarray: ...


def load_cutouts(store: ArrayStore, indices: Sequence[int], device) -> list[torch.Tensor]:
    """``store.get_array(i)`` for each index as (C, H, W) float32 tensors on ``device``."""
    out = []
    for i in indices:
        try:
            arr = store.get_array(int(i))
        except Exception as exc:
            # Never swallow: re-raise, naming the index so a bad cutout can be found (DESIGN §7).
            if hasattr(exc, "add_note"):
                exc.add_note(f"while loading cutout {int(i)} for views")
            raise
        t = torch.as_tensor(np.asarray(arr, dtype=np.float32))
        if t.dim() == 2:
            t = t[None]
        out.append(t.to(device))
    return out


def other_indices(current: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """A uniformly random index different from each of ``current`` (any index when n == 1). (K,) -> (K,)."""
    if n <= 1:
        return current.clone()
    draw = torch.randint(0, n - 1, current.shape, generator=generator, device=generator.device).to(current.device)
    return draw + (draw >= current).long()  # skip the current index, stays uniform over the others


def draw_view_batch(
    store: ArrayStore,
    indices: Sequence[int],
    gen: ViewGenerator,
    generator: torch.Generator,
    device: str | torch.device = "cpu",
    max_attempts: int = 5,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Views of the cutouts ``indices`` with non-empty resampling (seed 000 §7.1.1).

    Returns views (B, V, C, S, S) on ``device`` (a list of one such tensor per crop group for a multi-crop
    generator) and stats: ``resampled`` (redraws made), ``gave_up``
    (samples still empty after ``max_attempts`` redraws, kept as drawn), ``indices`` (final cutout
    index of each sample), ``batch`` (the final ViewBatch, for inspection).
    """
    device = torch.device(device)
    idx = torch.as_tensor(list(indices), dtype=torch.long)
    batch = gen(load_cutouts(store, idx.tolist(), device), generator)
    n = len(store)
    resampled = 0
    for _ in range(max_attempts):
        bad = (~batch.nonempty).nonzero(as_tuple=True)[0].cpu()
        if bad.numel() == 0:
            break
        idx[bad] = other_indices(idx[bad], n, generator)
        redo = gen(load_cutouts(store, idx[bad].tolist(), device), generator)
        resampled += int(bad.numel())
        batch = merge_batches(batch, redo, bad.to(batch.nonempty.device))
    gave_up = int((~batch.nonempty).sum())
    return batch.views, {"resampled": resampled, "gave_up": gave_up, "indices": idx.tolist(), "batch": batch}


def merge_batches(batch: ViewBatch, redo: ViewBatch, rows: torch.Tensor) -> ViewBatch:
    """``batch`` with the samples at ``rows`` replaced by the samples of ``redo`` (same order)."""
    if hasattr(batch, "merge"):  # batches of crop groups (views/multicrop.py) know their own layout
        return batch.merge(redo, rows)
    names = ("views", "boxes", "sample_boxes", "roi", "anchors", "wide_field", "nonempty_views", "image_sizes",
             "k", "flip")
    for name in names:
        getattr(batch, name)[rows] = getattr(redo, name).to(getattr(batch, name).device)
    for name, flags in batch.applied.items():
        flags[rows] = redo.applied[name]
    return batch


def take_rows(batch, rows: torch.Tensor):
    """A batch of the same type holding the samples ``rows`` (B',) long of ``batch``, in that order.

    Works for any dataclass batch (ViewBatch, views/multicrop.py MultiCropBatch): every tensor field is indexed
    along its leading (sample) dimension, lists and dicts of tensors entry by entry; a pure gather, no host sync.
    """

    def pick(value):
        if isinstance(value, torch.Tensor):
            return value[rows.to(value.device)]
        if isinstance(value, list):
            return [pick(v) for v in value]
        if isinstance(value, dict):
            return {k: pick(v) for k, v in value.items()}
        return value

    return dataclasses.replace(batch, **{f.name: pick(getattr(batch, f.name)) for f in dataclasses.fields(batch)})


def pool_rows(nonempty: torch.Tensor, batch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Which generated sample fills each of the first ``batch`` slots: the sample itself, or, when its views are
    empty, the next unused non-empty spare (samples ``batch..N-1``) in order (seed 000 §7.1.1 resampling,
    with the redraws read ahead of time so that no attempt waits on the host).

    nonempty: (N,) bool, N = batch + spares -> rows (batch,) long into 0..N-1, resampled () long (slots refilled
    from a spare), gave_up () long (slots still empty: not enough non-empty spares; kept as drawn).
    """
    main, spare = nonempty[:batch], nonempty[batch:]
    arange = torch.arange(batch, device=nonempty.device)
    if spare.numel() == 0:
        zero = torch.zeros((), dtype=torch.long, device=nonempty.device)
        return arange, zero, (~main).sum()
    bad = ~main
    bad_rank = bad.long().cumsum(0) - 1  # j-th empty slot takes the j-th non-empty spare
    # Non-empty spares first, each group in its original order (a stable sort of 0/1 keys).
    order = torch.sort((~spare).to(torch.uint8), stable=True).indices
    take = bad & (bad_rank < spare.sum())
    src = batch + order[bad_rank.clamp(0, spare.numel() - 1)]
    rows = torch.where(take, src, arange)
    return rows, take.sum(), (bad & ~take).sum()


def views_from_pool(gen: ViewGenerator, images, batch: int, generator: torch.Generator) -> tuple[Any, dict[str, Any]]:
    """Views of ``batch`` cutouts from ``images`` = those cutouts followed by spare cutouts, in ONE generator call;
    an empty sample is replaced by the next non-empty spare (:func:`pool_rows`). Nothing waits on the host.

    images: (B + P, C, H, W) (or a sequence of (C, H_i, W_i)) on the training device -> views (B, V, C, S, S)
    (a list of per-group tensors for a multi-crop generator) and stats ``rows`` (B,), ``resampled`` and
    ``gave_up`` (0-dim device tensors; read them only when logging), ``batch`` (the selected batch).
    """
    full = gen(images, generator)
    rows, resampled, gave_up = pool_rows(full.nonempty, batch)
    chosen = take_rows(full, rows)
    return chosen.views, {"rows": rows, "resampled": resampled, "gave_up": gave_up, "batch": chosen}
