"""AdamW with decoupled weight decay on matrices only, cosine decay with linear warmup, and the temperature
schedule (seed 000 §8.2.1, §8.2.4, Table 5)."""

from __future__ import annotations


import torch
from torch import nn

from tessera.objectives.schedules import temperature_at  # noqa: F401  (re-exported: the schedule lives with its objective)
# The lr schedule and the no-decay rule are shared with evaluation's probes and fine-tuning, so they live in the
# neutral tessera.optimization (evaluate must not import train, DESIGN §1); re-exported here.
from tessera.optimization import NO_DECAY_NAME_PARTS, WarmupCosine, is_no_decay  # noqa: F401

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


def build_scheduler(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_fraction: float, lr: float, min_lr: float
) -> torch.optim.lr_scheduler.LambdaLR:
    """Cosine with linear warmup over ``warmup_fraction`` of the optimizer steps (Table 5: 15%)."""
    warmup = int(round(warmup_fraction * total_steps))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupCosine(total_steps, warmup, min_lr / lr))
