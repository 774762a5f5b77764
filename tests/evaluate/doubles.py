"""A tiny encoder test double with the tessera Encoder interface, and synthetic labeled sets.

The double pools the (bicubically resized) image to a 4x4 grid, embeds it linearly and applies residual
tanh blocks: features keep where the emission is, so classes defined by *where* a blob sits (centre, corner,
edge; all D4-invariant) are linearly separable in its feature space by construction.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tessera.evaluate.datasets import LabeledSet

CLASSES = ["centre", "corner", "edge"]


class TinyNet(nn.Module):
    def __init__(self, in_channels: int = 1, dim: int = 24, depth: int = 3, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.embed = nn.Linear(in_channels * 16, dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, dim))
        self.blocks = nn.ModuleList(nn.Linear(dim, dim) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.drop = nn.Dropout(0.5)  # makes train/eval mode observable

    def forward(self, x: torch.Tensor, layer: int = -1) -> torch.Tensor:
        """x: (B, C, S, S) -> (B, D)."""
        h = self.embed(F.adaptive_avg_pool2d(x, 4).flatten(1) * 4.0) + self.pos_embed
        for block in self.blocks[: layer % len(self.blocks) + 1]:
            h = h + 0.1 * torch.tanh(self.drop(block(h)))
        return self.norm(h)


class TinyEncoder:
    """embed/tokens/features/layer_id_of/fingerprint/image_size/num_layers/hidden_size/module."""

    def __init__(self, in_channels: int = 1, dim: int = 24, depth: int = 3, image_size: int = 32, seed: int = 0,
                 name: str = "tiny-double"):
        self.module = TinyNet(in_channels, dim, depth, seed)
        self.image_size = image_size
        self.num_layers = depth
        self.hidden_size = dim
        self.name = name
        self.embed_calls = 0

    @property
    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for name, p in sorted(self.module.state_dict().items()):
            h.update(name.encode())
            h.update(p.detach().cpu().numpy().tobytes())
        return h.hexdigest()[:16]

    def layer_id_of(self, name: str) -> int:
        if name.startswith("blocks."):
            return int(name.split(".")[1]) + 1
        if name.startswith("norm."):
            return self.num_layers  # final norm belongs to the last block
        return 0

    def _prepare(self, images):
        x = torch.as_tensor(images, dtype=torch.float32)
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bicubic", align_corners=False).clamp(0,
                1)
        return x

    def features(self, images, layer: int = -1, readout: str | None = None) -> torch.Tensor:
        return self.module(self._prepare(images), layer=layer)

    def embed(self, images, readout: str | None = "mean_patch", layer: int = -1) -> torch.Tensor:
        self.embed_calls += 1
        was = self.module.training
        self.module.eval()
        with torch.no_grad():
            out = self.features(images, layer=layer, readout=readout)
        self.module.train(was)
        return out

    def tokens(self, images):
        f = self.embed(images)
        return {"cls": f, "registers": f[:, :0, None].expand(-1, 0, f.shape[1]), "patches": f[:, None]}


def blob_image(cls: int, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """(size, size) image, a Gaussian blob at the centre (0), a random corner (1) or a random edge midpoint (2)."""
    q = size / 8
    centre = [(size / 2, size / 2)]
    corners = [(q, q), (q, size - q), (size - q, q), (size - q, size - q)]
    edges = [(q, size / 2), (size / 2, q), (size - q, size / 2), (size / 2, size - q)]
    options = (centre, corners, edges)[cls]
    cy, cx = options[rng.integers(len(options))]
    cy, cx = cy + rng.normal(0, 0.7), cx + rng.normal(0, 0.7)
    yy, xx = np.mgrid[0:size, 0:size]
    img = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (size / 12) ** 2))
    return (img * rng.uniform(0.7, 1.0) + rng.normal(0, 0.03, img.shape)).clip(0, 1).astype(np.float32)


def synthetic_set(n_per_class: int = 30, seed: int = 0, size: int = 32) -> LabeledSet:
    """In-memory LabeledSet of blob images (already in [0, 1])."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(CLASSES)), n_per_class)
    images = [blob_image(int(c), rng, size)[None].astype(np.float16) for c in labels]
    import pandas as pd

    sources = [f"synthetic#{i}" for i in range(len(labels))]
    return LabeledSet(images=images, labels=labels.astype(np.int64), classes=list(CLASSES), sources=sources,
                      meta=pd.DataFrame({"source": sources}), excluded=[],
                      data_key=f"synthetic-{n_per_class}-{seed}-{size}")


def write_synthetic_csv(root, n_per_class: int = 12, seed: int = 0, size: int = 32):
    """Blob images as .npy files plus labels.csv (path,label,survey) under ``root``; returns the CSV path."""
    from pathlib import Path

    root = Path(root)
    (root / "img").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = ["path,label,survey"]
    for c, name in enumerate(CLASSES):
        for i in range(n_per_class):
            rel = f"img/{name}_{i}.npy"
            np.save(root / rel, blob_image(c, rng, size) * 100.0)
            rows.append(f"{rel},{name},SYN")
    csv = root / "labels.csv"
    csv.write_text("\n".join(rows) + "\n")
    return csv
