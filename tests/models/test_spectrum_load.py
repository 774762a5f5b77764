"""A spectrum encoder exported by tessera embeds spectra through tessera.load's Encoder interface (issue 14)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tessera
from tessera.models.spectrum import SpectrumEncoder, export_spectrum


def test_load_of_an_exported_spectrum_encoder_embeds_spectra(tmp_path):
    torch.manual_seed(0)
    encoder = SpectrumEncoder(60, in_channels=1, width=20, stride=10, dim=16, depth=1, heads=2).eval()
    export_spectrum(encoder, tmp_path / "model")
    loaded = tessera.load(str(tmp_path / "model"))
    spectra = np.random.default_rng(0).normal(1.0, 0.1, (3, 1, 60)).astype(np.float32)
    spectra[1, 0, 5:15] = np.nan  # missing channels are part of the 1-D contract
    emb = loaded.embed(spectra)
    assert emb.shape == (3, 16) and torch.isfinite(torch.as_tensor(emb)).all()
    with torch.no_grad():
        expected = encoder(torch.from_numpy(spectra)).readout("mean_patch")
    assert torch.allclose(torch.as_tensor(emb), expected, atol=1e-5)
    with pytest.raises(ValueError, match="expects 60"):
        loaded.embed(spectra[..., :50])
    with pytest.raises(ValueError, match=r"\(B, C, L\)"):
        loaded.embed(spectra[0])
