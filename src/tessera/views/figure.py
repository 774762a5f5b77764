"""Figures like seed 000 Figures 1 and 2: each row is a parent cutout with the ROI (dashed) and crop boxes
(solid) of every draw drawn on it, followed by the views; a view's frame has the colour of its boxes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tessera.views.config import ViewConfig
from tessera.views.generator import Branch, ViewGenerator
from tessera.views.sampling import ArrayStore, draw_view_batch


def _display(img: np.ndarray) -> tuple[np.ndarray, str | None]:
    """(C, H, W) -> an imshow-able array: RGB for 3 channels, else the first channel in grey."""
    if img.shape[0] == 3:
        return np.clip(np.transpose(img, (1, 2, 0)), 0, 1), None
    return img[0], "gray"


def draw_views_figure(
    store: ArrayStore,
    out: str | Path,
    cfg: ViewConfig,
    branch: Branch = "reconstruction",
    n: int = 8,
    cutouts: int = 4,
    seed: int = 0,
) -> Path:
    """Draw ``n`` independent draws of views for the first ``cutouts`` non-blank cutouts of ``store``.

    Returns the written path (PNG, or any format matplotlib infers from the suffix). Draws use the
    dataset-level non-empty resampling like training, so a shown view may come from another cutout
    only when its own stays empty; such rows are titled with the cutout actually used.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    gen = ViewGenerator(cfg, branch)
    generator = torch.Generator().manual_seed(seed)
    rows = min(cutouts, len(store))
    v = gen.num_views
    cols = 1 + n * v
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.7 * rows), squeeze=False)
    colours = plt.get_cmap("tab10").colors
    for r in range(rows):
        parent = np.asarray(store.get_array(r), dtype=np.float32)
        parent = parent[None] if parent.ndim == 2 else parent
        views, stats = draw_view_batch(store, [r] * n, gen, generator, "cpu", cfg.max_attempts)
        batch = stats["batch"]
        img, cmap = _display(parent)
        ax = axes[r, 0]
        ax.imshow(img, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(f"cutout {r}", fontsize=7)
        for d in range(n):
            colour = colours[d % len(colours)]
            if stats["indices"][d] == r:  # boxes refer to this parent only if it was not resampled
                x0, y0, x1, y1 = batch.roi[d].tolist()
                ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ls="--", lw=0.7, ec=colour))
                for j in range(v):
                    x0, y0, x1, y1 = batch.boxes[d, j].tolist()
                    ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, lw=0.9, ec=colour))
            for j in range(v):
                axv = axes[r, 1 + d * v + j]
                vimg, vcmap = _display(views[d, j].numpy())
                axv.imshow(vimg, cmap=vcmap, vmin=0, vmax=1, interpolation="nearest")
                label = ("wide-field" if bool(batch.wide_field[d]) else "ROI") if branch == "reconstruction" else (
                    "wide" if j == 0 else "additional")
                if stats["indices"][d] != r:
                    label += f" (cutout {stats['indices'][d]})"
                axv.set_title(label, fontsize=6)
                for spine in axv.spines.values():
                    spine.set_edgecolor(colour)
                    spine.set_linewidth(2)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"tessera views: {branch} branch, regime={cfg.regime}, seed={seed}", fontsize=9)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def draw_crop_groups_figure(
    store: ArrayStore,
    out: str | Path,
    gen,
    title: str,
    n: int = 2,
    cutouts: int = 4,
    seed: int = 0,
) -> Path:
    """Like :func:`draw_views_figure` for a multi-crop generator (views/multicrop.py): each row is a parent cutout
    with its ROI (dashed) and every crop square of ``n`` draws, followed by the views of every crop group
    (titled with the group name; local crops are shown at their own, smaller, resolution)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    generator = torch.Generator().manual_seed(seed)
    rows = min(cutouts, len(store))
    names = [g.name for g in gen.groups for _ in range(g.count)]
    v = len(names)
    cols = 1 + n * v
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols, 1.4 * rows), squeeze=False)
    colours = plt.get_cmap("tab10").colors
    for r in range(rows):
        parent = np.asarray(store.get_array(r), dtype=np.float32)
        parent = parent[None] if parent.ndim == 2 else parent
        _, stats = draw_view_batch(store, [r] * n, gen, generator, "cpu", gen.cfg.max_attempts)
        batch = stats["batch"]
        img, cmap = _display(parent)
        axes[r, 0].imshow(img, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        axes[r, 0].set_title(f"cutout {r}", fontsize=7)
        for d in range(n):
            colour = colours[d % len(colours)]
            views = [g[d, j] for g in batch.views for j in range(g.shape[1])]
            if stats["indices"][d] == r:
                x0, y0, x1, y1 = batch.roi[d].tolist()
                axes[r, 0].add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ls="--", lw=0.7, ec=colour))
                for boxes in batch.boxes:
                    for x0, y0, x1, y1 in boxes[d].tolist():
                        axes[r, 0].add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, lw=0.5, ec=colour))
            for j, (name, view) in enumerate(zip(names, views)):
                ax = axes[r, 1 + d * v + j]
                vimg, vcmap = _display(view.numpy())
                ax.imshow(vimg, cmap=vcmap, vmin=0, vmax=1, interpolation="nearest")
                ax.set_title(f"{name} {view.shape[-1]}px", fontsize=5)
                for spine in ax.spines.values():
                    spine.set_edgecolor(colour)
                    spine.set_linewidth(2)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
