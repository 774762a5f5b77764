"""Full fine-tuning (seed 000 §9.3): every encoder parameter trains, head = LayerNorm -> dropout -> linear,
20 epochs AdamW (wd 0.05), cosine with 20 % warmup, base lr 5e-4, head lr x10, layer-wise lr decay 0.65,
clip 1.0, batch 256, bf16 autocast on CUDA, D4 augmentation during training, class-weighted cross-entropy.

Layer-wise decay follows MAE's ``param_groups_lrd``: with L blocks, the parameter with layer id j
(``encoder.layer_id_of``: 0 = embeddings/pos/cls/registers, i+1 = block i, final norm = L) gets
lr = base * decay**(L + 1 - j): block i -> base * decay**(L - i), the last block and final norm -> base * decay,
embeddings -> base * decay**(L + 1) (the deepest decay), the head -> base * head_lr_mult.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tessera.evaluate.features import d4_batch
from tessera.evaluate.folds import balanced_class_weights
from tessera.evaluate.linear import cosine_with_warmup, epoch_plan
from tessera.optimization import is_no_decay



def make_head(dim: int, n_classes: int, dropout: float, seed: int) -> nn.Sequential:
    """LayerNorm(D) -> Dropout -> Linear(D, C); batch-size agnostic (no BatchNorm), seed 000 §9.3."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.LayerNorm(dim), nn.Dropout(dropout), nn.Linear(dim, n_classes))


def layer_lr_scale(layer_id: int, num_layers: int, decay: float) -> float:
    """decay**(num_layers + 1 - layer_id): see the module docstring."""
    return decay ** (num_layers + 1 - layer_id)


def param_groups(encoder, head: nn.Module, cfg) -> list[dict]:
    """AdamW groups with per-layer lr and weight decay; each group records ``layer_id`` (head: -1) for inspection."""
    groups: dict[tuple, dict] = {}
    for name, p in encoder.module.named_parameters():
        p.requires_grad_(True)
        layer_id = int(encoder.layer_id_of(name))
        wd = not is_no_decay(name, p)
        key = (layer_id, wd)
        if key not in groups:
            groups[key] = {
                "params": [], "names": [], "layer_id": layer_id,
                "lr": cfg.lr * layer_lr_scale(layer_id, encoder.num_layers, cfg.layer_decay),
                "weight_decay": cfg.weight_decay if wd else 0.0,
            }
        groups[key]["params"].append(p)
        groups[key]["names"].append(name)
    for name, p in head.named_parameters():
        wd = not is_no_decay(name, p)
        key = ("head", wd)
        groups.setdefault(key, {"params": [], "names": [], "layer_id": -1, "lr": cfg.lr * cfg.head_lr_mult,
                                "weight_decay": cfg.weight_decay if wd else 0.0})
        groups[key]["params"].append(p)
        groups[key]["names"].append(f"head.{name}")
    return list(groups.values())


def training_batch(ls, idx: np.ndarray, size: int) -> torch.Tensor:
    """Images ``idx`` as one (B, C, H, W) batch. A batch whose images differ in shape (mixed-size sets) is
    resized per image to ``size`` x ``size`` first (bicubic, clamped to [0, 1], as the encoder's own resize);
    a uniform batch is returned as is, so the encoder resizes it exactly as in the frozen protocols."""
    shapes = {ls.images[int(i)].shape for i in idx}
    if len(shapes) == 1:
        return ls.batch(idx)
    out = torch.empty(len(idx), ls.images[int(idx[0])].shape[0], size, size)
    for group in ls.shape_groups(idx):
        where = [int(np.flatnonzero(idx == g)[0]) for g in group]
        x = F.interpolate(ls.batch(group), size=(size, size), mode="bicubic", align_corners=False).clamp_(0.0, 1.0)
        out[where] = x
    return out


def _autocast(device: torch.device, enabled: bool):
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled and device.type == "cuda")


def finetune_fold(encoder, ls, train_idx, n_classes: int, cfg, seed: int = 0, readout: str = "mean_patch",
                  layer: int = -1, device=None, progress: bool = False):
    """Fine-tune a fresh copy of ``encoder`` (copy.deepcopy) on ``ls[train_idx]``; returns (encoder_copy, head)."""
    from tessera.progress import progress_bar

    device = torch.device(device or "cpu")
    enc = copy.deepcopy(encoder)  # each fold starts from the same weights (seed 000 §9.1)
    enc.module.to(device)
    head = make_head(enc.hidden_size, n_classes, cfg.dropout, seed).to(device)
    opt = torch.optim.AdamW(param_groups(enc, head, cfg), lr=cfg.lr)
    train_idx = np.asarray(train_idx)
    steps_per_epoch = math.ceil(len(train_idx) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine_with_warmup(cfg.epochs * steps_per_epoch, cfg.warmup_ratio))
    weights = torch.from_numpy(balanced_class_weights(ls.labels[train_idx], n_classes)).to(device)
    params = [p for group in opt.param_groups for p in group["params"]]
    g = torch.Generator().manual_seed(seed)
    enc.module.train()
    head.train()
    for _ in progress_bar(range(cfg.epochs), desc="fine-tune epochs", disable=None if progress else True, leave=False):
        perm, elements = epoch_plan(len(train_idx), g)
        for s in range(0, len(perm), cfg.batch_size):
            idx = train_idx[perm[s : s + cfg.batch_size]]
            x = d4_batch(training_batch(ls, idx, enc.image_size), elements[s : s + cfg.batch_size]).to(device)
            y = torch.from_numpy(ls.labels[idx]).to(device)
            with _autocast(device, cfg.bf16_cuda):
                logits = head(enc.features(x, layer=layer, readout=readout))
            loss = F.cross_entropy(logits.float(), y, weight=weights)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            sched.step()
    return enc, head


def predict_finetuned(enc, head, ls, indices, readout: str = "mean_patch", layer: int = -1, batch_size: int = 64,
                      device=None, bf16: bool = True, return_scores: bool = False):
    """Predicted classes (n,) for ``ls[indices]`` with the fine-tuned encoder and head in eval mode; with
    ``return_scores`` also the softmax probabilities (n, C)."""
    device = torch.device(device or "cpu")
    enc.module.eval()
    head.eval()
    indices = np.asarray(indices)
    out: dict[int, np.ndarray] = {}
    with torch.no_grad():
        for group in ls.shape_groups(indices):
            for s in range(0, len(group), batch_size):
                idx = group[s : s + batch_size]
                with _autocast(device, bf16):
                    logits = head(enc.features(ls.batch(idx).to(device), layer=layer, readout=readout))
                out.update(zip(idx.tolist(), torch.softmax(logits.float(), dim=1).cpu().numpy()))
    proba = np.stack([out[int(i)] for i in indices])
    pred = proba.argmax(axis=1).astype(np.int64)
    return (pred, proba) if return_scores else pred


def _predictor(inp):
    from tessera.evaluate.registry import FoldResult

    cfg = inp.cfg

    def fit_predict(train_idx, test_idx, seed):
        enc, head = finetune_fold(inp.encoder, inp.data.train, train_idx, inp.n_classes, cfg.finetune, seed=seed,
                                  readout=inp.readout, layer=inp.layer, device=inp.device, progress=cfg.progress)
        pred, proba = predict_finetuned(enc, head, inp.test_set, test_idx, readout=inp.readout, layer=inp.layer,
                                        batch_size=cfg.extract_batch_size, device=inp.device,
                                        bf16=cfg.finetune.bf16_cuda,
                                        return_scores=True)
        del enc, head
        return FoldResult(inp.y_test[test_idx], pred, proba)

    return fit_predict


def _protocol():
    from tessera.evaluate.registry import Protocol

    return Protocol("finetune", frozenset({"encoder", "labels"}), frozenset({"classification"}), predictor=_predictor,
                    sweepable=False)


PROTOCOL = _protocol()
