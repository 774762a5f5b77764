"""Run health: a representation-collapse monitor and the non-finite-loss guard (DESIGN §7: a non-finite loss
stops the run; it is not patched over)."""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F

from tessera.errors import TesseraError


class NonFiniteLossError(TesseraError):
    """The loss (or the gradient norm) became NaN/inf; the run stops and the last good checkpoint is kept."""


def embedding_std(embeddings: torch.Tensor) -> float:
    """Std across the batch of l2-normalized embeddings, averaged over dimensions.

    embeddings: (N, D). Spread-out unit vectors give about ``1/sqrt(D)``; a collapsed representation (all
    samples mapped to the same direction) gives 0.
    """
    z = F.normalize(embeddings.detach().float(), dim=-1)
    return float(z.std(dim=0).mean())


class CollapseMonitor:
    """Flags every check where ``embedding_std * sqrt(D)`` is below ``threshold`` (healthy is about 1) and warns
    the first time (the metrics log keeps the flag of every logged step)."""

    def __init__(self, threshold: float):
        self.threshold = float(threshold)
        self.warned = False

    def check(self, embeddings: torch.Tensor, stage: str, step: int, warn: bool = True) -> dict[str, float | bool]:
        """embeddings: (N, D) -> ``{"embedding_std": ..., "embedding_std_ratio": ..., "collapse": bool}``.

        ``warn=False`` only measures (the engine passes it during the lr warmup: a freshly initialized ViT maps
        all images to nearly the same direction before it has learned anything, which is not a collapse)."""
        std = embedding_std(embeddings)
        ratio = std * math.sqrt(embeddings.shape[-1])
        collapsed = ratio < self.threshold
        if collapsed and warn and not self.warned:
            warnings.warn(
                f"representation collapse suspected in stage '{stage}' at step {step}: std of normalized "
                f"embeddings is {std:.4g} ({ratio:.3f} x 1/sqrt(D), threshold "
                f"train.collapse_threshold={self.threshold})",
                RuntimeWarning,
                stacklevel=2,
            )
            self.warned = True
        return {"embedding_std": std, "embedding_std_ratio": ratio, "collapse": collapsed}


class DistillationMonitor:
    """Health of self-distillation (DINO/iBOT/BYOL) from the step's stats, with a warning that names the likely fix.

    Collapse is this family's common failure on custom data (public DINO threads: the loss stuck, or falling to ~0
    within an epoch; the advice is a lower teacher temperature and a lower lr). Two modes are told apart:
    - *uniform* collapse: the teacher's centred output is flat (entropy near log K) and the student matches it
      (KL near 0): sharpening is too weak -> lower ``objective.dino.teacher_temp`` (e.g. 0.02-0.04);
    - *one-hot* collapse: the teacher puts all mass on one prototype (entropy near 0) -> centring is losing,
      lower ``train.lr`` (or raise ``objective.dino.center_momentum`` towards 1 more slowly).
    BYOL logs only the spread of its normalized projections (``distill_spread``): near 0 means every image maps
    to one point -> lower ``train.lr`` or raise ``objective.byol.momentum``.
    """

    def __init__(self, flat_fraction: float = 0.98, peaked_entropy: float = 0.05, kl_floor: float = 1e-3,
                 spread_floor: float = 0.05):
        self.flat_fraction, self.peaked_entropy = flat_fraction, peaked_entropy
        self.kl_floor, self.spread_floor = kl_floor, spread_floor
        self.warned = False

    def diagnose(self, stats: dict[str, float]) -> str | None:
        """The likely failure and its fix, or None when the stats look healthy (or are absent)."""
        entropy, max_entropy = stats.get("distill_teacher_entropy"), stats.get("distill_max_entropy")
        kl, spread = stats.get("distill_kl"), stats.get("distill_spread")
        if entropy is not None and max_entropy:
            if entropy >= self.flat_fraction * max_entropy and (kl is None or kl < self.kl_floor):
                return (f"uniform collapse suspected: teacher entropy {entropy:.3f} of max {max_entropy:.3f}, "
                        f"student-teacher KL {kl if kl is None else f'{kl:.2e}'}; lower objective.dino.teacher_temp "
                        "(e.g. 0.02-0.04) and train.lr")
            if entropy <= self.peaked_entropy:
                return (f"one-hot collapse suspected: teacher entropy {entropy:.3f}; lower train.lr or raise "
                        "objective.dino.teacher_temp slightly so centring can spread the prototypes")
        if spread is not None and spread < self.spread_floor:
            return (f"collapse suspected: spread of normalized embeddings {spread:.3g} x sqrt(D); lower train.lr "
                    "(or raise the EMA momentum)")
        return None

    def check(self, stats: dict[str, float], stage: str, step: int, warn: bool = True) -> dict[str, bool]:
        """``{"distill_collapse": bool}`` when the step has self-distillation stats, else ``{}``; warns once."""
        if not any(k.startswith("distill_") for k in stats):
            return {}
        problem = self.diagnose(stats)
        if problem and warn and not self.warned:
            warnings.warn(f"stage '{stage}' step {step}: {problem}", RuntimeWarning, stacklevel=2)
            self.warned = True
        return {"distill_collapse": problem is not None}


def check_finite(loss: float, grad_norm: float | None, parts: dict[str, float], stage: str, step: int) -> None:
    """Raise :class:`NonFiniteLossError` naming the step, stage and loss parts if ``loss`` or ``grad_norm`` is
    NaN/inf."""
    bad_loss = not math.isfinite(loss)
    bad_grad = grad_norm is not None and not math.isfinite(grad_norm)
    if not (bad_loss or bad_grad):
        return
    shown = ", ".join(f"{k}={v:.4g}" for k, v in parts.items())
    what = "loss" if bad_loss else "gradient norm"
    raise NonFiniteLossError(
        f"non-finite {what} at stage '{stage}' step {step} (loss={loss:.4g}, grad_norm={grad_norm}, {shown}); "
        "the run stopped and the last good checkpoint is kept (lower train.lr or check the data)"
    )
