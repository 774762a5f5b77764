"""Loss assembly of seed 000's two objectives, kept under their historical names. The steps now live with their
objectives (``tessera.objectives.reconstruction`` / ``contrastive``); the engine reaches them through the
objective registry (``tessera.objectives.registry``)."""

from __future__ import annotations

from tessera.objectives.base import StepResult
from tessera.objectives.contrastive import ContrastiveStep
from tessera.objectives.reconstruction import ReconstructionStep, masking_noise, num_patches

MicroStepOutput = StepResult
ReconstructionObjective = ReconstructionStep
ContrastiveObjective = ContrastiveStep

__all__ = ["MicroStepOutput", "ReconstructionObjective", "ContrastiveObjective", "masking_noise", "num_patches"]
