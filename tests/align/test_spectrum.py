"""The 1-D spectrum encoder: Z-scoring with stats, overlapping patches, masking of missing channels."""

from __future__ import annotations

import pytest
import torch

from tessera.align.towers import backbone_tokens
from tessera.models.spectrum import SpectrumEncoder, export_spectrum, load_spectrum, num_patches, zscore_spectra


def test_zscore_uses_valid_channels_only():
    x = torch.tensor([[[1.0, 2.0, 3.0, float("nan")]]])
    z, valid, stats = zscore_spectra(x)
    assert valid.tolist() == [[[1.0, 1.0, 1.0, 0.0]]]
    assert z[0, 0, 3] == 0
    assert float(stats[0, 0]) == pytest.approx(2.0)  # mean of 1, 2, 3
    assert float(stats[0, 1].exp()) == pytest.approx((2 / 3) ** 0.5, rel=1e-5)  # population std
    assert torch.allclose(z[0, 0, :3], (torch.tensor([1.0, 2.0, 3.0]) - 2) / (2 / 3) ** 0.5)


def test_patches_overlap_width_20_stride_10():
    enc = SpectrumEncoder(length=100, dim=16, depth=1, heads=2)
    assert enc.num_patch_tokens == num_patches(100, 20, 10) == 9
    out = enc(torch.randn(3, 1, 100))
    assert out.cls.shape == (3, 16) and out.registers.shape == (3, 1, 16) and out.patches.shape == (3, 9, 16)
    with pytest.raises(ValueError, match=r"\(B, 1, 100\)"):
        enc(torch.randn(3, 1, 90))


def test_missing_channels_are_padding_and_do_not_leak():
    """A patch of only missing channels is padding: whatever its token holds (here: junk added to its position
    embeddings) changes neither the CLS token nor the mean-patch readout; with the channels present it would."""
    torch.manual_seed(0)
    enc = SpectrumEncoder(length=60, dim=16, depth=2, heads=2).eval()
    x = torch.randn(2, 1, 60)
    x[:, :, 30:] = float("nan")  # patches starting at 30 and 40 (spans 30-49, 40-59) hold only missing channels
    tokens, pad = backbone_tokens(enc, x)
    assert tokens.shape == (2, 7, 16) and pad.shape == (2, 2 + 5)
    assert pad[:, :2].sum() == 0 and pad[0, 2:].tolist() == [False, False, False, True, True]
    full = torch.randn(2, 1, 60)
    ref, ref_mean, ref_full = enc(x).cls, enc(x).readout("mean_patch"), enc(full).cls
    assert torch.isfinite(ref).all()
    with torch.no_grad():
        enc.position_embeddings[:, 2 + 3 :] += 100 * torch.randn(1, 2, 16)
    assert torch.allclose(enc(x).cls, ref, atol=1e-5)
    assert torch.allclose(enc(x).readout("mean_patch"), ref_mean, atol=1e-5)
    assert not torch.allclose(enc(full).cls, ref_full, atol=1e-3)


def test_export_and_load_roundtrip(tmp_path):
    torch.manual_seed(0)
    enc = SpectrumEncoder(length=50, dim=16, depth=1, heads=2).eval()
    export_spectrum(enc, tmp_path / "spec")
    back = load_spectrum(tmp_path / "spec")
    x = torch.randn(2, 1, 50)
    assert torch.allclose(back(x).cls, enc(x).cls)
    from tessera.models.load import load

    assert torch.allclose(load(str(tmp_path / "spec")).module(x).cls, enc(x).cls)
