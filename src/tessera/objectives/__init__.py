"""tessera.objectives: the pretraining objectives as plug-ins (objectives/base.py, objectives/registry.py) and
their losses, outside the models: reconstruction (seed 000 §6.2), contrastive (§7.2), self-distillation
(DINO, iBOT, KoLeo, BYOL: objectives/distillation.py)."""

from tessera.objectives.contrastive import ContrastiveLoss
from tessera.objectives.reconstruction import ReconstructionLoss

__all__ = ["ContrastiveLoss", "ReconstructionLoss"]
