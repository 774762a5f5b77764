"""Super-resolution head on an encoder's patch-token grid (seed 001 §4: PixelShuffle stages, 16x16 -> 64x64).

Tokenization of the low-resolution input (the choice issue 16 leaves open): the 16x16 LR image is upsampled
bicubically to the encoder's input size (64) and patchified as in pretraining. With patch 4 the token grid is
16x16: exactly one token per LR pixel, each token covering the 4x4 HR block that LR pixel averages. So the
encoder sees images at the scale and token count it was pretrained on (no new patch embedding to learn, no
position-embedding interpolation), and the grid the head upsamples has the LR image's own geometry.

Head: tokens (B, L, D) -> grid (B, D, g, g) -> 1x1 conv to ``width`` -> ``stages`` x [3x3 conv to 4 x width,
PixelShuffle(2), GELU, 3x3 conv, GELU] -> 3x3 conv to C channels. Two x2 stages take a 16x16 grid to 64x64.
With ``residual`` the head predicts a correction to the bicubic upsampling of the LR image (global residual
learning, VDSR, Kim et al. 2016), so an untrained head starts near the bicubic baseline rather than at noise.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def tokens_to_grid(patches: torch.Tensor) -> torch.Tensor:
    """patches (B, L, D) in row-major grid order -> (B, D, g, g) with g = sqrt(L)."""
    b, n, d = patches.shape
    g = math.isqrt(n)
    if g * g != n:
        raise ValueError(f"{n} patch tokens do not form a square grid")
    return patches.transpose(1, 2).reshape(b, d, g, g)


class PixelShuffleStage(nn.Sequential):
    """(B, W, h, w) -> (B, W, 2h, 2w): conv 3x3 to 4W, PixelShuffle(2), GELU, conv 3x3, GELU."""

    def __init__(self, width: int):
        super().__init__(
            nn.Conv2d(width, 4 * width, 3, padding=1), nn.PixelShuffle(2), nn.GELU(),
            nn.Conv2d(width, width, 3, padding=1), nn.GELU(),
        )  # fmt: skip


class SuperResolutionHead(nn.Module):
    """Patch tokens (B, L, D) [+ the LR image (B, C, h, w) for the residual] -> (B, C, g * 2**stages, same)."""

    def __init__(self, dim: int, channels: int = 1, width: int = 64, stages: int = 2, residual: bool = True):
        super().__init__()
        self.channels, self.stages, self.residual = channels, stages, residual
        self.proj = nn.Sequential(nn.Conv2d(dim, width, 1), nn.GELU())
        self.up = nn.Sequential(*[PixelShuffleStage(width) for _ in range(stages)])
        self.out = nn.Conv2d(width, channels, 3, padding=1)
        if residual:  # start exactly at the bicubic baseline: the correction is zero before training
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

    def forward(self, patches: torch.Tensor, lr: torch.Tensor | None = None) -> torch.Tensor:
        """patches: (B, L, D); lr: (B, C, h, w) in [0, 1], needed when ``residual``. Returns (B, C, S, S)."""
        y = self.out(self.up(self.proj(tokens_to_grid(patches))))
        if not self.residual:
            return y
        if lr is None:
            raise ValueError("a residual super-resolution head needs the LR image")
        return y + bicubic_upsample(lr, y.shape[-1])


def bicubic_upsample(images: torch.Tensor, size: int) -> torch.Tensor:
    """(B, C, h, w) -> (B, C, size, size), bicubic (align_corners=False) clamped to [0, 1]: the SR baseline."""
    return F.interpolate(images, size=(size, size), mode="bicubic", align_corners=False).clamp(0.0, 1.0)
