"""Scalar schedules owned by objectives: the contrastive temperature warmup (seed 000 §8.2.4), the cosine EMA
momentum of BYOL/DINO and the linear warmup of DINO's teacher temperature. Pure functions of the optimizer step,
so an exact resume needs nothing but the step number."""

from __future__ import annotations

import math


def temperature_at(step: int, total_steps: int, start: float, end: float, warmup_fraction: float) -> float:
    """Contrastive temperature at optimizer step ``step``: linear ``start -> end`` over the warmup, then ``end``.

    seed 000 §8.2.4: tau 0.20 -> 0.10 over the first 15% of training, then 0.10.
    """
    warmup = int(round(warmup_fraction * total_steps))
    if warmup <= 0 or step >= warmup:
        return float(end)
    return float(start + (end - start) * step / warmup)


def cosine_momentum(step: int, total_steps: int, base: float, final: float = 1.0) -> float:
    """EMA momentum at optimizer step ``step`` (0-based): ``final - (final - base) (cos(pi k / K) + 1) / 2``,
    from ``base`` at the first step to ``final`` at the end (BYOL, Grill et al. 2020 §3.2; DINO §3.1)."""
    progress = min(1.0, step / max(1, total_steps))
    return float(final - (final - base) * (math.cos(math.pi * progress) + 1.0) / 2.0)
