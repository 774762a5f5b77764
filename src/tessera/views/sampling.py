"""Dataset-level non-empty rejection sampling (seed 000 §7.1.1), shared by the training loop and ViewDataset.

If any view of a sample fails the non-empty criterion, a *different* cutout index is drawn and its views
generated, up to ``max_attempts`` times; after that the last draw is kept and counted as a give-up rather
than looping forever. Only this known failure is retried; any exception from the store propagates, with
the cutout index added to its message.
"""

from __future__ import annotations

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
    for name in ("views", "boxes", "sample_boxes", "roi", "anchors", "wide_field", "nonempty_views", "image_sizes",
                 "k", "flip"):
        getattr(batch, name)[rows] = getattr(redo, name).to(getattr(batch, name).device)
    for name, flags in batch.applied.items():
        flags[rows] = redo.applied[name]
    return batch
