"""Masked-reconstruction losses (seed 000 §6.2, Eq. 2-6).

All terms compare the decoder prediction with the target patches in the model's (adapter-normalized)
input space. The brightness weights of Eq. 5 are computed from ``target01``, the same patches in [0, 1]
before mean/std normalization: in normalized space |x| is large for black sky and small for mid-grey
emission, which would invert the weighting (DESIGN §7 pitfall).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from tessera.errors import ConfigError
from tessera.objectives.base import Objective, StepContext, StepResult

KINDS = ("l2", "l2_l1", "l2_bl1")


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Eq. 2: squared error averaged over the pixels of each patch, then over masked patches (ViT-MAE default).

    pred, target: (N, L, P); mask: (N, L) with 1 = masked. Returns a scalar.
    """
    per_patch = (pred - target).pow(2).mean(dim=-1)
    return (per_patch * mask).sum() / mask.sum().clamp_min(1.0)


INK_LEVEL = 0.5  # a patch is "ink" when one of its [0, 1] pixels reaches this (bright = ink/emission)


def whitespace_split(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, target01: torch.Tensor, level: float = INK_LEVEL
) -> dict[str, torch.Tensor]:
    """How much of the masked MSE (Eq. 2) comes from background patches (seed 002 §4: MAE's loss may be
    "dominated by trivially recovering whitespace"). Measured, never optimized: detached.

    pred, target, target01: (N, L, P); mask: (N, L), 1 = masked. -> mse_ink, mse_background (mean squared error
    per masked patch of each kind; 0 where none), whitespace_share (background's part of the summed masked
    error, in [0, 1]) and ink_patches (fraction of masked patches that hold ink).
    """
    with torch.no_grad():
        per_patch = (pred - target).pow(2).mean(dim=-1).float()
        m = mask.float()
        ink = (target01.amax(dim=-1) >= level).float() * m
        bg = m - ink
        err_ink, err_bg = (per_patch * ink).sum(), (per_patch * bg).sum()
        return {
            "mse_ink": err_ink / ink.sum().clamp_min(1.0),
            "mse_background": err_bg / bg.sum().clamp_min(1.0),
            "whitespace_share": err_bg / (err_ink + err_bg).clamp_min(1e-12),
            "ink_patches": ink.sum() / m.sum().clamp_min(1.0),
        }


def global_l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. 4: L1 = <|x_hat - x|> over all pixels (masked and visible patches). pred, target: (N, L, P)."""
    return (pred - target).abs().mean()


def brightness_weights(target01: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Eq. 5: w(x) = |x| / (<|x|> + eps), <.> the mean over one image's pixels and channels.

    target01: (N, L, P) in [0, 1] -> (N, L, P) with per-image mean ~1 (exactly 1 up to eps).
    """
    magnitude = target01.abs()
    return magnitude / (magnitude.mean(dim=(1, 2), keepdim=True) + eps)


def brightness_weighted_l1(pred: torch.Tensor, target: torch.Tensor, target01: torch.Tensor,
                           eps: float = 1e-6) -> torch.Tensor:
    """Eq. 6: BL1 = <w(x) |x_hat - x|>, weights from the [0, 1] view. All inputs (N, L, P)."""
    weights = brightness_weights(target01, eps).detach()
    return (weights * (pred - target).abs()).mean()


def _check_shapes(pred, target, mask, target01) -> None:
    if pred.ndim != 3:
        raise ValueError(f"pred must be (N, L, P), got shape {tuple(pred.shape)}")
    if target.shape != pred.shape:
        raise ValueError(f"target shape {tuple(target.shape)} != pred shape {tuple(pred.shape)}")
    if mask.shape != pred.shape[:2]:
        raise ValueError(f"mask must be (N, L) = {tuple(pred.shape[:2])}, got {tuple(mask.shape)}")
    if target01 is not None and target01.shape != pred.shape:
        raise ValueError(f"target01 shape {tuple(target01.shape)} != pred shape {tuple(pred.shape)}")


class ReconstructionLoss(nn.Module):
    """``kind``: "l2" (Eq. 3), "l2_l1" (Eq. 4, w_L1 = 0.1), "l2_bl1" (Eq. 6, w_BL1 = 0.1); w_L2 = 1."""

    def __init__(
        self,
        kind: Literal["l2", "l2_l1", "l2_bl1"] = "l2",
        l1_weight: float = 0.1,
        bl1_weight: float = 0.1,
        eps: float = 1e-6,
    ):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"unknown reconstruction loss {kind!r} (choose from {', '.join(KINDS)})")
        self.kind = kind
        self.l1_weight = float(l1_weight)
        self.bl1_weight = float(bl1_weight)
        self.eps = float(eps)

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, target01: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """pred, target, target01: (N, L, P); mask: (N, L), 1 = masked. Returns (loss, detached parts)."""
        _check_shapes(pred, target, mask, target01)
        mask = mask.to(pred.dtype)
        mse = masked_mse(pred, target, mask)
        loss = mse
        parts = {"mse": mse.detach()}
        if self.kind == "l2_l1":
            l1 = global_l1(pred, target)
            loss = loss + self.l1_weight * l1
            parts["l1"] = l1.detach()
        elif self.kind == "l2_bl1":
            if target01 is None:
                raise ValueError("kind 'l2_bl1' needs target01 (the [0, 1] patches) for the brightness weights")
            bl1 = brightness_weighted_l1(pred, target, target01, self.eps)
            loss = loss + self.bl1_weight * bl1
            parts["bl1"] = bl1.detach()
        parts["loss"] = loss.detach()
        return loss, parts


# -- the plug-in (objectives/base.py) --------------------------------------------------------------------------


def num_patches(model: nn.Module, image_size: int) -> int:
    """Patch tokens per image of side ``image_size`` for the (possibly DDP-wrapped) model."""
    patch = int(getattr(model, "module", model).patch_size)
    return (image_size // patch) ** 2


def masking_noise(model: nn.Module, batch: int, image_size: int, generator: torch.Generator) -> torch.Tensor:
    """Uniform noise (B, L) that decides the MAE mask (argsort, seed 000 §6); drawn from the step's generator so
    the mask is a pure function of the step (exact resume)."""
    return torch.rand(batch, num_patches(model, image_size), generator=generator, device=generator.device)


class ReconstructionStep:
    """Single-view masked reconstruction (seed 000 §6, Eq. 2-6) through the model's single entry point, so
    that under DDP the wrapped module's gradient hooks fire (DESIGN §7 pitfall). views: (B, 1, C, S, S)."""

    name = "reconstruction"

    def __init__(self, loss_fn: nn.Module):
        self.loss_fn = loss_fn

    def __call__(self, model: nn.Module, views: torch.Tensor, noise: torch.Tensor):
        """views: (B, 1, C, S, S) in [0, 1]; noise: (B, L). -> StepResult."""
        if views.ndim != 5 or views.shape[1] != 1:
            raise ValueError(f"reconstruction expects views of shape (B, 1, C, S, S), got {tuple(views.shape)}")
        out = model(views[:, 0], branch="reconstruction", noise=noise)
        loss, parts = self.loss_fn(out["pred"], out["target"], out["mask"], out["target01"])
        # "reconstruction" is the total; the loss's own parts (mse, l1, bl1) are logged beside it.
        parts = {k: v.detach() for k, v in parts.items() if k != "loss"}
        if out.get("target01") is not None:  # the whitespace share of the MSE, logged as loss_whitespace_share
            parts.update(whitespace_split(out["pred"], out["target"], out["mask"], out["target01"]))
        parts["reconstruction"] = loss.detach()
        return StepResult(loss=loss, parts=parts)


class Reconstruction(Objective):
    """Masked reconstruction (seed 000 §6): MAE decoder on a single mild view. Its settings are today's flat
    keys (``objective.reconstruction``, ``objective.l1_weight``, ``train.batch_size_reconstruction``, ...)."""

    name = "reconstruction"

    def __init__(self, cfg):
        super().__init__(cfg)
        oc = cfg.objective
        self._step = ReconstructionStep(ReconstructionLoss(oc.reconstruction, oc.l1_weight, oc.bl1_weight))

    @classmethod
    def validate(cls, cfg) -> None:
        # model.mask_ratio is checked once, by ModelConfig.validate (it runs before any objective's).
        if cfg.model.backbone != "vit_mae":
            raise ConfigError(f"config key 'model.backbone': reconstruction is not defined for "
                              f"{cfg.model.backbone} (masked reconstruction needs a vit_mae backbone)")

    def batch_size(self) -> int:
        return int(self.cfg.train.batch_size_reconstruction)

    def grad_clip(self) -> float:
        return float(self.cfg.train.grad_clip_reconstruction)

    def build_model(self) -> nn.Module:
        from tessera.models import build_pretrain_model

        return build_pretrain_model(self.cfg.model, branches=("reconstruction",))

    def crop_groups(self) -> list:
        from tessera.views.multicrop import CropGroup

        v = self.cfg.views
        return [CropGroup("view", 1, v.output_size, tuple(v.recon_scale), v.mild)]

    def view_generator(self):
        from tessera.views.generator import ViewGenerator

        return ViewGenerator(self.cfg.views, "reconstruction")

    def step(self, model: nn.Module, views: torch.Tensor, ctx: StepContext) -> StepResult:
        noise = masking_noise(model, views.shape[0], views.shape[-1], ctx.generator(1))
        return self._step(model, views, noise)
