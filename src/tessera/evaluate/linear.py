"""Strict linear probe (seed 000 §9.2): frozen encoder, mean-pooled last-layer patch tokens (Eq. 17), one linear
layer, 20 epochs AdamW (wd 0.05), cosine schedule with 5 % warmup, lr 5e-3, clip 1.0, batch 256, class-weighted
cross-entropy ("balanced", training folds), D4 augmentation during training only.

Two feature providers drive one training loop: :func:`train_probe_cached` looks features up in the (E, N, D) D4
cache, :func:`train_probe_naive` runs the encoder on the augmented batch. Both consume the same RNG stream
(:func:`epoch_plan`), so they train the same head up to float round-off (tests/evaluate/test_linear.py).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tessera.evaluate.features import D4_SIZE, d4_batch, embed_images
from tessera.evaluate.folds import balanced_class_weights
from tessera.optimization import WarmupCosine


def cosine_with_warmup(total_steps: int, warmup_ratio: float) -> WarmupCosine:
    """lr multiplier for step s: linear warmup over ceil(ratio * total) steps, then cosine decay to 0."""
    return WarmupCosine(total_steps, math.ceil(warmup_ratio * total_steps))


def epoch_plan(n: int, generator: torch.Generator, n_elements: int = D4_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Order of the n training samples for one epoch and the D4 element each one gets: ((n,), (n,)).

    A uniform element in 0..7 is a uniform rotation k in 0..3 and a flip with probability 0.5 (seed 000 §9.1).
    """
    perm = torch.randperm(n, generator=generator).numpy()
    elements = torch.randint(0, n_elements, (n,), generator=generator).numpy()
    return perm, elements


def make_head(dim: int, n_classes: int, seed: int) -> nn.Linear:
    """Linear head W: (C, D), b: (C,), initialized from ``seed`` alone (uniform ±1/sqrt(D), like nn.Linear)."""
    head = nn.Linear(dim, n_classes)
    g = torch.Generator().manual_seed(seed)
    bound = 1.0 / math.sqrt(dim)
    with torch.no_grad():
        head.weight.copy_(torch.empty(n_classes, dim).uniform_(-bound, bound, generator=g))
        head.bias.copy_(torch.empty(n_classes).uniform_(-bound, bound, generator=g))
    return head


def _train_loop(
    features_of: Callable[[np.ndarray, np.ndarray], torch.Tensor],
    labels: np.ndarray,
    train_idx: np.ndarray,
    n_classes: int,
    dim: int,
    cfg,
    seed: int,
    progress: bool = False,
) -> nn.Linear:
    """Train the linear head; ``features_of(sample_idx (B,), elements (B,)) -> (B, D)`` supplies the inputs."""
    from tessera.progress import progress_bar

    head = make_head(dim, n_classes, seed)
    decay = [head.weight]
    no_decay = [head.bias]  # biases take no weight decay
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr
    )
    steps_per_epoch = math.ceil(len(train_idx) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine_with_warmup(cfg.epochs * steps_per_epoch, cfg.warmup_ratio))
    weights = torch.from_numpy(balanced_class_weights(labels[train_idx], n_classes))
    g = torch.Generator().manual_seed(seed)
    for _ in progress_bar(range(cfg.epochs), desc="linear probe epochs", disable=None if progress else True,
                          leave=False):
        perm, elements = epoch_plan(len(train_idx), g)
        for s in range(0, len(perm), cfg.batch_size):
            order = perm[s : s + cfg.batch_size]
            x = features_of(train_idx[order], elements[s : s + cfg.batch_size])
            y = torch.from_numpy(labels[train_idx[order]])
            loss = F.cross_entropy(head(x), y, weight=weights)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(head.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
    return head


def train_probe_cached(features: np.ndarray, labels: np.ndarray, train_idx: np.ndarray, n_classes: int, cfg,
                       seed: int = 0,
                       progress: bool = False) -> nn.Linear:
    """Probe on cached D4 features: features (E, N, D) from ``extract_features(..., d4=True)``."""
    feats = torch.from_numpy(np.ascontiguousarray(features))

    def features_of(idx, elements):
        return feats[torch.as_tensor(elements), torch.as_tensor(idx)]

    return _train_loop(features_of, labels, np.asarray(train_idx), n_classes, feats.shape[-1], cfg, seed, progress)


def train_probe_naive(encoder, ls, train_idx: np.ndarray, n_classes: int, cfg, seed: int = 0,
                      readout: str = "mean_patch",
                      layer: int = -1, device=None) -> nn.Linear:
    """Reference protocol: runs the frozen encoder on every D4-augmented training batch, every epoch."""
    device = device or torch.device("cpu")
    dim = None

    def features_of(idx, elements):
        return torch.from_numpy(embed_images(encoder, d4_batch(ls.batch(idx), elements), readout, layer, device))

    probe_x = features_of(np.asarray(train_idx[:1]), np.zeros(1, dtype=int))
    dim = probe_x.shape[-1]
    return _train_loop(features_of, ls.labels, np.asarray(train_idx), n_classes, dim, cfg, seed)


def predict(head: nn.Linear, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """features (N, D) -> (predicted class (N,), logits (N, C))."""
    with torch.no_grad():
        logits = head(torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32)))
    return logits.argmax(dim=1).numpy(), logits.numpy()


def _predictor(inp):
    """The strict probe per fold: D4 cache of the training images, identity features of the test images."""
    from tessera.evaluate.features import fold_standardizer
    from tessera.evaluate.registry import FoldResult, softmax

    cfg = inp.cfg
    feats = inp.features.get("train", inp.layer, d4=True)  # (8, N, D): every D4 element, once
    test_feats = feats[0] if inp.data.test is None else inp.features.get("test", inp.layer, d4=False)[0]

    def fit_predict(train_idx, test_idx, seed):
        fold_feats, fold_test = feats, test_feats[test_idx]
        if cfg.linear.standardize:
            scale = fold_standardizer(feats[:, train_idx])
            fold_feats, fold_test = scale(feats), scale(fold_test)
        head = train_probe_cached(fold_feats, inp.y_train, train_idx, inp.n_classes, cfg.linear, seed=seed,
                                  progress=cfg.progress)
        pred, logits = predict(head, fold_test)
        return FoldResult(inp.y_test[test_idx], pred, softmax(logits))

    return fit_predict


def _protocol():
    from tessera.evaluate.registry import Protocol

    return Protocol("linear", frozenset({"d4_features", "labels"}), frozenset({"classification"}), predictor=_predictor)


PROTOCOL = _protocol()
