"""Typed configuration of ``tessera evaluate`` (seed 000 §9 defaults).

Resolved with ``tessera.config.resolve_config(EvalConfig, source, overrides, section="evaluate")`` and
saved next to the results, so every number can be traced back to the exact protocol that produced it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tessera.errors import ConfigError


@dataclass
class LinearConfig:
    """Strict linear probe on frozen features (seed 000 §9.2)."""

    epochs: int = 20
    lr: float = 5e-3
    weight_decay: float = 0.05
    warmup_ratio: float = 0.05
    grad_clip: float = 1.0
    batch_size: int = 256
    # Not the seed's strict probe: z-score each feature with the training fold's mean/std first (MAE's linear
    # probe does this with a BatchNorm without affine). The classifier stays linear in the features.
    standardize: bool = False


@dataclass
class FinetuneConfig:
    """Full fine-tuning with layer-wise lr decay (seed 000 §9.3)."""

    epochs: int = 20
    lr: float = 5e-4
    head_lr_mult: float = 10.0
    layer_decay: float = 0.65
    weight_decay: float = 0.05
    warmup_ratio: float = 0.2
    grad_clip: float = 1.0
    batch_size: int = 256
    dropout: float = 0.0
    bf16_cuda: bool = True


@dataclass
class KnnConfig:
    """Weighted k-NN on l2-normalized features (DINO-style votes)."""

    k: int = 20
    temperature: float = 0.07
    standardize: bool = False  # z-score with the training fold's mean/std before l2-normalizing (not DINO's k-NN)


@dataclass
class EvalConfig:
    """Everything that defines an evaluation; defaults follow seed 000 §9.1."""

    folds: int = 3
    seed: int = 0
    readout: str = "auto"  # "auto" = the encoder's default_readout if it has one, else mean_patch (§10.1)
    layer: int = -1  # block whose output is read out (-1 = last, seed 000 Eq. 17)
    sweep_layers: bool = False  # probe every block and plot macro-F1 against depth
    hdu: int | None = None  # FITS HDU to read (None = first image HDU)
    max_per_class: int | None = None  # seeded subset per class (quick runs); None = all
    extract_batch_size: int = 64
    cache_dir: str | None = None  # None = OUT/cache
    device: str | None = None  # None = the encoder's device
    progress: bool = True
    linear: LinearConfig = field(default_factory=LinearConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    knn: KnnConfig = field(default_factory=KnnConfig)

    def validate(self) -> None:
        if self.folds < 2:
            raise ConfigError(f"config key 'folds': need at least 2 folds, got {self.folds}")
        if self.readout not in ("auto", "mean_patch", "cls"):
            raise ConfigError(f"config key 'readout': {self.readout!r} is not one of 'auto', 'mean_patch', 'cls'")
        if self.max_per_class is not None and self.max_per_class < self.folds:
            raise ConfigError(f"config key 'max_per_class': must be >= folds ({self.folds}), got {self.max_per_class}")
        if self.extract_batch_size < 1:
            raise ConfigError("config key 'extract_batch_size': must be >= 1")
        for name, sub in (("linear", self.linear), ("finetune", self.finetune)):
            if sub.epochs < 1:
                raise ConfigError(f"config key '{name}.epochs': must be >= 1, got {sub.epochs}")
            if sub.batch_size < 1:
                raise ConfigError(f"config key '{name}.batch_size': must be >= 1, got {sub.batch_size}")
            if not 0.0 <= sub.warmup_ratio < 1.0:
                raise ConfigError(f"config key '{name}.warmup_ratio': must be in [0, 1), got {sub.warmup_ratio}")
        if not 0.0 < self.finetune.layer_decay <= 1.0:
            raise ConfigError(f"config key 'finetune.layer_decay': must be in (0, 1], got {self.finetune.layer_decay}")
        if not 0.0 <= self.finetune.dropout < 1.0:
            raise ConfigError(f"config key 'finetune.dropout': must be in [0, 1), got {self.finetune.dropout}")
        if self.knn.k < 1:
            raise ConfigError(f"config key 'knn.k': must be >= 1, got {self.knn.k}")
        if self.knn.temperature <= 0:
            raise ConfigError(f"config key 'knn.temperature': must be > 0, got {self.knn.temperature}")
