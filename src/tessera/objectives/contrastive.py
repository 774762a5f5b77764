"""Multi-positive contrastive losses over a (possibly all-gathered) key set (seed 000 §7.2, Eq. 8-16).

For each local query view, positives are the other views of the same cutout and negatives are every
view of every other cutout in the global key set (|N| = G*B*V - V); the query itself is excluded.
Everything is computed in log space with logsumexp: masses like exp(s/tau) overflow float32 at small
tau, and an overflow must never be patched over (DESIGN §7 pitfall).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from tessera.errors import ConfigError
from tessera.objectives.base import Objective, StepContext, StepResult
from tessera.objectives.schedules import temperature_at

KINDS = ("infonce", "hcl", "soft_hcl")
NEG_INF = float("-inf")


def _check(queries: torch.Tensor, keys: torch.Tensor, query_offset: int, temperature: float) -> None:
    if queries.ndim != 3 or keys.ndim != 3:
        raise ValueError(f"queries must be (B, V, D) and keys (G*B, V, D); got {tuple(queries.shape)} and "
                         f"{tuple(keys.shape)}")
    b, v, d = queries.shape
    if keys.shape[1:] != (v, d):
        raise ValueError(f"keys (G*B, V, D) must share V={v}, D={d} with the queries; got {tuple(keys.shape)}")
    if v < 2:
        raise ValueError(f"need at least 2 views per sample for a positive pair, got V={v}")
    if not 0 <= query_offset <= keys.shape[0] - b:
        raise ValueError(f"query_offset {query_offset} with B={b} queries does not fit {keys.shape[0]} key samples")
    if keys.shape[0] < 2:
        raise ValueError("need at least 2 samples in the key set for a negative")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")


def pair_masks(b: int, v: int, k: int, query_offset: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Boolean masks (B*V, K*V): positives (same sample, other view) and negatives (other samples).

    Query row (i, a) is local sample i view a; key column (j, c) is global sample j view c; the query's own
    sample is global sample query_offset + i. The query itself is in neither mask.
    """
    q_sample = (torch.arange(b, device=device) + query_offset).repeat_interleave(v)
    q_view = torch.arange(v, device=device).repeat(b)
    k_sample = torch.arange(k, device=device).repeat_interleave(v)
    k_view = torch.arange(v, device=device).repeat(k)
    same = q_sample[:, None] == k_sample[None, :]
    positive = same & (q_view[:, None] != k_view[None, :])
    return positive, ~same


def _masked_logsumexp(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """log sum_{j in mask} exp(x_ij) per row; x, mask: (Q, K) -> (Q,)."""
    return torch.logsumexp(x.masked_fill(~mask, NEG_INF), dim=-1)


def log_negative_mass(
    logits: torch.Tensor,
    sims: torch.Tensor,
    negative: torch.Tensor,
    kind: str,
    beta: float = 1.0,
    alpha: float = 0.5,
    tau_h: float = 0.15,
) -> torch.Tensor:
    """log q_i, the (reweighted) negative mass. logits = s/tau, sims = s (untempered), negative: (Q, K) -> (Q,).

    infonce: q = sum n_ij (Eq. 9).
    hcl: w_ij = beta n_ij / mean_k n_ik (Eq. 11), q = sum w n = beta sum n^2 / mean n (Eq. 12).
    soft_hcl: w = (1-alpha)/|N| + alpha softmax_N(s/tau_h) (Eq. 14-15), scaled to sum |N|, q = sum w n (Eq. 16).
    """
    n_neg = negative.sum(dim=-1).to(logits.dtype)
    log_n = torch.log(n_neg)
    if kind == "infonce":
        return _masked_logsumexp(logits, negative)
    if kind == "hcl":
        log_mean_n = _masked_logsumexp(logits, negative) - log_n
        return math.log(beta) + _masked_logsumexp(2.0 * logits, negative) - log_mean_n
    if kind == "soft_hcl":
        hard = sims / tau_h
        # Left finite off the negatives (they are masked below): -inf on both sides of logaddexp gives nan grads.
        log_w_hard = hard - _masked_logsumexp(hard, negative)[:, None]
        log_w_uni = (math.log(1.0 - alpha) if alpha < 1 else NEG_INF) - log_n[:, None]
        log_w_soft = torch.logaddexp(log_w_uni.expand_as(log_w_hard),
                                     log_w_hard + (math.log(alpha) if alpha > 0 else NEG_INF))
        # sum_N w_soft = 1, so scaling to sum |N| multiplies by |N|.
        return log_n + _masked_logsumexp(log_w_soft + logits, negative)
    raise ValueError(f"unknown contrastive loss {kind!r} (choose from {', '.join(KINDS)})")


def debias(log_q: torch.Tensor, log_pos_mean: torch.Tensor, n_neg: torch.Tensor, tau_plus: float,
           temperature: float) -> torch.Tensor:
    """HCL debiasing (Robinson et al. 2021): q' = max((q - tau+ |N| p_mean) / (1 - tau+), |N| e^{-1/tau}), in log space.

    All (Q,). With tau_plus = 0 this is the identity (seed 000 uses tau+ = 0).
    """
    if tau_plus == 0:
        return log_q
    log_n = torch.log(n_neg)
    log_floor = log_n - 1.0 / temperature + math.log(1.0 - tau_plus)
    log_sub = math.log(tau_plus) + log_n + log_pos_mean
    gap = (log_sub - log_q).clamp(max=-1e-6)  # only used where log_sub < log_q
    log_diff = log_q + torch.log1p(-torch.exp(gap))
    log_diff = torch.where(log_sub < log_q, log_diff, torch.full_like(log_q, NEG_INF))
    return torch.maximum(log_diff, log_floor) - math.log(1.0 - tau_plus)


class ContrastiveLoss(nn.Module):
    """InfoNCE (Eq. 8-10), HCL (Eq. 11-13, beta = 1, tau+ = 0) or soft-HCL (Eq. 14-16, alpha = 0.5, tau_h = 0.15).

    loss = -mean_i log(p_i / (p_i + q_i)) over the B*V local query views, p_i = sum of exp(s/tau) over
    positives. Gradients flow through the reweighting (the weights are functions of the similarities, Eq. 12).
    """

    def __init__(
        self,
        kind: Literal["infonce", "hcl", "soft_hcl"] = "soft_hcl",
        beta: float = 1.0,
        tau_plus: float = 0.0,
        alpha: float = 0.5,
        tau_h: float = 0.15,
    ):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"unknown contrastive loss {kind!r} (choose from {', '.join(KINDS)})")
        if beta <= 0:
            raise ValueError(f"beta must be positive, got {beta}")
        if not 0 <= tau_plus < 1:
            raise ValueError(f"tau_plus must be in [0, 1), got {tau_plus}")
        if not 0 <= alpha <= 1:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        if tau_h <= 0:
            raise ValueError(f"tau_h must be positive, got {tau_h}")
        self.kind, self.beta, self.tau_plus, self.alpha, self.tau_h = kind, beta, tau_plus, alpha, tau_h

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, query_offset: int = 0,
                temperature: float = 0.1) -> torch.Tensor:
        """queries: (B, V, D) local, l2-normalized; keys: (G*B, V, D) global, l2-normalized, where local sample i
        is keys[query_offset + i]. Single process: keys = queries, query_offset = 0. Returns a scalar."""
        _check(queries, keys, query_offset, temperature)
        b, v, d = queries.shape
        k = keys.shape[0]
        sims = queries.reshape(b * v, d) @ keys.reshape(k * v, d).T  # (B*V, K*V)
        logits = sims / temperature
        positive, negative = pair_masks(b, v, k, query_offset, device=queries.device)
        log_p = _masked_logsumexp(logits, positive)
        log_q = log_negative_mass(logits, sims, negative, self.kind, self.beta, self.alpha, self.tau_h)
        if self.tau_plus:
            n_neg = negative.sum(-1).to(logits.dtype)
            log_pos_mean = log_p - math.log(v - 1)
            log_q = debias(log_q, log_pos_mean, n_neg, self.tau_plus, temperature)
        # No finiteness check here (it would force a device sync every step): the trainer stops on a
        # non-finite loss; nothing is clamped or nan_to_num'ed.
        return -(log_p - torch.logaddexp(log_p, log_q)).mean()


# -- the plug-in (objectives/base.py) --------------------------------------------------------------------------


class ContrastiveStep:
    """Multi-view contrastive loss against the global key set (seed 000 §7, Eq. 8-16; §8.2.2).

    Local queries (B, V, D) are scored against all ranks' embeddings (G*B, V, D); remote keys are stop-gradient
    unless ``gather_with_grad``. The model is called through its single entry point (DESIGN §7 pitfall).
    """

    name = "contrastive"

    def __init__(self, loss_fn: nn.Module, gather_with_grad: bool = False):
        self.loss_fn = loss_fn
        self.gather_with_grad = gather_with_grad

    def __call__(self, model: nn.Module, views: torch.Tensor, temperature: float) -> StepResult:
        """views: (B, V, C, S, S) in [0, 1] with V >= 2."""
        from tessera.train.distributed import gather_keys

        if views.ndim != 5 or views.shape[1] < 2:
            raise ValueError(f"contrastive expects views of shape (B, V>=2, C, S, S), got {tuple(views.shape)}")
        b, v = views.shape[:2]
        out = model(views.flatten(0, 1), branch="contrastive")
        queries = out["z"].float().reshape(b, v, -1)
        keys, offset = gather_keys(queries, with_grad=self.gather_with_grad)
        loss = self.loss_fn(queries, keys, offset, temperature)
        return StepResult(loss=loss, parts={"contrastive": loss.detach()}, embeddings=out["features"].detach())


class Contrastive(Objective):
    """Radio-aware contrastive learning (seed 000 §7): wide + additional view, projection head, InfoNCE/HCL/
    soft-HCL with a warmed temperature (§8.2.4). Settings are today's flat keys (``objective.contrastive``,
    ``objective.temperature_*``, ``train.batch_size_contrastive``, ``train.grad_clip_contrastive``)."""

    name = "contrastive"

    def __init__(self, cfg):
        super().__init__(cfg)
        oc = cfg.objective
        loss = ContrastiveLoss(oc.contrastive, beta=oc.beta, tau_plus=oc.tau_plus, alpha=oc.alpha, tau_h=oc.tau_h)
        self._step = ContrastiveStep(loss, gather_with_grad=cfg.train.gather_with_grad)

    @classmethod
    def validate(cls, cfg) -> None:
        if cfg.train.batch_size_contrastive < 2:
            # A contrastive batch of one image has no negatives (seed 000 Eq. 8: the denominator needs other samples).
            raise ConfigError(
                f"config key 'train.batch_size_contrastive': a contrastive batch needs at least 2 images, "
                f"got {cfg.train.batch_size_contrastive}"
            )

    def batch_size(self) -> int:
        return int(self.cfg.train.batch_size_contrastive)

    def grad_clip(self) -> float:
        return float(self.cfg.train.grad_clip_contrastive)

    def build_model(self) -> nn.Module:
        from tessera.models import build_pretrain_model

        return build_pretrain_model(self.cfg.model, branches=("contrastive",))

    def crop_groups(self) -> list:
        from tessera.views.multicrop import CropGroup

        v = self.cfg.views
        return [CropGroup("wide", 1, v.output_size, tuple(v.wide_scale), v.mild),
                CropGroup("additional", 1, v.output_size, tuple(v.extra_scale), v.strong)]

    def view_generator(self):
        from tessera.views.generator import ViewGenerator

        return ViewGenerator(self.cfg.views, "contrastive")

    def temperature(self, step: int, max_steps: int) -> float:
        oc = self.cfg.objective
        return temperature_at(step, max_steps, oc.temperature_start, oc.temperature_end, oc.temperature_warmup_fraction)

    def schedules(self, step: int, max_steps: int) -> dict[str, float]:
        return {"temperature": self.temperature(step, max_steps)}

    def step(self, model: nn.Module, views: torch.Tensor, ctx: StepContext) -> StepResult:
        return self._step(model, views, self.temperature(ctx.step, ctx.max_steps))
