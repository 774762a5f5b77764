"""tessera.objectives: reconstruction (seed 000 §6.2) and contrastive (§7.2) losses, outside the models."""

from tessera.objectives.contrastive import ContrastiveLoss
from tessera.objectives.reconstruction import ReconstructionLoss

__all__ = ["ContrastiveLoss", "ReconstructionLoss"]
