"""The cross-attention pooling head (shapes, unit norm, padding) and the symmetric InfoNCE (hand reference,
symmetry, fixed vs learned scale)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tessera.align.head import CrossAttentionPooling
from tessera.align.loss import clip_loss, info_nce_directional
from tessera.align.towers import AlignModel, Tower
from tessera.models.spectrum import SpectrumEncoder


def test_head_shapes_and_unit_norm():
    torch.manual_seed(0)
    head = CrossAttentionPooling(token_dim=24, dim=32, heads=4, hidden=32)
    for t in (1, 7, 50):  # the output width does not depend on the token count
        z = head(torch.randn(5, t, 24))
        assert z.shape == (5, 32)
        assert torch.allclose(z.norm(dim=1), torch.ones(5), atol=1e-5)
    with pytest.raises(ValueError, match=r"\(B, T, 24\)"):
        head(torch.randn(2, 3, 23))


def test_head_padding_is_ignored():
    """Padded tokens change nothing, whatever their values; a fully padded sample is refused."""
    torch.manual_seed(0)
    head = CrossAttentionPooling(token_dim=8, dim=16, heads=4, hidden=16).eval()
    tokens = torch.randn(2, 6, 8)
    padding = torch.zeros(2, 6, dtype=torch.bool)
    padding[:, 4:] = True
    ref = head(tokens[:, :4])
    noisy = tokens.clone()
    noisy[:, 4:] = 1e3 * torch.randn(2, 2, 8)
    assert torch.allclose(head(noisy, padding), ref, atol=1e-5)
    assert not torch.allclose(head(noisy), ref, atol=1e-3)  # without the mask the junk tokens do matter
    with pytest.raises(ValueError, match="only padded"):
        head(tokens, torch.ones(2, 6, dtype=torch.bool))


def _reference_clip(a: torch.Tensor, b: torch.Tensor, s: float) -> float:
    """Seed 003 Eq. 1 written out with explicit sums, both directions averaged."""
    n = a.shape[0]
    total = 0.0
    for q, k in ((a, b), (b, a)):
        for i in range(n):
            sims = [s * float(q[i] @ k[j]) for j in range(n)]
            total += -(sims[i] - math.log(sum(math.exp(v) for v in sims)))
    return total / (2 * n)


def test_info_nce_matches_hand_computation_and_is_symmetric():
    torch.manual_seed(1)
    a = F.normalize(torch.randn(4, 3), dim=1)
    b = F.normalize(torch.randn(4, 3), dim=1)
    loss = clip_loss(a, b, 15.5)
    assert float(loss) == pytest.approx(_reference_clip(a, b, 15.5), rel=1e-5)
    assert float(clip_loss(b, a, 15.5)) == pytest.approx(float(loss), rel=1e-6)  # symmetric in the modalities
    # the directional parts differ in general: the symmetry comes from averaging both
    assert float(info_nce_directional(a, b, 15.5)) != pytest.approx(float(info_nce_directional(b, a, 15.5)), rel=1e-3)
    # perfectly matched unit pairs with distinct partners give a lower loss than a shuffled pairing
    assert float(clip_loss(a, a, 15.5)) < float(clip_loss(a, a[[1, 2, 3, 0]], 15.5))


def test_logit_scale_fixed_by_default_learned_as_option():
    spec = SpectrumEncoder(length=40, dim=16, depth=1, heads=2)
    head = CrossAttentionPooling(16, 16, 4, 16)
    fixed = AlignModel(Tower(spec, head), Tower(spec, head), 15.5)
    assert float(fixed.scale) == pytest.approx(15.5) and "log_scale" not in dict(fixed.named_parameters())
    learned = AlignModel(Tower(spec, head), Tower(spec, head), 15.5, learn_scale=True)
    assert "log_scale" in dict(learned.named_parameters())
    assert float(learned.scale.detach()) == pytest.approx(15.5, rel=1e-6)
