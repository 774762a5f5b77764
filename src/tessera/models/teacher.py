"""The EMA teacher (BYOL's target network, DINO's teacher): a frozen copy of some student modules that follows
them as ``teacher = m * teacher + (1 - m) * student`` after every optimizer step (Grill et al. 2020 §3.1;
Caron et al. 2021 §3.1). It never receives gradients (``requires_grad=False``), so DDP ignores it; every rank
applies the same update to the same (all-reduced) student weights, so the teachers stay identical.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMATeacher(nn.Module):
    """``parts``: name -> module (e.g. ``{"encoder": ..., "dino": ...}``), deep-copied and frozen. The copies are
    reachable as attributes (``teacher.encoder``); state-dict keys are ``<name>.<param>``."""

    def __init__(self, parts: dict[str, nn.Module]):
        super().__init__()
        self.names = tuple(parts)
        for name, module in parts.items():
            clone = copy.deepcopy(module)
            for p in clone.parameters():
                p.requires_grad_(False)
            self.add_module(name, clone)

    def _pairs(self, student: dict[str, nn.Module]):
        missing = [n for n in self.names if n not in student]
        if missing:
            raise ValueError(f"the student has no module named {missing} for the teacher to follow")
        for name in self.names:
            mine, theirs = getattr(self, name), student[name]
            for (pn, tp), (sn, sp) in zip(mine.named_parameters(), theirs.named_parameters()):
                if pn != sn or tp.shape != sp.shape:
                    raise ValueError(f"teacher and student differ at {name}.{pn} / {name}.{sn}")
                yield tp, sp

    @torch.no_grad()
    def update(self, student: dict[str, nn.Module], momentum: float) -> None:
        """teacher <- m * teacher + (1 - m) * student, parameter by parameter (buffers, e.g. BatchNorm running
        statistics, are the teacher's own: it runs its own forward passes)."""
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"EMA momentum must be in [0, 1], got {momentum}")
        for t, s in self._pairs(student):
            t.mul_(momentum).add_(s.detach().to(t.dtype) * (1.0 - momentum))

    @torch.no_grad()
    def copy_from(self, student: dict[str, nn.Module]) -> None:
        """teacher <- student (the start of training, and after a stage hand-over)."""
        for t, s in self._pairs(student):
            t.copy_(s.detach())
