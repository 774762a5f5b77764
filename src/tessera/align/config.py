"""AlignConfig: the settings of ``tessera align`` (defaults -> YAML -> ``key=value``; saved as RUN/config.yaml).

Defaults follow seed 003 App. B3: AdamW lr 1e-4, weight decay 0.01, cosine schedule, fixed logit scale 15.5,
a head of dimension 512 with 4 heads and two linear layers of 512.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tessera.errors import ConfigError


@dataclass
class HeadConfig:
    dim: int = 512
    heads: int = 4
    hidden: int = 512

    def validate(self) -> None:
        if self.dim < 1 or self.heads < 1 or self.hidden < 1:
            raise ConfigError("config key 'head': dim, heads and hidden must be positive")
        if self.dim % self.heads:
            raise ConfigError(f"config key 'head.heads': {self.heads} does not divide head.dim {self.dim}")


@dataclass
class AlignTrainConfig:
    lr: float = 1e-4
    min_lr: float = 0.0
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_fraction: float = 0.0
    batch_size: int = 64  # pairs per process; negatives = batch_size * processes - 1 per query
    max_steps: int = 500
    grad_clip: float = 1.0
    logit_scale: float = 15.5  # seed 003 App. B3.2: fixed, found better than learned
    learn_logit_scale: bool = False
    trainable_blocks: int = 0  # last K blocks of each backbone trained; 0 = frozen backbones
    augment: bool = True  # random flips and quarter turns of image inputs (seed 003 App. B3.2)
    checkpoint_every: int = 100
    keep_checkpoints: int = 2
    log_every: int = 10
    seed: int = 0
    device: str = "auto"
    progress: bool = True

    def validate(self) -> None:
        checks = {
            "lr": self.lr > 0, "min_lr": 0 <= self.min_lr <= self.lr, "weight_decay": self.weight_decay >= 0,
            "warmup_fraction": 0 <= self.warmup_fraction < 1, "batch_size": self.batch_size >= 2,
            "max_steps": self.max_steps >= 1, "grad_clip": self.grad_clip > 0, "logit_scale": self.logit_scale > 0,
            "trainable_blocks": self.trainable_blocks >= 0, "checkpoint_every": self.checkpoint_every >= 1,
            "keep_checkpoints": self.keep_checkpoints >= 1, "log_every": self.log_every >= 1,
        }
        for key, ok in checks.items():
            if not ok:
                raise ConfigError(f"config key 'train.{key}': invalid value {getattr(self, key)!r}")


@dataclass
class AlignDataConfig:
    holdout_fraction: float = 0.2  # objects held out of the alignment, retrieved among themselves afterwards
    common_field: bool = True  # frdeep-pairs: cut both images to their common sky field (evaluate/pairs.py)
    match_radius_arcsec: float | None = None  # match:A,B pairs: the sky-position join radius (--match-radius)
    max_pairs: int | None = None  # use at most this many pairs (seeded choice), e.g. for quick runs
    split_seed: int = 0
    ks: tuple[int, ...] = (1, 5, 10)
    retrieval_center: bool = True  # subtract each set's mean before the cosine (evaluate/retrieval.py's default)
    knn_k: int = 16  # zero-shot k-NN regression of the targets (seed 003 §6: k = 16)

    def validate(self) -> None:
        if not 0.0 < self.holdout_fraction < 1.0:
            raise ConfigError(f"config key 'data.holdout_fraction': must be in (0, 1), got {self.holdout_fraction}")
        if self.max_pairs is not None and self.max_pairs < 4:
            raise ConfigError(f"config key 'data.max_pairs': need at least 4 pairs, got {self.max_pairs}")
        if not self.ks or min(self.ks) < 1:
            raise ConfigError(f"config key 'data.ks': positive integers expected, got {list(self.ks)}")
        if self.knn_k < 1:
            raise ConfigError(f"config key 'data.knn_k': must be >= 1, got {self.knn_k}")


@dataclass
class AlignConfig:
    a: str = ""  # tower a's backbone ref (--a)
    b: str = ""  # tower b's backbone ref (--b)
    pairs: str = ""  # frdeep-pairs:PATH or a CSV of path_a,path_b[,targets...] (--pairs)
    head: HeadConfig = field(default_factory=HeadConfig)
    train: AlignTrainConfig = field(default_factory=AlignTrainConfig)
    data: AlignDataConfig = field(default_factory=AlignDataConfig)

    def validate(self) -> None:
        for key in ("a", "b", "pairs"):
            if not getattr(self, key):
                raise ConfigError(f"config key '{key}': required (--{key})")
