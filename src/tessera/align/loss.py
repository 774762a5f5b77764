"""Symmetric CLIP InfoNCE (seed 003 §3.3): the loss lives with the objectives (``tessera.objectives.alignment``,
where the align trainer's step is); kept importable here under its first name."""

from __future__ import annotations

from tessera.objectives.alignment import clip_loss, info_nce_directional, pair_accuracy

__all__ = ["clip_loss", "info_nce_directional", "pair_accuracy"]
