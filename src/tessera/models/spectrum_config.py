"""The spectrum tower's section of a pretraining config, ``model.spectrum`` (seed 003 §3.2; models/spectrum.py).

Kept apart from models/spectrum.py so that the config layer does not import torch."""

from __future__ import annotations

from dataclasses import dataclass

from tessera.errors import ConfigError


@dataclass
class SpectrumModelConfig:
    """A 1-D transformer over overlapping patches (seed 003 §3.2: width 20, stride 10). ``length``: the store's grid
    length, set by ``tessera pretrain`` from the corpus (as ``model.in_channels`` is: the data wins over a value
    written here); None until then."""

    length: int | None = None
    width: int = 20
    stride: int = 10
    dim: int = 128
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0

    def validate(self, key: str = "model.spectrum") -> None:
        for name in ("width", "stride", "dim", "depth", "heads"):
            if getattr(self, name) < 1:
                raise ConfigError(f"config key '{key}.{name}': must be >= 1, got {getattr(self, name)}")
        if self.dim % self.heads:
            raise ConfigError(f"config key '{key}.heads': {self.heads} does not divide {key}.dim = {self.dim}")
        if not self.mlp_ratio > 0:
            raise ConfigError(f"config key '{key}.mlp_ratio': must be > 0, got {self.mlp_ratio}")
        if self.length is not None and self.length < self.width:
            raise ConfigError(f"config key '{key}.length': {self.length} channels are fewer than one patch "
                              f"({key}.width = {self.width})")
