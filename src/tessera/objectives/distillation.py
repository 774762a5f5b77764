"""Self-distillation objectives: a student matches an exponential-moving-average teacher across views.

- **DINO** (Caron et al. 2021): cross-entropy between the centred, sharpened teacher distribution over K
  prototypes on every global view and the student's on every *other* view (2 global + N local crops).
- **iBOT** (Zhou et al. 2022; seed 002 §7): the same on the patch tokens the student saw masked (in-place mask
  tokens), with an untied patch head, weighted 1:1 with DINO (DINOv2 keeps the heads untied).
- **KoLeo** (Sablayrolles et al. 2019, DINOv2): ``-mean_i log min_{j != i} ||x_i - x_j||`` on the student's
  l2-normalized CLS tokens, spreading the batch.
- **BYOL** (Grill et al. 2020): online encoder + projector + predictor regresses the EMA target's projection of
  the other view (normalized MSE, symmetrized). It uses only ``encoder(images01).readout(...)``, so it trains
  any backbone behind the encoder interface (a convolutional one too).

Defaults. ImageNet DINO: teacher temperature 0.04 -> 0.07 (warmup 30 epochs), student 0.1, EMA momentum 0.996
-> 1 (AstroCLIP 0.994), centre momentum 0.9, K = 65536. The defaults here follow the small-scale evidence in
``notes/small-scale-ssl.md`` instead: public DINO runs on custom data collapsed at the ImageNet settings and
recovered with a *lower* teacher temperature and lr, so the teacher temperature stays at 0.04 (no warmup to
0.07), and K is sized to the model (16 x hidden size: 512 for the micro test ViT, 3072 for ViT-Tiny, 12288 for
ViT-B) rather than ImageNet's 65536. BYOL follows the radio recipe of Slijepcevic et al. 2024
(``inigoval/byol`` ``config/byol/rgz-optimal.yml``): projector 1024 -> 256, EMA momentum 0.99, crops of
0.8-1.0, rotations and flips, mild brightness/contrast; the momentum follows BYOL's cosine schedule to 1
(set ``objective.byol.momentum_final=0.99`` for that recipe's constant momentum).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from tessera.errors import ConfigError
from tessera.objectives.base import Objective, StepContext, StepResult
from tessera.objectives.schedules import cosine_momentum, temperature_at

# -- losses: small pure functions ------------------------------------------------------------------------------


def centered_teacher_probs(logits: torch.Tensor, center: torch.Tensor, temperature: float) -> torch.Tensor:
    """DINO teacher output: softmax((logits - center) / temperature). logits: (N, K); center: (1, K) -> (N, K)."""
    return F.softmax((logits.float() - center) / temperature, dim=-1)


@torch.no_grad()
def sinkhorn_knopp(logits: torch.Tensor, temperature: float, iterations: int = 3) -> torch.Tensor:
    """DINOv2's Sinkhorn-Knopp centring: alternately normalize prototypes (columns) and samples (rows) of
    exp(logits / T) so every prototype gets equal mass over the global batch. logits: (N, K) -> probs (N, K).
    Column sums are all-reduced across processes (one assignment problem over the global batch)."""
    from tessera.train import distributed as D

    q = torch.exp((logits.float() - logits.float().max()) / temperature).T  # (K, N); the shift cancels below
    n_total = torch.tensor(float(q.shape[1]), device=q.device)
    if D.is_dist():
        torch.distributed.all_reduce(n_total)
    k = q.shape[0]
    total = q.sum()
    if D.is_dist():
        torch.distributed.all_reduce(total)
    q = q / total
    for _ in range(iterations):
        rows = q.sum(dim=1, keepdim=True)
        if D.is_dist():
            torch.distributed.all_reduce(rows)
        q = q / rows / k
        q = q / q.sum(dim=0, keepdim=True) / n_total
    return (q * n_total).T


def dino_cross_entropy(student: list[torch.Tensor], teacher: list[torch.Tensor], student_temp: float) -> torch.Tensor:
    """Mean over (teacher global view i, student view j != i) of CE(teacher_i, softmax(student_j / T_s)).

    student: V tensors (B, K) of logits, the first ones the global views in the teacher's order; teacher: G
    tensors (B, K) of probabilities (G <= V). Same-crop pairs are skipped (Caron et al. 2021 Alg. 1)."""
    logp = [F.log_softmax(s.float() / student_temp, dim=-1) for s in student]
    total, pairs = 0.0, 0
    for i, t in enumerate(teacher):
        for j, lp in enumerate(logp):
            if j == i:
                continue
            total = total + (-(t * lp).sum(dim=-1)).mean()
            pairs += 1
    if pairs == 0:
        raise ValueError("DINO needs a student view of a different crop than each teacher view (pairs = 0)")
    return total / pairs


def ibot_patch_loss(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor,
                    student_temp: float) -> torch.Tensor:
    """iBOT masked-patch self-distillation: CE(teacher patch probs, student patch distribution) on the masked
    positions only, averaged per image then over images (iBOT Eq. 3; DINOv2 ``iBOTPatchLoss``).

    student: (N, L, K) logits; teacher: (N, L, K) probabilities; mask: (N, L) bool (True = masked)."""
    ce = -(teacher * F.log_softmax(student.float() / student_temp, dim=-1)).sum(dim=-1)  # (N, L)
    m = mask.float()
    per_image = (ce * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)
    return per_image.mean()


def koleo_loss(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """KoLeo (DINOv2 ``KoLeoLoss``): -mean_i log(min_{j != i} ||x_i - x_j||) of the l2-normalized rows of x (N, D)."""
    z = F.normalize(x.float(), dim=-1, eps=eps)
    dots = z @ z.T
    dots.fill_diagonal_(-1.0)  # never one's own neighbour
    nearest = dots.argmax(dim=1)
    # pairwise_distance adds eps inside the norm, exactly as DINOv2's nn.PairwiseDistance(2, eps=1e-8).
    distances = F.pairwise_distance(z, z[nearest], p=2, eps=eps)
    return -torch.log(distances + eps).mean()


def byol_regression(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """BYOL normalized MSE (Grill et al. 2020 Eq. 2): ||p/|p| - z/|z|||^2 = 2 - 2 cos(p, z), mean over the batch.
    p: (B, D) online predictions (with gradient); z: (B, D) target projections (no gradient)."""
    return (2.0 - 2.0 * F.cosine_similarity(p.float(), z.float().detach(), dim=-1)).mean()


def mean_entropy(probs: torch.Tensor) -> torch.Tensor:
    """Mean Shannon entropy (nats) of the rows of probs (N, K)."""
    return -(probs * torch.log(probs.clamp(min=1e-12))).sum(dim=-1).mean()


def spread_ratio(x: torch.Tensor) -> torch.Tensor:
    """std over the batch of l2-normalized rows, averaged over dimensions, times sqrt(D) (healthy ~1, collapsed 0)."""
    z = F.normalize(x.detach().float(), dim=-1)
    return z.std(dim=0).mean() * math.sqrt(z.shape[-1])


def _crop_major(views: torch.Tensor) -> torch.Tensor:
    """(B, n, C, S, S) -> (n * B, C, S, S), crop by crop (chunk i of size B is crop i of every image)."""
    return views.transpose(0, 1).flatten(0, 1)


def _check_range01(key: str, value: float, closed_top: bool = True) -> None:
    ok = 0.0 <= value <= 1.0 if closed_top else 0.0 <= value < 1.0
    if not ok:
        raise ConfigError(f"config key '{key}': must be in [0, 1{']' if closed_top else ')'}, got {value}")


# -- DINO / iBOT / KoLeo ------------------------------------------------------------------------------------


@dataclass
class DINOSettings:
    """``objective.dino``: DINO + iBOT + KoLeo (ibot_weight=0 and koleo_weight=0 give plain DINO)."""

    batch_size: int = 32  # images per device and micro-batch (each gives 2 global + N local crops)
    grad_clip: float = 3.0  # DINO clips at 3.0
    prototypes: int | None = None  # K; None = 16 x the encoder's hidden size
    head_hidden: int = 2048
    bottleneck: int = 256
    teacher_temp: float = 0.04  # after the warmup; ImageNet 0.07, small-scale evidence says lower (module doc)
    teacher_temp_start: float = 0.04
    teacher_temp_warmup_fraction: float = 0.0
    student_temp: float = 0.1
    centering: Literal["center", "sinkhorn"] = "center"  # "sinkhorn": DINOv2's Sinkhorn-Knopp option
    center_momentum: float = 0.9
    momentum: float = 0.996  # EMA base momentum, cosine to momentum_final (AstroCLIP 0.994)
    momentum_final: float = 1.0
    freeze_last_layer_steps: int | None = None  # None = one epoch of the corpus
    use_local_crops: bool = True  # the student also sees views.multicrop.local_crops local crops
    ibot_weight: float = 1.0  # iBOT masked-patch loss weight (1:1 with DINO)
    ibot_prototypes: int | None = None  # patch head K; None = prototypes
    mask_ratio: tuple[float, float] = (0.1, 0.5)  # per-image iBOT mask ratio range (AstroCLIP)
    koleo_weight: float = 0.1  # DINOv2's KoLeo weight

    def validate(self, prefix: str | None = None) -> None:
        if prefix is None:
            return
        for key in ("batch_size",):
            if getattr(self, key) < 1:
                raise ConfigError(f"config key '{prefix}.{key}': must be >= 1, got {getattr(self, key)}")
        for key in ("prototypes", "ibot_prototypes"):
            value = getattr(self, key)
            if value is not None and value < 2:
                raise ConfigError(f"config key '{prefix}.{key}': K must be >= 2 prototypes, got {value}")
        for key in ("grad_clip", "teacher_temp", "teacher_temp_start", "student_temp"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"config key '{prefix}.{key}': must be > 0, got {getattr(self, key)}")
        for key in ("head_hidden", "bottleneck"):
            if getattr(self, key) < 1:
                raise ConfigError(f"config key '{prefix}.{key}': must be >= 1, got {getattr(self, key)}")
        for key in ("momentum", "momentum_final", "center_momentum", "teacher_temp_warmup_fraction"):
            _check_range01(f"{prefix}.{key}", getattr(self, key))
        if self.momentum_final < self.momentum:
            raise ConfigError(f"config key '{prefix}.momentum_final': must be >= momentum ({self.momentum}), "
                              f"got {self.momentum_final}")
        if self.freeze_last_layer_steps is not None and self.freeze_last_layer_steps < 0:
            raise ConfigError(f"config key '{prefix}.freeze_last_layer_steps': must be >= 0 or null")
        for key in ("ibot_weight", "koleo_weight"):
            if getattr(self, key) < 0:
                raise ConfigError(f"config key '{prefix}.{key}': must be >= 0, got {getattr(self, key)}")
        lo, hi = self.mask_ratio
        if not 0.0 <= lo <= hi < 1.0:
            raise ConfigError(f"config key '{prefix}.mask_ratio': need 0 <= low <= high < 1, got "
                              f"{list(self.mask_ratio)}")


class DINOStudent(nn.Module):
    """The DINO/iBOT heads around the encoder, run as PretrainModel branch "dino" (student and teacher alike).

    forward(encoder, crops, masks=None): crops = [globals (B, G, C, S, S), locals (B, N, C, s, s)?]; masks
    (G * B, L) bool (crop-major) for in-place mask tokens on the globals (iBOT). Returns cls_logits (V * B, K)
    crop-major (globals first), cls (G * B, D) the global CLS tokens (KoLeo), and patch_logits (G * B, L, K')
    when the patch head exists.
    """

    def __init__(self, dim: int, settings: DINOSettings, prototypes: int, ibot: bool, vit_mae: bool):
        super().__init__()
        from tessera.models.heads import DINOHead

        self.cls_head = DINOHead(dim, prototypes, settings.head_hidden, settings.bottleneck)
        self.patch_head = DINOHead(dim, settings.ibot_prototypes or prototypes, settings.head_hidden,
                                   settings.bottleneck) if ibot else None
        # ViT-MAE has no mask token of its own (it drops masked patches): iBOT's in-place token lives here.
        self.mask_token = nn.Parameter(torch.zeros(dim)) if ibot and vit_mae else None

    def teacher_parts(self) -> dict[str, nn.Module]:
        return {"dino": self}

    def forward(self, encoder: nn.Module, crops: list[torch.Tensor], masks: torch.Tensor | None = None) -> dict:
        globals_ = _crop_major(crops[0])
        kwargs = {}
        if masks is not None:
            kwargs = {"bool_masked_pos": masks}
            if self.mask_token is not None:
                kwargs["mask_token"] = self.mask_token
        out = encoder(globals_, **kwargs)
        logits = [self.cls_head(out.cls)]
        for local in crops[1:]:
            logits.append(self.cls_head(encoder(_crop_major(local), interpolate_pos_encoding=True).cls))
        result = {"cls_logits": torch.cat(logits), "cls": out.cls}
        if self.patch_head is not None:
            result["patch_logits"] = self.patch_head(out.patches)
        return result


class DINO(Objective):
    """DINO + iBOT + KoLeo on multi-crop radio views; exports the EMA teacher (DINO's practice)."""

    name = "dino"
    settings_cls = DINOSettings
    exports = "teacher"
    has_teacher = True

    def __init__(self, cfg):
        super().__init__(cfg)
        s = self.settings
        self.ibot = s.ibot_weight > 0
        self.center: torch.Tensor | None = None  # (1, K), created with the model's K
        self.patch_center: torch.Tensor | None = None

    @classmethod
    def validate(cls, cfg) -> None:
        s, mc = cfg.objective.dino, cfg.views.multicrop
        if s.use_local_crops and mc.local_crops < 1:
            raise ConfigError("config key 'views.multicrop.local_crops': objective.dino.use_local_crops needs at "
                              "least 1 local crop (or set objective.dino.use_local_crops=false)")
        if mc.global_crops < 2 and not s.use_local_crops:
            raise ConfigError("config key 'views.multicrop.global_crops': DINO needs a second view; use >= 2 "
                              "global crops or local crops")
        if cfg.model.registers and s.ibot_weight > 0 and cfg.model.backbone != "vit_mae":
            raise ConfigError("config key 'model.registers': added registers are vit_mae only")
        if s.use_local_crops:
            from tessera.models.presets import MODEL_PRESETS

            patch = MODEL_PRESETS.get(cfg.model.preset, {}).get("patch_size")
            size = mc.resolved_local_size(cfg.views.output_size)
            if patch and cfg.model.init is None and size % patch:
                raise ConfigError(f"config key 'views.multicrop.local_size': {size} is not a multiple of the patch "
                                  f"size {patch} of preset {cfg.model.preset}")

    def prototypes(self, hidden: int) -> int:
        return self.settings.prototypes or 16 * hidden

    def build_model(self) -> nn.Module:
        from tessera.models import build_pretrain_model
        from tessera.models.teacher import EMATeacher

        model = build_pretrain_model(self.cfg.model, branches=())  # the encoder factory, no seed heads
        enc = model.encoder
        if self.ibot and enc.kind != "vit_mae":
            enc.backbone.embeddings.mask_token.requires_grad_(True)  # iBOT trains DINOv2's own mask token
        head = DINOStudent(enc.hidden_size, self.settings, self.prototypes(enc.hidden_size), self.ibot,
                           enc.kind == "vit_mae")
        model.heads["dino"] = head
        model.teacher = EMATeacher({"encoder": enc, "dino": head})
        k = head.cls_head.last_layer.shape[0]
        self.center = torch.zeros(1, k)
        if self.ibot:
            self.patch_center = torch.zeros(1, head.patch_head.last_layer.shape[0])
        return model

    def crop_groups(self) -> list:
        from tessera.views.multicrop import CropGroup

        v, mc = self.cfg.views, self.cfg.views.multicrop
        groups = [CropGroup("global", mc.global_crops, v.output_size, tuple(mc.global_scale), mc.global_regime,
                            mc.full_rotation)]
        if self.settings.use_local_crops and mc.local_crops:
            groups.append(CropGroup("local", mc.local_crops, mc.resolved_local_size(v.output_size),
                                    tuple(mc.local_scale), mc.local_regime, mc.full_rotation, require_nonempty=False))
        return groups

    def view_generator(self):
        from tessera.views.multicrop import MultiCropGenerator

        return MultiCropGenerator(self.cfg.views, self.crop_groups())

    # -- schedules ---------------------------------------------------------------------------------------------
    def teacher_temp(self, step: int, max_steps: int) -> float:
        s = self.settings
        return temperature_at(step, max_steps, s.teacher_temp_start, s.teacher_temp, s.teacher_temp_warmup_fraction)

    def momentum(self, step: int, max_steps: int) -> float:
        return cosine_momentum(step, max_steps, self.settings.momentum, self.settings.momentum_final)

    def schedules(self, step: int, max_steps: int) -> dict[str, float]:
        return {"teacher_temp": self.teacher_temp(step, max_steps), "ema_momentum": self.momentum(step, max_steps)}

    # -- the step ----------------------------------------------------------------------------------------------
    def draw_masks(self, n: int, length: int, generator: torch.Generator) -> torch.Tensor:
        """(n, L) bool: each image masks round(r L) random patches, r ~ U[mask_ratio] per image (AstroCLIP)."""
        lo, hi = self.settings.mask_ratio
        dev = generator.device
        ratio = lo + (hi - lo) * torch.rand(n, generator=generator, device=dev)
        count = (ratio * length).round().long()
        rank = torch.argsort(torch.rand(n, length, generator=generator, device=dev), dim=1).argsort(dim=1)
        return rank < count[:, None]

    def teacher_targets(self, logits: torch.Tensor, center: torch.Tensor, temp: float) -> torch.Tensor:
        if self.settings.centering == "sinkhorn":
            return sinkhorn_knopp(logits, temp)
        return centered_teacher_probs(logits, center, temp)

    @torch.no_grad()
    def update_center(self, center: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """center <- m center + (1 - m) mean over the GLOBAL batch of the teacher logits (all-reduced, DINO Eq. 4)."""
        from tessera.train import distributed as D

        flat = logits.float().reshape(-1, logits.shape[-1])
        batch_sum = flat.sum(dim=0, keepdim=True)
        count = torch.tensor(float(flat.shape[0]), device=flat.device)
        if D.is_dist():
            torch.distributed.all_reduce(batch_sum)
            torch.distributed.all_reduce(count)
        m = self.settings.center_momentum
        return center * m + (batch_sum / count) * (1 - m)

    def step(self, model: nn.Module, views: list[torch.Tensor], ctx: StepContext) -> StepResult:
        from tessera.train.distributed import unwrap

        s = self.settings
        module = unwrap(model)
        b, g = views[0].shape[:2]
        masks = None
        if self.ibot:
            length = (views[0].shape[-1] // module.patch_size) ** 2
            masks = self.draw_masks(g * b, length, ctx.generator(2)).to(views[0].device)
        out = model(views, branch="dino", masks=masks)
        with torch.no_grad():
            teacher = module.teacher
            t_out = teacher.dino(teacher.encoder, views[:1])
        dev = out["cls_logits"].device
        self.center = self.center.to(dev)
        temp = self.teacher_temp(ctx.step, ctx.max_steps)
        t_probs = self.teacher_targets(t_out["cls_logits"], self.center, temp)
        student = list(out["cls_logits"].float().chunk(out["cls_logits"].shape[0] // b))
        loss_dino = dino_cross_entropy(student, list(t_probs.chunk(g)), s.student_temp)
        parts = {"dino_ce": loss_dino.detach()}
        loss = loss_dino
        if self.ibot:
            self.patch_center = self.patch_center.to(dev)
            t_patch = self.teacher_targets(t_out["patch_logits"].flatten(0, 1), self.patch_center, temp)
            t_patch = t_patch.reshape(t_out["patch_logits"].shape)
            loss_ibot = ibot_patch_loss(out["patch_logits"], t_patch, masks, s.student_temp)
            parts["ibot"] = loss_ibot.detach()
            loss = loss + s.ibot_weight * loss_ibot
            self.patch_center = self.update_center(self.patch_center, t_out["patch_logits"])
        if s.koleo_weight > 0:
            loss_koleo = sum(koleo_loss(c) for c in out["cls"].chunk(g))  # per global crop (DINOv2)
            parts["koleo"] = loss_koleo.detach()
            loss = loss + s.koleo_weight * loss_koleo
        self.center = self.update_center(self.center, t_out["cls_logits"])
        parts[self.name] = loss.detach()
        entropy = mean_entropy(t_probs)
        stats = {
            "distill_teacher_entropy": entropy.detach(),
            "distill_max_entropy": torch.tensor(math.log(t_probs.shape[-1]), device=dev),
            # every teacher view is paired with the same number of student views, so KL = CE - H exactly
            "distill_kl": (loss_dino - entropy).detach(),
            "distill_spread": spread_ratio(out["cls"]),
        }
        return StepResult(loss=loss, parts=parts, embeddings=out["cls"].detach(), stats=stats)

    def freeze_steps(self, ctx: StepContext) -> int:
        s = self.settings.freeze_last_layer_steps
        return ctx.steps_per_epoch if s is None else s

    def before_optimizer_step(self, model: nn.Module, step: int, ctx: StepContext) -> None:
        """DINO's ``cancel_gradients_last_layer``: no update of the prototypes during the first steps."""
        if step >= self.freeze_steps(ctx):
            return
        from tessera.train.distributed import unwrap

        head = unwrap(model).heads["dino"]
        for h in (head.cls_head, head.patch_head):
            if h is not None:
                h.last_layer.grad = None

    def after_optimizer_step(self, model: nn.Module, step: int, max_steps: int) -> None:
        from tessera.train.distributed import unwrap

        module = unwrap(model)
        module.teacher.update(module.student_parts(), self.momentum(step, max_steps))

    def state_dict(self) -> dict:
        state = {"center": self.center.detach().cpu().clone()}
        if self.patch_center is not None:
            state["patch_center"] = self.patch_center.detach().cpu().clone()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.center = state["center"].clone()
        if "patch_center" in state:
            self.patch_center = state["patch_center"].clone()


# -- BYOL ------------------------------------------------------------------------------------------------------


@dataclass
class BYOLSettings:
    """``objective.byol``: defaults of the radio BYOL recipe (module docstring)."""

    batch_size: int = 64
    grad_clip: float = 3.0
    proj_hidden: int = 1024
    proj_dim: int = 256
    pred_hidden: int = 1024
    momentum: float = 0.99  # EMA base momentum (inigoval/byol rgz-optimal m: 0.99)
    momentum_final: float = 1.0  # BYOL's cosine schedule to 1
    readout: Literal["mean_patch", "cls"] = "mean_patch"  # encoder readout fed to the projector
    crop_scale: tuple[float, float] = (0.8, 1.0)  # of the anchored ROI (rgz-optimal random_crop_scale)

    def validate(self, prefix: str | None = None) -> None:
        if prefix is None:
            return
        for key in ("batch_size", "proj_hidden", "proj_dim", "pred_hidden"):
            if getattr(self, key) < 1:
                raise ConfigError(f"config key '{prefix}.{key}': must be >= 1, got {getattr(self, key)}")
        if not self.grad_clip > 0:
            raise ConfigError(f"config key '{prefix}.grad_clip': must be > 0, got {self.grad_clip}")
        for key in ("momentum", "momentum_final"):
            _check_range01(f"{prefix}.{key}", getattr(self, key))
        if self.momentum_final < self.momentum:
            raise ConfigError(f"config key '{prefix}.momentum_final': must be >= momentum ({self.momentum})")
        lo, hi = self.crop_scale
        if not 0.0 < lo <= hi <= 1.0:
            raise ConfigError(f"config key '{prefix}.crop_scale': need 0 < low <= high <= 1, got "
                              f"{list(self.crop_scale)}")


class BYOLOnline(nn.Module):
    """Online projector + predictor around any encoder, run as PretrainModel branch "byol".

    forward(encoder, views (B, 2, C, S, S)) -> p (B, 2, d) predictions, features (2B, D) readouts."""

    def __init__(self, dim: int, settings: BYOLSettings):
        super().__init__()
        from tessera.models.heads import MLPHead

        self.readout = settings.readout
        self.projector = MLPHead(dim, settings.proj_hidden, settings.proj_dim)
        self.predictor = MLPHead(settings.proj_dim, settings.pred_hidden, settings.proj_dim)

    def teacher_parts(self) -> dict[str, nn.Module]:
        return {"projector": self.projector}  # the target has no predictor (BYOL's asymmetry)

    def embed(self, encoder: nn.Module, views: torch.Tensor, projector: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        b, v = views.shape[:2]
        features = encoder(views.flatten(0, 1)).readout(self.readout)
        return projector(features).reshape(b, v, -1), features

    def forward(self, encoder: nn.Module, views: torch.Tensor) -> dict:
        z, features = self.embed(encoder, views, self.projector)
        return {"p": self.predictor(z.flatten(0, 1)).reshape(z.shape), "z": z, "features": features}


class BYOL(Objective):
    """BYOL: the online network regresses the EMA target on the other view; exports the online encoder."""

    name = "byol"
    settings_cls = BYOLSettings
    exports = "encoder"
    has_teacher = True

    def build_model(self) -> nn.Module:
        from tessera.models import build_pretrain_model
        from tessera.models.teacher import EMATeacher

        model = build_pretrain_model(self.cfg.model, branches=())  # the encoder factory, no seed heads
        online = BYOLOnline(model.encoder.hidden_size, self.settings)
        model.heads["byol"] = online
        model.teacher = EMATeacher({"encoder": model.encoder, "projector": online.projector})
        return model

    def crop_groups(self) -> list:
        from tessera.views.multicrop import CropGroup

        v, mc = self.cfg.views, self.cfg.views.multicrop
        return [CropGroup("view", 2, v.output_size, tuple(self.settings.crop_scale), mc.global_regime,
                          mc.full_rotation)]

    def view_generator(self):
        from tessera.views.multicrop import MultiCropGenerator

        return MultiCropGenerator(self.cfg.views, self.crop_groups())

    def momentum(self, step: int, max_steps: int) -> float:
        return cosine_momentum(step, max_steps, self.settings.momentum, self.settings.momentum_final)

    def schedules(self, step: int, max_steps: int) -> dict[str, float]:
        return {"ema_momentum": self.momentum(step, max_steps)}

    def step(self, model: nn.Module, views: list[torch.Tensor], ctx: StepContext) -> StepResult:
        from tessera.train.distributed import unwrap

        pair = views[0] if isinstance(views, list) else views
        if pair.ndim != 5 or pair.shape[1] != 2:
            raise ValueError(f"BYOL expects views of shape (B, 2, C, S, S), got {tuple(pair.shape)}")
        out = model(pair, branch="byol")
        teacher = unwrap(model).teacher
        with torch.no_grad():
            z_t, _ = unwrap(model).heads["byol"].embed(teacher.encoder, pair, teacher.projector)
        p = out["p"]
        # Symmetrized (Grill et al. 2020 Eq. 2): view 1 predicts the target of view 2 and vice versa.
        loss = byol_regression(p[:, 0], z_t[:, 1]) + byol_regression(p[:, 1], z_t[:, 0])
        stats = {"distill_spread": spread_ratio(out["z"].flatten(0, 1))}
        return StepResult(loss=loss, parts={"byol": loss.detach()}, embeddings=out["features"].detach(), stats=stats)

    def after_optimizer_step(self, model: nn.Module, step: int, max_steps: int) -> None:
        from tessera.train.distributed import unwrap

        module = unwrap(model)
        module.teacher.update(module.student_parts(), self.momentum(step, max_steps))
