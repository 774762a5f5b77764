"""Symmetric CLIP InfoNCE on cosine similarity (seed 003 §3.3 Eq. 1-2; Radford et al. 2021), and the alignment step
over a paired two-modality batch (:class:`~tessera.objectives.base.PairedViews`).

For unit embeddings ``a_i``, ``b_i`` of the same object i, logits ``s * a_i . b_j`` with the logit scale ``s``
(seed 003 App. B3.2: fixed at 15.5, found better than learned). The loss is the mean of the a->b and b->a
cross-entropies with the partner as the target. Negatives are cross-modal only (CLIP does not contrast an image
with other images).

Under torchrun every rank's embeddings are all-gathered WITH gradient (``tessera.train.distributed``: backward
sums the slices over ranks, DDP's average supplies the 1/G), so each rank's local queries see the global key set
and the parameter gradients equal those of one process on the global batch.

:class:`Alignment` is not in the pretraining registry: it trains two towers on pairs (``tessera align``,
align/trainer.py), not one encoder on a store; it shares the plug-in interface (``step(model, views, ctx) ->
StepResult``) so the align trainer's step is an objective's step like the engine's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tessera.objectives.base import Objective, PairedViews, StepContext, StepResult


def _check(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"embeddings must both be (B, D) of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")


def info_nce_directional(queries: torch.Tensor, keys: torch.Tensor, scale: torch.Tensor | float,
                         offset: int = 0) -> torch.Tensor:
    """Mean cross-entropy of queries (B, D) against keys (N, D), query i's positive = key ``offset + i``."""
    logits = scale * queries @ keys.T  # (B, N); logsumexp inside cross_entropy (DESIGN §7: log space)
    targets = torch.arange(queries.shape[0], device=queries.device) + offset
    return F.cross_entropy(logits.float(), targets)


def clip_loss(a: torch.Tensor, b: torch.Tensor, scale: torch.Tensor | float) -> torch.Tensor:
    """Symmetric InfoNCE of this rank's pairs a (B, D), b (B, D) (unit rows) with the global key sets; scalar.

    Single process: ``0.5 * (CE(s a b^T, I) + CE(s b a^T, I))``.
    """
    from tessera.train import distributed as D

    _check(a, b)
    keys_b, offset = D.gather_keys(b, with_grad=True)
    keys_a, _ = D.gather_keys(a, with_grad=True)
    return 0.5 * (info_nce_directional(a, keys_b, scale, offset) + info_nce_directional(b, keys_a, scale, offset))


def pair_accuracy(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Fraction of local a->b queries whose nearest local key is the partner (a cheap training health signal)."""
    with torch.no_grad():
        return (torch.argmax(a @ b.T, dim=1) == torch.arange(a.shape[0], device=a.device)).float().mean()


class Alignment(Objective):
    """CLIP alignment of two towers (seed 003 §3.3). ``cfg``: an AlignConfig (``train.batch_size``,
    ``train.grad_clip``); ``model(xa, xb) -> (za, zb)`` unit embeddings with a ``scale`` (align/towers.py
    AlignModel, possibly DDP-wrapped)."""

    name = "align"
    input_kind = "pairs"

    def batch_size(self) -> int:
        return int(self.cfg.train.batch_size)

    def grad_clip(self) -> float:
        return float(self.cfg.train.grad_clip)

    def step(self, model: nn.Module, views: PairedViews, ctx: StepContext) -> StepResult:
        """views: the step's pairs (a (B, ...), b (B, ...)) -> the symmetric InfoNCE; parts: the loss and the
        local pair accuracy. Through the (DDP-wrapped) model's call, so its gradient hooks fire (DESIGN §7)."""
        za, zb = model(views.a, views.b)
        loss = clip_loss(za, zb, getattr(model, "module", model).scale)
        return StepResult(loss=loss, parts={self.name: loss.detach(), "pair_accuracy": pair_accuracy(za, zb)})


__all__ = ["Alignment", "clip_loss", "info_nce_directional", "pair_accuracy"]
