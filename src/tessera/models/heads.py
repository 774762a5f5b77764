"""Heads on top of the encoder. The MAE decoder is HF's ``ViTMAEDecoder`` (kept as is, seed 000 §5.1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ProjectionHead(nn.Module):
    """Contrastive projection head (seed 000 §5.2).

    Linear(D, hidden) -> LayerNorm -> ReLU -> Linear(hidden, out) -> BatchNorm1d, then l2-normalized.
    x: (N, D) -> (N, out). Under DDP the trainer converts the BatchNorm to SyncBatchNorm.
    ``batchnorm=False`` drops the output BatchNorm (an ablation, not the seed's head).
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
