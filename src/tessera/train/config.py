"""Continued-pretraining configuration: the model, the views, the objectives and the engine, one section each.

Presets ``cpu`` and ``paper`` (``tessera/configs/*.yaml``) hold these four top-level sections. Every value of
seed 000 Table 5 is a key here, so a run is reproduced from its own ``config.yaml``.

Recipes (``tessera/configs/recipes/*.yaml``, :func:`list_recipes`; ``--config NAME`` finds a preset, then a
recipe, else reads a YAML path) are the same configs with a list of stages::

    base: cpu                       # optional: a preset or recipe loaded first, this file applied on top
    train:
      max_steps: 600                # default step count of EVERY stage (or train.epochs)
      stages:
        - reconstruction            # a bare registered objective name = {objective: NAME}
        - objective: contrastive    # objective.<...> settings of a registered objective
          max_steps: 300            # this stage only (wins over train.max_steps / train.epochs)
          init: exported            # encoder from the previous stage: exported (default) | teacher | scratch
          overrides: {objective.contrastive: infonce, train.lr: 1.0e-4}   # dotted keys, this stage only

``train.branch`` stays a shorthand: reconstruction | contrastive | two-stage | any registered objective; after
resolution ``train.stages`` is always explicit and ``branch`` is "recipe" when no shorthand matches. Stage
overrides may not change ``train.stages``/``train.branch``. Errors name the file and the full key
(``r.yaml: config key 'train.stages[1].objective': ...``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tessera.config import (
    PRESETS_DIR,
    _merge,
    _validate,
    available_presets,
    load_yaml_source,
    merge_overrides,
    parse_override,
)
from tessera.errors import ConfigError
from tessera.models.config import ModelConfig
from tessera.objectives.registry import OBJECTIVES, get_objective
from tessera.views.config import ViewConfig

# Shorthands of train.branch for the stage lists of seed 000 (§5.4); any registered objective name is also a
# one-stage shorthand (train.branch=dino), and "recipe" marks a run whose train.stages were written out.
STAGE_BRANCHES: dict[str, tuple[str, ...]] = {
    "reconstruction": ("reconstruction",),
    "contrastive": ("contrastive",),
    # seed 000 §5.4: phase 1 reconstruction, phase 2 contrastive initialized from the phase-1 encoder.
    "two-stage": ("reconstruction", "contrastive"),
}
RECIPE_BRANCH = "recipe"
FOLLOW_MODEL = None  # views.output_size sentinel: resize views to the model's input size
RECIPES_DIR = PRESETS_DIR / "recipes"
STAGE_INITS = ("exported", "teacher", "scratch")


@dataclass
class SeedObjectiveKeys:
    """Loss families and their weights (seed 000 §6-7, Eq. 2-16) and the temperature schedule (§8.2.4): the flat
    keys of the two objectives of seed 000 (reconstruction, contrastive), kept as they were. Every other registered
    objective adds its own section
    (``objective.<name>``, its ``settings_cls``) to :data:`ObjectiveConfig`."""

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
                "config key 'objective.temperature_warmup_fraction': must be in [0, 1], got "
                f"{self.temperature_warmup_fraction}"
            )
        for key in ("l1_weight", "bl1_weight", "beta"):
            if getattr(self, key) < 0:
                raise ConfigError(f"config key 'objective.{key}': must be >= 0, got {getattr(self, key)}")
        for f in dataclasses.fields(self):
            section = getattr(self, f.name)
            if dataclasses.is_dataclass(section):
                section.validate(f"objective.{f.name}")


def _objective_config_class() -> type:
    """``ObjectiveConfig``: the keys of seed 000's objectives plus one section per registered objective that declares
    settings."""
    sections = [
        (cls.section(), cls.settings_cls, field(default_factory=cls.settings_cls))
        for name, cls in OBJECTIVES.items()
        if cls.settings_cls is not None
    ]
    doc = "The objective section: the keys of seed 000 (SeedObjectiveKeys) and objective.<name> for " + ", ".join(
        n for n, *_ in sections
    )
    return dataclasses.make_dataclass(
        "ObjectiveConfig", sections, bases=(SeedObjectiveKeys,), namespace={"__doc__": doc, "__module__": __name__}
    )


ObjectiveConfig = _objective_config_class()


@dataclass
class StageConfig:
    """One stage of a recipe (``train.stages[i]``); a bare string ``NAME`` is ``{objective: NAME}``.

    ``objective``: a registered objective; ``max_steps``: this stage's optimizer steps (None: ``train.max_steps``,
    or ``train.epochs`` when set); ``init``: where the encoder starts from when a previous stage exists:
    "exported" (the encoder the previous stage exports: its teacher for DINO, the trained network otherwise;
    seed 000 §5.4), "teacher" (the previous stage's EMA teacher; needs one), "scratch" (no hand-over);
    ``overrides``: dotted keys applied to the whole config for this stage only (e.g. ``objective.contrastive``).
    """

    objective: str = ""
    max_steps: int | None = None
    init: Literal["exported", "teacher", "scratch"] = "exported"
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainConfig:
    """The engine: branch, steps, batch sizes, optimizer and schedule, precision, checkpoints, logging (Table 5)."""

    branch: str = "two-stage"  # reconstruction | contrastive | two-stage | any registered objective | recipe
    # The recipe: a list of stages (StageConfig or a bare objective name), filled from ``branch`` when not given.
    stages: tuple[Any, ...] = ()
    max_steps: int = 1000  # optimizer steps per stage (the default of every stage)
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
    # k-NN macro-F1 monitor on a labeled set during training (any `tessera evaluate --data` spec; None = off),
    # computed every monitor_every optimizer steps on at most monitor_max_images images.
    monitor_data: str | None = None
    monitor_every: int = 100
    monitor_max_images: int = 300
    # Reading ahead of the step (train/loader.py): DataLoader worker processes (0 = read in the training process),
    # micro-batches each worker reads ahead, pinned host memory (null: on CUDA), the whole store kept on the
    # device instead of a loader, spare cutouts read per micro-batch (a fraction of it) to replace samples whose
    # views are empty (seed 000 §7.1.1), and torch.compile of the step's model where supported.
    loader_workers: int = 0
    prefetch_factor: int = 2
    pin_memory: bool | None = None
    resident_store: bool = False
    spare_fraction: float = 0.125
    compile: bool = False

    def __post_init__(self) -> None:
        self.stages = tuple(_stage_entry(entry, i) for i, entry in enumerate(self.stages))

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
        for key in ("monitor_every", "monitor_max_images"):
            if getattr(self, key) < 1:
                raise ConfigError(f"config key 'train.{key}': must be >= 1, got {getattr(self, key)}")
        self._validate_loader()
        if self.branch not in (*STAGE_BRANCHES, *OBJECTIVES, RECIPE_BRANCH):
            known = ", ".join((*STAGE_BRANCHES, *[o for o in OBJECTIVES if o not in STAGE_BRANCHES], RECIPE_BRANCH))
            raise ConfigError(f"config key 'train.branch': {self.branch!r} is not one of {known}")
        if self.branch == RECIPE_BRANCH and not self.stages:
            raise ConfigError("config key 'train.stages': train.branch=recipe needs a list of stages")
        for i, stage in enumerate(self.stage_list()):
            stage_key = f"train.stages[{i}]"
            get_objective(stage.objective, f"{stage_key}.objective")
            if stage.max_steps is not None and stage.max_steps < 1:
                raise ConfigError(f"config key '{stage_key}.max_steps': must be >= 1 or null, got {stage.max_steps}")
            if stage.init not in STAGE_INITS:
                raise ConfigError(f"config key '{stage_key}.init': {stage.init!r} is not one of "
                                  f"{', '.join(STAGE_INITS)}")
            for key in stage.overrides:
                if key.split(".")[:2] in (["train", "stages"], ["train", "branch"]):
                    raise ConfigError(f"config key '{stage_key}.overrides.{key}': a stage cannot change the recipe")

    def _validate_loader(self) -> None:
        if self.loader_workers < 0:
            raise ConfigError(f"config key 'train.loader_workers': must be >= 0, got {self.loader_workers}")
        if self.prefetch_factor < 1:
            raise ConfigError(f"config key 'train.prefetch_factor': must be >= 1, got {self.prefetch_factor}")
        if not 0.0 <= self.spare_fraction <= 1.0:
            raise ConfigError(f"config key 'train.spare_fraction': must be in [0, 1], got {self.spare_fraction}")
        for key in ("resident_store", "compile"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"config key 'train.{key}': must be true or false, got {getattr(self, key)!r}")
        if self.pin_memory is not None and not isinstance(self.pin_memory, bool):
            raise ConfigError(f"config key 'train.pin_memory': must be true, false or null, got {self.pin_memory!r}")

    def stage_list(self) -> list[StageConfig]:
        """The stages in order as StageConfig (bare names expanded; ``branch`` expanded when no stages are given)."""
        entries = self.stages or expand_branch(self.branch)
        return [StageConfig(objective=e) if isinstance(e, str) else e for e in entries]


def expand_branch(branch: str) -> tuple[str, ...]:
    """The stage list a ``train.branch`` shorthand stands for (an objective name is a one-stage recipe)."""
    if branch in STAGE_BRANCHES:
        return STAGE_BRANCHES[branch]
    if branch in OBJECTIVES:
        return (branch,)
    return ()


def _stage_entry(entry: Any, index: int) -> Any:
    """A stage as written (``NAME`` or a mapping) -> a bare name or a StageConfig; errors name ``train.stages[i]``."""
    key = f"train.stages[{index}]"
    if isinstance(entry, (str, StageConfig)):
        return entry
    if isinstance(entry, dict):
        stage = _merge(StageConfig(), entry, key)
        if not stage.objective:
            raise ConfigError(f"config key '{key}.objective': every stage names an objective")
        return stage
    raise ConfigError(f"config key '{key}': expected an objective name or a mapping, got {entry!r}")


@dataclass
class PretrainConfig:
    """Everything ``tessera pretrain`` needs; the resolved copy is written to ``RUN/config.yaml``."""

    model: ModelConfig = field(default_factory=ModelConfig)
    # views.output_size None (the default here) = follow the model's input size, filled in by
    # resolve_pretrain_config; a number written in a file or an override is kept as given.
    views: ViewConfig = field(default_factory=lambda: ViewConfig(output_size=FOLLOW_MODEL))
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)  # type: ignore[valid-type]
    train: TrainConfig = field(default_factory=TrainConfig)

    def validate(self) -> None:
        """Reject configs that cannot work before any data is read (errors name the key): the sections, then every
        stage's own config against its objective (``Objective.validate``)."""
        self.train.validate()
        self.objective.validate()
        previous = None
        for i, (stage, stage_cfg) in enumerate(zip(self.train.stage_list(), stage_configs(self))):
            objective = OBJECTIVES[stage.objective]
            try:
                objective.validate(stage_cfg)
            except ConfigError as exc:
                message = f"train.stages[{i}] ({stage.objective}): {exc}" if stage.overrides or i else str(exc)
                raise ConfigError(message) from None
            if i and stage.init == "teacher" and not previous.has_teacher:
                raise ConfigError(f"config key 'train.stages[{i}].init': 'teacher' but stage {i - 1} "
                                  f"({previous.name}) has no EMA teacher")
            previous = objective


def stage_configs(cfg: PretrainConfig) -> list[PretrainConfig]:
    """The resolved config of every stage: ``cfg`` with the stage's ``overrides`` applied (and the stage list
    collapsed to that stage, so a stage config describes one stage)."""
    out = []
    for i, stage in enumerate(cfg.train.stage_list()):
        stage_cfg = cfg
        if stage.overrides:
            nested: dict[str, Any] = {}
            for key, value in stage.overrides.items():
                parts = key.split(".")
                node = nested
                for part in parts[:-1]:
                    node = node.setdefault(part, {})
                node[parts[-1]] = value
            try:
                stage_cfg = _merge(cfg, nested)
            except ConfigError as exc:
                raise ConfigError(f"train.stages[{i}].overrides: {exc}") from None
        out.append(stage_cfg)
    return out


def list_recipes() -> list[str]:
    """Names of the recipes shipped in ``tessera/configs/recipes/`` (``--config NAME`` resolves them)."""
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


def resolve_source(source: str) -> Path:
    """``--config`` value -> a YAML file: a preset (``configs/NAME.yaml``), a shipped recipe
    (``configs/recipes/NAME.yaml``), or a path."""
    path = Path(source)
    if not path.suffix:
        for folder in (PRESETS_DIR, RECIPES_DIR):
            if (folder / f"{source}.yaml").exists():
                return folder / f"{source}.yaml"
    if not path.exists():
        raise ConfigError(
            f"config '{source}' is neither a preset ({', '.join(available_presets())}), a recipe "
            f"({', '.join(list_recipes())}) nor an existing YAML file"
        )
    return path


def model_image_size(model_cfg: ModelConfig) -> int:
    """The input size of the model a ModelConfig builds (:meth:`ModelConfig.resolved_image_size`)."""
    return model_cfg.resolved_image_size()


def follow_model(cfg: PretrainConfig) -> PretrainConfig:
    """``cfg`` with ``views.output_size`` at :data:`FOLLOW_MODEL` replaced by the model's input size."""
    if cfg.views.output_size is not FOLLOW_MODEL:
        return cfg
    return dataclasses.replace(cfg, views=dataclasses.replace(cfg.views, output_size=model_image_size(cfg.model)))


def _load_source(path: Path, depth: int = 0) -> PretrainConfig:
    """The config of one YAML file; a top-level ``base: NAME`` (a preset or recipe) is loaded first and this
    file applied on top. Errors name the file."""
    data = dict(load_yaml_source(str(path)))
    cfg = PretrainConfig()
    base = data.pop("base", None)
    if base is not None:
        if depth > 4 or not isinstance(base, str):
            raise ConfigError(f"{path}: config key 'base': expected a preset or recipe name (at most 4 levels)")
        cfg = _load_source(resolve_source(base), depth + 1)
    try:
        train = data.get("train")
        if isinstance(train, dict) and "branch" in train and "stages" not in train:
            cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, stages=()))  # the file's shorthand wins
        cfg = fill_stages(_merge(cfg, data))
        _validate(follow_model(cfg))  # judged at the size it would run at; the sentinel stays for later layers
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return cfg


def fill_stages(cfg: PretrainConfig, branch_overridden: bool = False) -> PretrainConfig:
    """Make ``train.stages`` explicit: the expansion of ``train.branch`` when no stages are given or when the
    command line changed the branch (shorthand wins over a file's list); ``branch`` becomes "recipe" when the
    stages are not the expansion of any shorthand."""
    tc = cfg.train
    if branch_overridden or not tc.stages:
        stages = expand_branch(tc.branch)
        if not stages:
            return cfg  # validation names the bad branch
        return dataclasses.replace(cfg, train=dataclasses.replace(tc, stages=stages))
    if tuple(tc.stages) != expand_branch(tc.branch):
        shorthand = next((b for b in (*STAGE_BRANCHES, *OBJECTIVES) if expand_branch(b) == tuple(tc.stages)),
                         RECIPE_BRANCH)
        return dataclasses.replace(cfg, train=dataclasses.replace(tc, branch=shorthand))
    return cfg


def resolve_pretrain_config(source: str | None = None, overrides: list[str] | tuple[str, ...] = ()) -> PretrainConfig:
    """Defaults -> preset/recipe/YAML -> overrides; ``views.output_size`` left at :data:`FOLLOW_MODEL` (None)
    becomes the model's input size.

    Errors in the file are reported with its path and the full key (``recipes/x.yaml: config key
    'train.stages[1].objective': ...``)."""
    cfg = _load_source(resolve_source(source)) if source else PretrainConfig()
    keys = [parse_override(text)[0] for text in overrides]
    cfg = merge_overrides(cfg, overrides)
    cfg = fill_stages(cfg, branch_overridden=["train", "branch"] in keys and ["train", "stages"] not in keys)
    if ["train", "max_steps"] in keys and ["train", "epochs"] not in keys and cfg.train.epochs is not None:
        # An explicit step count wins over a preset's epoch count.
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=None))
    cfg = follow_model(cfg)
    _validate(cfg)
    return cfg
