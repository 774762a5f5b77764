"""AdamW with decoupled weight decay on matrices only, cosine decay with linear warmup, and the temperature
schedule (seed 000 §8.2.1, §8.2.4, Table 5)."""

from __future__ import annotations

import math

import torch
from torch import nn

from tessera.objectives.schedules import temperature_at  # noqa: F401  (re-exported: the schedule lives with its objective)

# Parameters that are not weight matrices of a linear map: decaying them towards zero has no regularizing meaning
# (biases, norm gains) or destroys information the model needs (position embeddings, CLS/register/mask tokens).
NO_DECAY_NAME_PARTS = ("position_embedding", "pos_embed", "cls_token", "register", "mask_token")


def is_no_decay(name: str, param: torch.Tensor) -> bool:
    """True for biases, norm weights (any 1-D tensor), position embeddings and CLS/register/mask tokens."""
    lowered = name.lower()
    return param.ndim <= 1 or any(part in lowered for part in NO_DECAY_NAME_PARTS)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups: ``decay`` (weight matrices) and ``no_decay``; frozen parameters are left out."""
    decay, no_decay, decay_names, no_decay_names = [], [], [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if is_no_decay(name, param):
            no_decay.append(param)
            no_decay_names.append(name)
        else:
            decay.append(param)
            decay_names.append(name)
    return [
        {"params": decay, "weight_decay": weight_decay, "names": decay_names},
        {"params": no_decay, "weight_decay": 0.0, "names": no_decay_names},
    ]


def build_optimizer(
    model: nn.Module, lr: float, weight_decay: float, betas: tuple[float, float], device: torch.device
) -> torch.optim.AdamW:
    """AdamW over :func:`param_groups`; the fused kernel on CUDA (seed 000 §8.2.1: fused AdamW)."""
    groups = [g for g in param_groups(model, weight_decay) if g["params"]]
    fused = device.type == "cuda"
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), weight_decay=weight_decay, fused=fused)


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


def build_scheduler(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_fraction: float, lr: float, min_lr: float
) -> torch.optim.lr_scheduler.LambdaLR:
    """Cosine with linear warmup over ``warmup_fraction`` of the optimizer steps (Table 5: 15%)."""
    warmup = int(round(warmup_fraction * total_steps))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupCosine(total_steps, warmup, min_lr / lr))
