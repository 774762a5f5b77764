"""The objective plug-in interface: what the engine needs to train any pretraining objective.

An objective (one subclass of :class:`Objective`, registered in :mod:`tessera.objectives.registry`) owns

- its **settings**: a dataclass (``settings_cls``) that becomes the config section ``objective.<name>``, plus
  the batch size and gradient clip it trains with (:meth:`Objective.batch_size`, :meth:`Objective.grad_clip`);
- its **model**: the heads it trains (and an EMA teacher if it has one), built around the one encoder factory
  by :meth:`Objective.build_model`;
- its **views**: a list of crop groups (:meth:`Objective.crop_groups`) and the generator that draws them;
- its **step**: :meth:`Objective.step` returns a typed :class:`StepResult` (no tensors in a metrics dict); its
  ``views`` are the engine's view batch, or a :class:`PairedViews` of two modalities (``tessera align``);
- its **hooks** around the optimizer step (:meth:`before_optimizer_step`: e.g. freeze DINO's last layer;
  :meth:`after_optimizer_step`: the EMA teacher update) and the schedules it logs (:meth:`schedules`);
- any **state** outside the model that an exact resume needs (:meth:`state_dict`, e.g. DINO's centre), made of
  tensors, numbers and strings only (checkpoints are read with ``weights_only=True``).

The engine (``tessera.train.engine``) never branches on an objective's name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import torch
from torch import nn


@dataclass
class StepResult:
    """One micro-batch of an objective.

    ``loss``: scalar with gradient (the total); ``parts``: detached scalars logged as ``loss_<name>`` (the part
    named like the objective is the total and is logged as ``loss``); ``embeddings``: (N, D) detached encoder
    features for the collapse monitor, or None (the engine then embeds the first view group itself);
    ``stats``: detached scalars for health monitors (e.g. self-distillation entropy and KL), logged as they are.
    """

    loss: torch.Tensor
    parts: dict[str, torch.Tensor]
    embeddings: torch.Tensor | None = None
    stats: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class PairedViews:
    """A two-modality batch (``tessera align``, objectives/alignment.py): ``a`` (B, ...) the inputs of tower a,
    ``b`` (B, ...) those of tower b, row i of both the same object; each is (B, C, H, W) images in [0, 1] or
    (B, C, L) spectra (NaN = missing channel), as ``kinds`` says ("image" / "spectrum")."""

    a: torch.Tensor
    b: torch.Tensor
    kinds: tuple[str, str] = ("image", "image")

    def __post_init__(self) -> None:
        if self.a.shape[0] != self.b.shape[0]:
            raise ValueError(f"paired views need one row per pair on both sides, got {self.a.shape[0]} and "
                             f"{self.b.shape[0]}")

    def to(self, device: torch.device) -> "PairedViews":
        return PairedViews(self.a.to(device), self.b.to(device), self.kinds)


@dataclass
class StepContext:
    """What a step may need from the engine: the optimizer step, the micro-batch, the stage length, and a
    factory of seeded generators (``generator(stream)``) so that every random draw of the step (MAE noise, iBOT
    masks) is a pure function of (seed, rank, stage, step, micro, stream): the basis of exact resume."""

    step: int
    micro: int
    max_steps: int
    generator: Callable[[int], torch.Generator]
    steps_per_epoch: int = 1


class Objective:
    """Base class of the registered objectives (see the module docstring). Subclasses set ``name`` and
    ``settings_cls`` and override what they need; the defaults describe a one-network objective."""

    name: ClassVar[str] = ""
    settings_cls: ClassVar[type | None] = None  # the dataclass of config section ``objective.<name>``
    # Which network the run exports: "encoder" (the trained one) or "teacher" (the EMA teacher, DINO's practice).
    exports: ClassVar[str] = "encoder"
    has_teacher: ClassVar[bool] = False
    # What the objective trains on: "image" cutouts (CutoutStore, views (B, V, C, S, S)) or "spectrum" (a spectrum
    # store, views (B, 1, C, L)); tessera pretrain refuses a corpus of the other kind before any step.
    input_kind: ClassVar[str] = "image"

    @classmethod
    def section(cls) -> str:
        """The config section's name: ``objective.<name>`` with ``-`` written ``_`` (a field name)."""
        return cls.name.replace("-", "_")

    def __init__(self, cfg: Any):
        """``cfg``: the stage's resolved PretrainConfig."""
        self.cfg = cfg

    # -- settings --------------------------------------------------------------------------------------------
    @property
    def settings(self) -> Any:
        """This objective's config section (``cfg.objective.<name>``), or None."""
        return getattr(self.cfg.objective, self.section(), None) if self.settings_cls is not None else None

    @classmethod
    def validate(cls, cfg: Any) -> None:
        """Refuse a config this objective cannot train (raise ConfigError naming the key). Called before any data
        is read, on the stage's resolved config."""

    def batch_size(self) -> int:
        return int(self.settings.batch_size)

    def grad_clip(self) -> float:
        return float(self.settings.grad_clip)

    # -- model and views -------------------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        raise NotImplementedError

    def crop_groups(self) -> list:
        """The crop groups of one sample (``tessera.views.multicrop.CropGroup``), in the order of the views."""
        raise NotImplementedError

    def view_generator(self):
        """A callable ``(images, generator) -> batch`` with ``.views`` and ``.nonempty`` (tessera.views)."""
        raise NotImplementedError

    # -- the step --------------------------------------------------------------------------------------------
    def step(self, model: nn.Module, views, ctx: StepContext) -> StepResult:
        """Forward and loss of one micro-batch. ``model`` is the (possibly DDP-wrapped) model: call it, never its
        submodules, for anything that needs a gradient (DESIGN §7 pitfall)."""
        raise NotImplementedError

    def schedules(self, step: int, max_steps: int) -> dict[str, float]:
        """Scheduled values at optimizer step ``step`` to log (temperature, EMA momentum, ...)."""
        return {}

    def before_optimizer_step(self, model: nn.Module, step: int, ctx: StepContext) -> None:
        """After backward and gradient all-reduce, before clipping and the update."""

    def after_optimizer_step(self, model: nn.Module, step: int, max_steps: int) -> None:
        """After the optimizer update (the EMA teacher update goes here)."""

    # -- state beyond the model ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise ValueError(f"objective {self.name!r} holds no state, got keys {sorted(state)}")
