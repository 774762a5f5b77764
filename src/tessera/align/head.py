"""The cross-attention pooling head of AstroCLIP (seed 003 §3.3, App. B3.1).

One learned query ``q`` (dimension 512) attends, with 4 heads, over all final-layer tokens of a tower (CLS,
registers, patches; keys and values are the tokens of the backbone's width); the single output vector then goes
through LayerNorm and two linear layers of 512 with a GELU between them (a residual MLP, as a transformer
block's), and is l2-normalized so the InfoNCE's dot products are cosine similarities (seed 003 Eq. 2). The
output width does not depend on how many tokens come in, so a 64-token image and a 200-token spectrum land in
the same space.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CrossAttentionPooling(nn.Module):
    """tokens (B, T, token_dim) [+ padding (B, T) bool, True = padded] -> (B, dim), unit l2 norm."""

    def __init__(self, token_dim: int, dim: int = 512, heads: int = 4, hidden: int = 512):
        super().__init__()
        if dim % heads:
            raise ValueError(f"head dim {dim} must be a multiple of heads {heads}")
        self.token_dim, self.dim, self.heads, self.hidden = int(token_dim), int(dim), int(heads), int(hidden)
        # Small random init (std 0.02, as ViT's CLS token) so the head starts near uniform attention.
        self.query = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.attention = nn.MultiheadAttention(dim, heads, kdim=token_dim, vdim=token_dim, batch_first=True)
        self.norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def pool(self, tokens: torch.Tensor, padding: torch.Tensor | None = None) -> torch.Tensor:
        """The attention output z* (seed 003 §3.3): tokens (B, T, Dt), padding (B, T) -> (B, dim), not normalized."""
        if tokens.ndim != 3 or tokens.shape[-1] != self.token_dim:
            raise ValueError(f"tokens must be (B, T, {self.token_dim}), got {tuple(tokens.shape)}")
        if padding is not None:
            if padding.shape != tokens.shape[:2]:
                raise ValueError(f"padding must be (B, T) = {tuple(tokens.shape[:2])}, got {tuple(padding.shape)}")
            if bool(padding.all(dim=1).any()):
                raise ValueError("a sample has only padded tokens: nothing to attend to")
        query = self.query.expand(tokens.shape[0], -1, -1).to(tokens.dtype)
        z, _ = self.attention(query, tokens, tokens, key_padding_mask=padding, need_weights=False)
        return z[:, 0]

    def forward(self, tokens: torch.Tensor, padding: torch.Tensor | None = None) -> torch.Tensor:
        z = self.norm(self.pool(tokens, padding))
        z = z + self.mlp(z)
        return F.normalize(z, dim=-1)

    def settings(self) -> dict:
        return {"token_dim": self.token_dim, "dim": self.dim, "heads": self.heads, "hidden": self.hidden}
