"""Dataset-level non-empty resampling (seed 000 §7.1.1), determinism and per-worker/rank seeding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tessera.views.config import ViewConfig
from tessera.views.dataset import ViewDataset, view_seed
from tessera.views.generator import ViewGenerator
from tessera.views.sampling import draw_view_batch

from ._helpers import ArrayStore, blob_image


def test_all_zero_store_gives_up_after_five_resamples_and_reports_it():
    store = ArrayStore([np.zeros((1, 32, 32), np.float32)] * 6)
    gen = ViewGenerator(ViewConfig(output_size=16), "contrastive")
    views, stats = draw_view_batch(store, [0, 1, 2], gen, torch.Generator().manual_seed(0), max_attempts=5)
    assert views.shape == (3, 2, 1, 16, 16)
    assert stats["gave_up"] == 3 and stats["resampled"] == 15
    assert len(store.calls) == 3 * (1 + 5)  # bounded: initial draw + 5 redraws each, no endless loop
    assert torch.isfinite(views).all()


def test_empty_cutouts_are_replaced_by_a_different_nonempty_cutout():
    rng = np.random.default_rng(0)
    bright = blob_image(rng, size=64)[0]
    store = ArrayStore([np.zeros((1, 64, 64), np.float32)] * 4 + [bright])
    gen = ViewGenerator(ViewConfig(output_size=16), "reconstruction")
    views, stats = draw_view_batch(store, [0, 1, 4], gen, torch.Generator().manual_seed(1), max_attempts=50)
    assert stats["gave_up"] == 0 and stats["indices"] == [4, 4, 4]
    assert stats["batch"].nonempty.all() and views.amax(dim=(1, 2, 3, 4)).min() > 0.5
    assert store.calls[:3] == [0, 1, 4]  # the non-empty cutout 4 is never redrawn


def test_redraw_picks_a_different_index():
    from tessera.views.sampling import other_indices

    cur = torch.tensor([0, 3, 9] * 200)
    nxt = other_indices(cur, 10, torch.Generator().manual_seed(0))
    assert (nxt != cur).all() and nxt.min() >= 0 and nxt.max() <= 9
    assert len(set(nxt.tolist())) == 10


def test_store_errors_propagate_with_the_index():
    class Broken(ArrayStore):
        def get_array(self, i):
            raise OSError("disk on fire")

    gen = ViewGenerator(ViewConfig(output_size=8), "reconstruction")
    with pytest.raises(OSError, match="disk on fire") as info:
        draw_view_batch(Broken([None] * 3), [2], gen, torch.Generator())
    assert "cutout 2" in "".join(getattr(info.value, "__notes__", []))


def test_same_seed_identical_views_different_seed_different():
    images = torch.rand(6, 1, 48, 48)
    for branch in ("reconstruction", "contrastive"):
        gen = ViewGenerator(ViewConfig(output_size=24), branch)
        a = gen(images, torch.Generator().manual_seed(7)).views
        b = gen(images, torch.Generator().manual_seed(7)).views
        c = gen(images, torch.Generator().manual_seed(8)).views
        assert torch.equal(a, b) and not torch.equal(a, c)


def test_view_dataset_deterministic_per_seed_index_epoch_and_distinct_across_ranks_workers():
    rng = np.random.default_rng(2)
    store = ArrayStore([blob_image(rng, size=48)[0] for _ in range(3)])
    cfg = ViewConfig(output_size=16)
    ds = ViewDataset(store, cfg, "contrastive", seed=11, rank=0)
    assert len(ds) == 3 and ds[1].shape == (2, 1, 16, 16)
    assert torch.equal(ds[1], ViewDataset(store, cfg, "contrastive", seed=11, rank=0)[1])
    assert not torch.equal(ds[1], ds[2])
    other_rank = ViewDataset(store, cfg, "contrastive", seed=11, rank=1)
    assert not torch.equal(ds[1], other_rank[1])
    first = ds[1]
    ds.set_epoch(1)
    assert not torch.equal(first, ds[1])
    seeds = {view_seed(11, i, e, r, w) for i in range(4) for e in range(3) for r in range(2) for w in range(3)}
    assert len(seeds) == 4 * 3 * 2 * 3  # f(base, rank, worker, index, epoch) never collides here


def test_view_dataset_batches_in_a_dataloader():
    rng = np.random.default_rng(3)
    store = ArrayStore([blob_image(rng, size=32)[0] for _ in range(4)])
    ds = ViewDataset(store, ViewConfig(output_size=8), "reconstruction", seed=0, rank=0)
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=0)
    batches = list(loader)
    assert batches[0].shape == (2, 1, 1, 8, 8) and len(batches) == 2


def test_multicrop_batches_resample_empty_cutouts_too():
    """Regression: the resampling loop merged multi-crop batches through ``batch.views.device`` (a list there),
    so BYOL/DINO crashed on the first empty cutout of a real corpus."""
    from tessera.views.multicrop import CropGroup, MultiCropGenerator

    rng = np.random.default_rng(0)
    bright = blob_image(rng, size=64)[0]
    store = ArrayStore([np.zeros((1, 64, 64), np.float32)] * 4 + [bright])
    cfg = ViewConfig(output_size=16)
    gen = MultiCropGenerator(cfg, [CropGroup("global", 2, 16, (0.7, 1.0)), CropGroup("local", 2, 8, (0.2, 0.5))])
    views, stats = draw_view_batch(store, [0, 1, 4], gen, torch.Generator().manual_seed(1), max_attempts=50)
    assert stats["gave_up"] == 0 and stats["indices"] == [4, 4, 4] and stats["resampled"] > 0
    assert [tuple(v.shape) for v in views] == [(3, 2, 1, 16, 16), (3, 2, 1, 8, 8)]
    assert views[0].amax(dim=(1, 2, 3, 4)).min() > 0.1
