"""Continued-pretraining configuration: the model, the views, the objectives and the engine, one section each.

Presets ``cpu`` and ``paper`` (``tessera/configs/*.yaml``) hold these four top-level sections. Every value of
seed 000 Table 5 is a key here, so a run is reproduced from its own ``config.yaml``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from tessera.config import load_yaml_source, parse_override, resolve_config
from tessera.errors import ConfigError
from tessera.models.config import ModelConfig
from tessera.views.config import ViewConfig

Branch = Literal["reconstruction", "contrastive", "two-stage"]
STAGE_BRANCHES: dict[str, tuple[str, ...]] = {
    "reconstruction": ("reconstruction",),
    "contrastive": ("contrastive",),
    # seed 000 §5.4: phase 1 reconstruction, phase 2 contrastive initialized from the phase-1 encoder.
    "two-stage": ("reconstruction", "contrastive"),
}


@dataclass
class ObjectiveConfig:
    """Loss families and their weights (seed 000 §6-7, Eq. 2-16) and the temperature schedule (§8.2.4)."""

    reconstruction: Literal["l2", "l2_l1", "l2_bl1"] = "l2"
    l1_weight: float = 0.1
    bl1_weight: float = 0.1
    contrastive: Literal["infonce", "hcl", "soft_hcl"] = "soft_hcl"
    beta: float = 1.0
    tau_plus: float = 0.0
    alpha: float = 0.5
    tau_h: float = 0.15
    # seed 000 §8.2.4: tau warmed linearly 0.20 -> 0.10 over the first 15% of training, then fixed.
    temperature_start: float = 0.20
    temperature_end: float = 0.10
    temperature_warmup_fraction: float = 0.15

    def validate(self) -> None:
        for key in ("temperature_start", "temperature_end"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"config key 'objective.{key}': must be > 0, got {getattr(self, key)}")
        if not 0.0 <= self.temperature_warmup_fraction <= 1.0:
            raise ConfigError(
                f"config key 'objective.temperature_warmup_fraction': must be in [0, 1], got {self.temperature_warmup_fraction}"
            )
        for key in ("l1_weight", "bl1_weight", "beta"):
            if getattr(self, key) < 0:
                raise ConfigError(f"config key 'objective.{key}': must be >= 0, got {getattr(self, key)}")


@dataclass
class TrainConfig:
    """The engine: branch, steps, batch sizes, optimizer and schedule, precision, checkpoints, logging (Table 5)."""

    branch: Branch = "two-stage"
    max_steps: int = 1000  # optimizer steps per stage
    # If set, each stage's optimizer steps are derived from the corpus size instead: ceil(epochs * N / images
    # per update) (seed 000 Table 5 counts 35 epochs). A user override of train.max_steps clears it.
    epochs: float | None = None
    # Per-device micro-batches (images before view replication); seed 000 §8.2.3-8.2.4.
    batch_size_reconstruction: int = 256
    batch_size_contrastive: int = 64
    # Images per optimizer update over all devices, reached by gradient accumulation (§8.2); None = one micro-batch.
    effective_batch: int | None = 2048
    lr: float = 5e-4
    min_lr: float = 0.0
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_fraction: float = 0.15
    grad_clip_reconstruction: float = 1.0
    grad_clip_contrastive: float = 3.0
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU
    device: str = "auto"  # auto: cuda:LOCAL_RANK when CUDA is available, else cpu
    seed: int = 42
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    log_every: int = 10
    gather_with_grad: bool = False  # contrastive keys from other ranks carry gradient (DESIGN §4 default: no)
    collapse_threshold: float = 0.2  # warn when std(l2-normalized embeddings) * sqrt(D) falls below this
    tensorboard: bool = False
    progress: bool = True

    def validate(self) -> None:
        positive_ints = ("max_steps", "batch_size_reconstruction", "batch_size_contrastive", "checkpoint_every")
        for key in positive_ints + ("keep_checkpoints", "log_every"):
            if getattr(self, key) < 1:
                raise ConfigError(f"config key 'train.{key}': must be >= 1, got {getattr(self, key)}")
        if self.epochs is not None and not self.epochs > 0:
            raise ConfigError(f"config key 'train.epochs': must be > 0 or null, got {self.epochs}")
        if self.effective_batch is not None and self.effective_batch < 1:
            raise ConfigError(f"config key 'train.effective_batch': must be >= 1 or null, got {self.effective_batch}")
        if not self.lr > 0:
            raise ConfigError(f"config key 'train.lr': must be > 0, got {self.lr}")
        if not 0 <= self.min_lr <= self.lr:
            raise ConfigError(f"config key 'train.min_lr': must be in [0, train.lr], got {self.min_lr}")
        if self.weight_decay < 0:
            raise ConfigError(f"config key 'train.weight_decay': must be >= 0, got {self.weight_decay}")
        if not all(0.0 <= b < 1.0 for b in self.betas):
            raise ConfigError(f"config key 'train.betas': each must be in [0, 1), got {list(self.betas)}")
        if not 0.0 <= self.warmup_fraction < 1.0:
            raise ConfigError(f"config key 'train.warmup_fraction': must be in [0, 1), got {self.warmup_fraction}")
        for key in ("grad_clip_reconstruction", "grad_clip_contrastive"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"config key 'train.{key}': must be > 0, got {getattr(self, key)}")
        if self.collapse_threshold < 0:
            raise ConfigError(f"config key 'train.collapse_threshold': must be >= 0, got {self.collapse_threshold}")

    @property
    def stages(self) -> tuple[str, ...]:
        """The objective of each stage, in order."""
        return STAGE_BRANCHES[self.branch]

    def batch_size(self, objective: str) -> int:
        return self.batch_size_reconstruction if objective == "reconstruction" else self.batch_size_contrastive

    def grad_clip(self, objective: str) -> float:
        return self.grad_clip_reconstruction if objective == "reconstruction" else self.grad_clip_contrastive


@dataclass
class PretrainConfig:
    """Everything ``tessera pretrain`` needs; the resolved copy is written to ``RUN/config.yaml``."""

    model: ModelConfig = field(default_factory=ModelConfig)
    views: ViewConfig = field(default_factory=ViewConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def validate(self) -> None:
        """Reject configs that cannot work before any data is read (errors name the key)."""
        self.train.validate()
        self.objective.validate()
        stages = self.train.stages
        if "reconstruction" in stages and not 0.0 < self.model.mask_ratio < 1.0:
            raise ConfigError(f"config key 'model.mask_ratio': must be in (0, 1), got {self.model.mask_ratio}")
        if "contrastive" in stages and self.train.batch_size_contrastive < 2:
            # A contrastive batch of one image has no negatives (seed 000 Eq. 8: the denominator needs other samples).
            raise ConfigError(
                f"config key 'train.batch_size_contrastive': a contrastive batch needs at least 2 images, "
                f"got {self.train.batch_size_contrastive}"
            )


def _user_sets_output_size(source: str | None, overrides: list[str] | tuple[str, ...]) -> bool:
    """Whether the preset/YAML or an override names ``views.output_size`` explicitly."""
    if source:
        views = load_yaml_source(source).get("views") or {}
        if isinstance(views, dict) and "output_size" in views:
            return True
    return any(parse_override(text)[0] == ["views", "output_size"] for text in overrides)


def model_image_size(model_cfg: ModelConfig) -> int:
    """The input size of the model a ModelConfig builds: ``image_size`` or its preset's."""
    if model_cfg.image_size is not None:
        return int(model_cfg.image_size)
    from tessera.models.presets import MODEL_PRESETS

    preset: dict[str, Any] = MODEL_PRESETS.get(model_cfg.preset, {})
    if "image_size" not in preset:
        raise ConfigError(f"config key 'model.preset': preset '{model_cfg.preset}' has no image_size")
    return int(preset["image_size"])


def resolve_pretrain_config(source: str | None = None, overrides: list[str] | tuple[str, ...] = ()) -> PretrainConfig:
    """Defaults -> preset/YAML -> overrides; the views' output size follows the model unless the user set it."""
    cfg = resolve_config(PretrainConfig, source, overrides)
    keys = [parse_override(text)[0] for text in overrides]
    if ["train", "max_steps"] in keys and ["train", "epochs"] not in keys and cfg.train.epochs is not None:
        # An explicit step count wins over a preset's epoch count.
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=None))
    if not _user_sets_output_size(source, overrides):
        size = model_image_size(cfg.model)
        cfg = dataclasses.replace(cfg, views=dataclasses.replace(cfg.views, output_size=size))
    return cfg
