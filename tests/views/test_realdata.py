"""Real FIRST radio galaxies (300x300, very sparse): non-empty views whose ROI holds the source, and the
`tessera views` command on a real CutoutStore."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tessera.views.config import ViewConfig
from tessera.views.generator import ViewGenerator
from tessera.views.sampling import draw_view_batch

from ._helpers import ArrayStore

pytestmark = pytest.mark.realdata


def _first_pngs(shared_data, n_per_class=2):
    root = shared_data / "first_radio_galaxies"
    return [p for cls in ("FRI", "FRII", "Compact", "Bent") for p in sorted((root / cls).glob("*.png"))[:n_per_class]]


def test_first_views_are_nonempty_and_roi_contains_the_source(shared_data):
    from tessera.corpus.normalize import zscale_normalize
    from tessera.corpus.readers import read_image

    arrays = [zscale_normalize(read_image(p)) for p in _first_pngs(shared_data)]
    arrays = [a[None] if a.ndim == 2 else a for a in arrays]
    store = ArrayStore(arrays)
    for branch in ("reconstruction", "contrastive"):
        gen = ViewGenerator(ViewConfig(output_size=64), branch)
        views, stats = draw_view_batch(store, list(range(len(store))), gen, torch.Generator().manual_seed(0))
        batch = stats["batch"]
        assert batch.nonempty.all() and stats["gave_up"] == 0
        assert views.shape[2] == 1 and views.min() >= 0 and views.max() <= 1
        for i, idx in enumerate(stats["indices"]):
            img = arrays[idx][0]
            # the source: the brightest pixels of the cutout (FIRST cutouts are centred on it)
            ys, xs = np.nonzero(img >= 0.99 * img.max())
            x0, y0, x1, y1 = batch.roi[i].tolist()
            inside = (xs + 0.5 >= x0) & (xs + 0.5 <= x1) & (ys + 0.5 >= y0) & (ys + 0.5 <= y1)
            assert inside.any(), f"{branch}: ROI of cutout {idx} misses the source"


def test_views_command_on_a_real_store(shared_data, tmp_path):
    from tessera.cli import main
    from tessera.corpus.ingest import run_ingest

    run_ingest([str(p) for p in _first_pngs(shared_data, 1)], tmp_path / "store", progress=False)
    out = tmp_path / "fig" / "views.png"
    # overrides right after STORE: argparse's parse_args cannot take positionals after options
    rc = main(["views", str(tmp_path / "store"), "output_size=48", "--out", str(out), "--branch", "contrastive",
               "--n", "2", "--cutouts", "2", "--seed", "3"])
    assert rc == 0 and out.stat().st_size > 5000
    from PIL import Image

    assert Image.open(out).size[0] > Image.open(out).size[1]  # rows of parent + 2 pairs
    assert "output_size: 48" in out.with_suffix(".yaml").read_text()
    assert main(["views", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert main(["views", str(tmp_path / "store"), "p_global=3", "--out", str(out)]) == 2
