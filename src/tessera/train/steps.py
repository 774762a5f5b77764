"""Loss assembly for one micro-batch, one named class per objective (DESIGN §5.5). The model is always called
through its single ``forward(views01, branch, noise)`` so that, under DDP, the wrapped module's gradient hooks
fire (DESIGN §7 pitfall); the losses live in ``tessera.objectives``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tessera.train.distributed import gather_keys, unwrap


@dataclass
class MicroStepOutput:
    """``loss``: scalar with gradient; ``parts``: detached scalars for logging; ``embeddings``: (N, D) detached
    encoder features for the collapse monitor (None when the objective does not produce them)."""

    loss: torch.Tensor
    parts: dict[str, torch.Tensor]
    embeddings: torch.Tensor | None = None


def num_patches(model: nn.Module, image_size: int) -> int:
    """Patch tokens per image of side ``image_size`` for the (possibly DDP-wrapped) model."""
    patch = int(unwrap(model).patch_size)
    return (image_size // patch) ** 2


def masking_noise(model: nn.Module, batch: int, image_size: int, generator: torch.Generator) -> torch.Tensor:
    """Uniform noise (B, L) that decides the MAE mask (argsort, seed 000 §6); drawn from the step's generator so
    the mask is a pure function of the step (exact resume)."""
    return torch.rand(batch, num_patches(model, image_size), generator=generator, device=generator.device)


class ReconstructionObjective:
    """Single-view masked reconstruction (seed 000 §6, Eq. 2-6). views: (B, 1, C, S, S)."""

    name = "reconstruction"

    def __init__(self, loss_fn: nn.Module):
        self.loss_fn = loss_fn

    def __call__(self, model: nn.Module, views: torch.Tensor, noise: torch.Tensor) -> MicroStepOutput:
        """views: (B, 1, C, S, S) in [0, 1]; noise: (B, L)."""
        if views.ndim != 5 or views.shape[1] != 1:
            raise ValueError(f"reconstruction expects views of shape (B, 1, C, S, S), got {tuple(views.shape)}")
        out = model(views[:, 0], branch="reconstruction", noise=noise)
        loss, parts = self.loss_fn(out["pred"], out["target"], out["mask"], out["target01"])
        # "reconstruction" is the total; the loss's own parts (mse, l1, bl1) are logged beside it.
        parts = {k: v.detach() for k, v in parts.items() if k != "loss"}
        parts["reconstruction"] = loss.detach()
        return MicroStepOutput(loss=loss, parts=parts)


class ContrastiveObjective:
    """Multi-view contrastive loss against the global key set (seed 000 §7, Eq. 8-16; §8.2.2).

    Local queries (B, V, D) are scored against all ranks' embeddings (G*B, V, D); remote keys are stop-gradient
    unless ``gather_with_grad``.
    """

    name = "contrastive"

    def __init__(self, loss_fn: nn.Module, gather_with_grad: bool = False):
        self.loss_fn = loss_fn
        self.gather_with_grad = gather_with_grad

    def __call__(self, model: nn.Module, views: torch.Tensor, temperature: float) -> MicroStepOutput:
        """views: (B, V, C, S, S) in [0, 1] with V >= 2."""
        if views.ndim != 5 or views.shape[1] < 2:
            raise ValueError(f"contrastive expects views of shape (B, V>=2, C, S, S), got {tuple(views.shape)}")
        b, v = views.shape[:2]
        out = model(views.flatten(0, 1), branch="contrastive")
        queries = out["z"].float().reshape(b, v, -1)
        keys, offset = gather_keys(queries, with_grad=self.gather_with_grad)
        loss = self.loss_fn(queries, keys, offset, temperature)
        return MicroStepOutput(loss=loss, parts={"contrastive": loss.detach()}, embeddings=out["features"].detach())
