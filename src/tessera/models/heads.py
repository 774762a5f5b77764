"""Heads on top of the encoder. The MAE decoder is HF's ``ViTMAEDecoder`` (kept as is, seed 000 §5.1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ProjectionHead(nn.Module):
    """Contrastive projection head (seed 000 §5.2).

    Linear(D, hidden) -> LayerNorm -> ReLU -> Linear(hidden, out) -> BatchNorm1d, then l2-normalized.
    x: (N, D) -> (N, out). Under DDP the trainer converts the BatchNorm to SyncBatchNorm.
    ``batchnorm=False`` drops the output BatchNorm (an ablation, not seed 000's head).
    """

    def __init__(self, in_dim: int, hidden_dim: int = 2048, out_dim: int = 128, batchnorm: bool = True):
        super().__init__()
        self.fc1 = nn.Linear(in_dim, hidden_dim)
        self.norm = nn.LayerNorm(hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, out_dim)
        self.bn = nn.BatchNorm1d(out_dim) if batchnorm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.norm(self.fc1(x)))
        return F.normalize(self.bn(self.fc2(h)), dim=-1)


class MLPHead(nn.Module):
    """BYOL projector / predictor (Grill et al. 2020 §3.3): Linear(D, hidden) -> BatchNorm1d -> ReLU ->
    Linear(hidden, out). x: (N, D) -> (N, out), not normalized (the loss normalizes)."""

    def __init__(self, in_dim: int, hidden_dim: int = 4096, out_dim: int = 256):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True), nn.Linear(hidden_dim,
                out_dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class DINOHead(nn.Module):
    """DINO projection head (Caron et al. 2021 §3.1, App. "Projection head"): a 3-layer MLP (hidden 2048, GELU)
    to a bottleneck of 256, l2-normalization, then a weight-normalized linear layer onto K prototypes with the
    norm fixed to 1 (DINO's ``norm_last_layer``): the logits are cosine similarities to the prototypes.

    x: (N, D) -> logits (N, K). The prototypes are ``last_layer`` (K, bottleneck); the trainer can freeze them
    for the first steps (DINO's ``freeze_last_layer``). iBOT/DINOv2 use a second, untied head of the same shape
    for the patch tokens.
    """

    def __init__(self, in_dim: int, prototypes: int, hidden_dim: int = 2048, bottleneck: int = 256):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(in_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, hidden_dim), nn.GELU(),
            nn.Linear(hidden_dim, bottleneck),
        )
        for m in self.mlp:
            if isinstance(m, nn.Linear):  # DINO: trunc_normal(std=0.02) weights, zero bias
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        self.last_layer = nn.Parameter(torch.empty(prototypes, bottleneck))
        nn.init.trunc_normal_(self.last_layer, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = F.normalize(self.mlp(x), dim=-1)
        return F.linear(z, F.normalize(self.last_layer, dim=-1))
