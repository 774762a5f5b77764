"""Spectrum masked modelling: the mask covers exactly the configured segments; a tiny run lowers its loss and
its export is a tower `tessera align` can load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tessera.align.spectrum_pretrain import SpectrumPretrainConfig, pretrain_spectra, segment_mask
from tessera.align.towers import load_backbone
from tessera.models.spectrum import SpectrumEncoder


def test_segment_mask_covers_exactly_the_segments():
    g = torch.Generator().manual_seed(0)
    mask, starts = segment_mask(50, 200, segments=6, width=30, generator=g)
    assert mask.shape == (50, 200) and starts.shape == (50, 6)
    assert (mask.sum(dim=1) == 180).all()  # 6 x 30, no overlap
    for row, st in zip(mask, starts):
        expected = torch.zeros(200, dtype=torch.bool)
        for s in st.tolist():
            expected[s : s + 30] = True
        assert torch.equal(row, expected)
    assert starts.min() >= 0 and (starts + 30).max() <= 200


def _smooth_spectra(n: int, length: int) -> torch.Tensor:
    """Power laws with curvature plus noise: masked segments are predictable from their neighbours."""
    rng = np.random.default_rng(0)
    f = np.linspace(0, 1, length)
    alpha, beta = rng.normal(-0.7, 0.3, (n, 1)), rng.normal(0, 0.5, (n, 1))
    spec = alpha * f + beta * f**2 + 0.02 * rng.normal(size=(n, length))
    return torch.from_numpy(spec[:, None, :].astype(np.float32))


@pytest.mark.slow
def test_tiny_spectrum_pretraining_lowers_the_loss(tmp_path):
    torch.manual_seed(0)
    enc = SpectrumEncoder(length=200, dim=32, depth=2, heads=2)
    losses = pretrain_spectra(enc, _smooth_spectra(64, 200), tmp_path / "spec",
                              SpectrumPretrainConfig(steps=60, batch_size=16, lr=2e-3))
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])
    back = load_backbone(str(tmp_path / "spec"))
    x = torch.randn(2, 1, 200)
    assert torch.allclose(back(x).cls, enc.eval()(x).cls, atol=1e-6)
