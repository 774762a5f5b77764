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
                f"embeddings is {std:.4g} ({ratio:.3f} x 1/sqrt(D), threshold train.collapse_threshold={self.threshold})",
                RuntimeWarning,
                stacklevel=2,
            )
            self.warned = True
        return {"embedding_std": std, "embedding_std_ratio": ratio, "collapse": collapsed}


def check_finite(loss: float, grad_norm: float | None, parts: dict[str, float], stage: str, step: int) -> None:
    """Raise :class:`NonFiniteLossError` naming the step, stage and loss parts if ``loss`` or ``grad_norm`` is NaN/inf."""
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
