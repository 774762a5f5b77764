"""Input adapter: [0, 1] views -> what the backbone expects (DESIGN §3.1, seed 000 §8.1).

Data keep their own channels (radio: C = 1) up to here. The adapter replicates a single channel to the
backbone's ``num_channels`` (3 for ImageNet checkpoints) and applies per-channel mean/std: ImageNet
statistics when continuing from an ImageNet checkpoint, identity from scratch (inputs are already
ZScale-normalized to [0, 1]). Its settings are saved with the model so evaluation matches pretraining.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _per_channel(values: Sequence[float], channels: int, what: str) -> list[float]:
    """Stats for ``channels`` channels: as given, or averaged when a 3-value stat meets a 1-channel backbone."""
    values = [float(v) for v in values]
    if len(values) == channels:
        return values
    if len(values) == 1:
        return values * channels
    if channels == 1:
        return [sum(values) / len(values)]
    raise ValueError(f"input adapter: {what} has {len(values)} values for a {channels}-channel backbone")


class InputAdapter(nn.Module):
    """Replicate channels and normalize: ``x01: (N, C, H, W)`` in [0, 1] -> ``(N, out_channels, H, W)``.

    ``C`` must equal ``out_channels`` or be 1 (replicated). mean/std are non-persistent buffers: they are
    configuration, saved in tessera.json / preprocessor_config.json, not weights.
    """

    def __init__(self, out_channels: int, mean: Sequence[float], std: Sequence[float], norm: str = "custom"):
        super().__init__()
        self.out_channels = int(out_channels)
        self.norm = norm
        mean_t = torch.tensor(_per_channel(mean, out_channels, "mean")).view(1, -1, 1, 1)
        std_t = torch.tensor(_per_channel(std, out_channels, "std")).view(1, -1, 1, 1)
        if (std_t <= 0).any():
            raise ValueError(f"input adapter: std must be positive, got {std_t.flatten().tolist()}")
        self.register_buffer("mean", mean_t, persistent=False)
        self.register_buffer("std", std_t, persistent=False)

    @classmethod
    def build(cls, norm: str, out_channels: int) -> "InputAdapter":
        """``norm`` "imagenet" or "identity" (mean 0, std 1)."""
        if norm == "imagenet":
            return cls(out_channels, IMAGENET_MEAN, IMAGENET_STD, norm="imagenet")
        if norm == "identity":
            return cls(out_channels, (0.0,), (1.0,), norm="identity")
        raise ValueError(f"input adapter: unknown normalization {norm!r} (imagenet, identity)")

    def replicate(self, x01: torch.Tensor) -> torch.Tensor:
        """``x01: (N, C, H, W)`` -> ``(N, out_channels, H, W)``, still in [0, 1]."""
        if x01.ndim != 4:
            raise ValueError(f"input adapter: expected images (N, C, H, W), got shape {tuple(x01.shape)}")
        channels = x01.shape[1]
        if channels == self.out_channels:
            return x01
        if channels == 1:
            return x01.expand(-1, self.out_channels, -1, -1)
        raise ValueError(
            f"input adapter: images have {channels} channels but the backbone expects {self.out_channels} "
            "(only 1 -> N replication is supported)"
        )

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Per-channel ``(x - mean) / std`` on ``(N, out_channels, H, W)``."""
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def forward(self, x01: torch.Tensor) -> torch.Tensor:
        return self.normalize(self.replicate(x01))

    def to_dict(self) -> dict:
        """JSON-safe settings (saved in tessera.json)."""
        return {
            "norm": self.norm,
            "out_channels": self.out_channels,
            "mean": self.mean.flatten().tolist(),
            "std": self.std.flatten().tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "InputAdapter":
        return cls(int(data["out_channels"]), data["mean"], data["std"], norm=data.get("norm", "custom"))
