"""Optimizer rules shared by pretraining (tessera.train) and evaluation (linear probes, fine-tuning): the cosine
learning-rate schedule with linear warmup (seed 000 §8.2.1, Table 5) and which parameters get no weight decay.

Neutral ground: it imports only torch, so ``evaluate`` uses the same schedule and decay rule as ``train``
without importing it (DESIGN §1 layering). ``tessera.train.optim`` re-exports both.
"""

from __future__ import annotations

import math

import torch

# Parameters that are not weight matrices of a linear map: decaying them towards zero has no regularizing meaning
# (biases, norm gains) or destroys information the model needs (position embeddings, CLS/register/mask tokens).
NO_DECAY_NAME_PARTS = ("position_embedding", "pos_embed", "cls_token", "register", "mask_token")


def is_no_decay(name: str, param: torch.Tensor) -> bool:
    """True for biases, norm weights (any 1-D tensor), position embeddings and CLS/register/mask tokens."""
    lowered = name.lower()
    return param.ndim <= 1 or any(part in lowered for part in NO_DECAY_NAME_PARTS)



class WarmupCosine:
    """lr multiplier: linear warmup to 1 over ``warmup_steps``, then cosine down to ``min_ratio`` at ``total_steps``.

    The multiplier at optimizer step ``s`` (0-based, the step about to be taken) is ``(s + 1) / warmup_steps``
    during warmup, so the first update already has a small non-zero lr.
    """

    def __init__(self, total_steps: int, warmup_steps: int, min_ratio: float = 0.0):
        self.total_steps = max(1, int(total_steps))
        self.warmup_steps = max(0, int(warmup_steps))
        self.min_ratio = float(min_ratio)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        span = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        return self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
