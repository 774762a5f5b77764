"""The dense probe (issue 20; seed 002 §2, §14: segmentation is the downstream that decides): a linear classifier
on frozen patch tokens predicting a binary mask (the wall mask of a construction sheet) per patch and, upsampled,
per pixel, under K-fold over images. Reports mIoU (mean over {background, foreground} of the intersection over
union) per patch and per pixel, and the foreground's pixel F1, each as mean and std over folds, beside the
chance level of the same data (a predictor that ignores the features).

Data: a labeled set whose CSV has a ``mask`` column (``segmentation.mask_column``): a mask image per labeled image,
relative to the CSV (``tessera simulate lineart`` writes one per tile); a mask pixel is foreground when it is
above half of its full scale. The probe uses the encoder only through ``encoder.tokens`` (DESIGN §3.3).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tessera.errors import TesseraError
from tessera.evaluate.config import SegmentationConfig
from tessera.evaluate.registry import Protocol


# ---------------------------------------------------------------- metrics (pure)


def binary_iou(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[float, float]:
    """IoU of background (0) and foreground (1) of boolean arrays of any shape; an absent class that is also
    never predicted counts as 1 (nothing to get wrong)."""
    out = []
    for cls in (False, True):
        t, p = y_true == cls, y_pred == cls
        union = np.count_nonzero(t | p)
        out.append(1.0 if union == 0 else np.count_nonzero(t & p) / union)
    return out[0], out[1]


def miou(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean of the background and foreground IoU."""
    return float(np.mean(binary_iou(y_true.astype(bool), y_pred.astype(bool))))


def f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """F1 of the foreground (boolean arrays); 1 when neither has foreground."""
    t, p = y_true.astype(bool), y_pred.astype(bool)
    tp = np.count_nonzero(t & p)
    denom = np.count_nonzero(t) + np.count_nonzero(p)
    return 1.0 if denom == 0 else 2.0 * tp / denom


def chance_miou(y_true: np.ndarray, prior: float) -> float:
    """The better of two feature-blind predictors: all background, and foreground drawn with probability
    ``prior`` independently of the pixel (expected IoU computed in closed form from the counts)."""
    t = y_true.astype(bool)
    q = float(np.mean(t))
    majority = miou(t, np.zeros_like(t))
    # Expected counts for a random prediction with P(fg) = prior: tp = q prior, fp = (1-q) prior, fn = q (1-prior).
    p = prior
    iou_fg = q * p / max(q * p + (1 - q) * p + q * (1 - p), 1e-12)
    iou_bg = (1 - q) * (1 - p) / max((1 - q) * (1 - p) + q * (1 - p) + (1 - q) * p, 1e-12)
    return max(majority, (iou_fg + iou_bg) / 2)


# ---------------------------------------------------------------- targets


def patch_targets(masks: np.ndarray, grid: int, fraction: float) -> np.ndarray:
    """Foreground per patch: masks (N, H, W) bool -> (N, grid * grid) bool (area fraction >= ``fraction``).

    The mask is area-averaged onto the encoder's patch grid (H and W must be multiples of ``grid`` after the
    crop of remainder rows, which only happens for sizes that do not divide)."""
    n, h, w = masks.shape
    ch, cw = h // grid, w // grid
    if ch == 0 or cw == 0:
        raise TesseraError(f"masks of {h}x{w} are smaller than the patch grid {grid}x{grid}")
    cut = masks[:, : ch * grid, : cw * grid].astype(np.float32)
    share = cut.reshape(n, grid, ch, grid, cw).mean(axis=(2, 4))
    return (share >= fraction).reshape(n, grid * grid)


def upsample_probabilities(prob: np.ndarray, grid: int, h: int, w: int) -> np.ndarray:
    """Patch probabilities (N, grid * grid) -> pixel probabilities (N, h, w), bilinear (align_corners=False)."""
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(prob.reshape(-1, 1, grid, grid).astype(np.float32))
    return F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False)[:, 0].numpy()


# ---------------------------------------------------------------- the probe (pure: features in, metrics out)


def fit_patch_probe(x: np.ndarray, y: np.ndarray, cfg: SegmentationConfig, seed: int):
    """A standardized logistic regression on patch features x (M, D) with labels y (M,) bool -> predict_proba fn."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    if len(x) > cfg.max_train_patches:
        pick = rng.choice(len(x), cfg.max_train_patches, replace=False)
        x, y = x[pick], y[pick]
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
    if y.all() or not y.any():  # one class in the training patches: a constant predictor
        const = float(y.all())
        return lambda q: np.full(len(q), const)
    clf = LogisticRegression(C=cfg.C, max_iter=1000, class_weight="balanced" if cfg.balanced else None)
    clf.fit((x - mean) / std, y.astype(int))
    return lambda q: clf.predict_proba((q - mean) / std)[:, 1]


def dense_probe(tokens: np.ndarray, masks: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]],
                cfg: SegmentationConfig, seed: int = 0) -> dict:
    """K-fold dense linear probe. tokens: (N, L, D) frozen patch tokens on a square grid; masks: (N, H, W) bool.

    Returns {"miou", "pixel_miou", "pixel_f1", "patch_f1"} each {"mean", "std"} over folds, "chance_miou" (patch
    level, the feature-blind baseline), "per_fold" and the fraction of foreground pixels."""
    n, length, _ = tokens.shape
    grid = int(round(length ** 0.5))
    if grid * grid != length:
        raise TesseraError(f"patch tokens of length {length} are not a square grid")
    targets = patch_targets(masks, grid, cfg.patch_fraction)  # (N, L)
    h, w = masks.shape[1:]
    per_fold = []
    for k, (train, test) in enumerate(folds):
        predict = fit_patch_probe(tokens[train].reshape(-1, tokens.shape[-1]), targets[train].reshape(-1), cfg,
                                  seed + k)
        prob = predict(tokens[test].reshape(-1, tokens.shape[-1])).reshape(len(test), length)
        pixel = upsample_probabilities(prob, grid, h, w) >= 0.5
        prior = float(targets[train].mean())
        per_fold.append({
            "miou": miou(targets[test], prob >= 0.5),
            "patch_f1": f1(targets[test], prob >= 0.5),
            "pixel_miou": miou(masks[test], pixel),
            "pixel_f1": f1(masks[test], pixel),
            "chance_miou": chance_miou(targets[test], prior),
        })
    out = {key: {"mean": float(np.mean([f[key] for f in per_fold])), "std": float(np.std([f[key] for f in per_fold]))}
           for key in ("miou", "pixel_miou", "pixel_f1", "patch_f1")}
    out["chance_miou"] = float(np.mean([f["chance_miou"] for f in per_fold]))
    out["foreground_pixels"] = float(masks.mean())
    out["per_fold"] = per_fold
    out["grid"] = grid
    return out


# ---------------------------------------------------------------- the registered protocol


def _mask_base(data) -> Path:
    """The folder mask paths are relative to: the labels CSV's folder (the data spec is the CSV or its folder)."""
    spec = Path(str(data.name).split(":", 1)[-1])
    return spec.parent if spec.suffix.lower() == ".csv" else spec


def load_masks(data, cfg: SegmentationConfig) -> np.ndarray:
    """(N, H, W) bool masks of ``data.train`` from its ``mask`` column, in the labeled set's order."""
    from tessera.corpus.readers import read_image

    meta = data.train.meta
    if cfg.mask_column not in meta.columns:
        raise TesseraError(f"{data.name}: the segmentation probe needs a '{cfg.mask_column}' column of mask paths "
                           "(config key segmentation.mask_column)")
    base = _mask_base(data)
    masks = []
    for rel, image in zip(meta[cfg.mask_column], data.train.images):
        path = Path(str(rel))
        raw = np.asarray(read_image(path if path.is_absolute() else base / path), dtype=np.float32)
        raw = raw.max(axis=0) if raw.ndim == 3 else raw
        if raw.shape != tuple(image.shape[-2:]):
            raise TesseraError(f"{path}: mask is {raw.shape[0]}x{raw.shape[1]}, its image is "
                               f"{image.shape[-2]}x{image.shape[-1]}")
        scale = 1.0 if raw.max() <= 1.0 else 255.0 if raw.max() <= 255.0 else 65535.0
        masks.append(raw >= 0.5 * scale)
    return np.stack(masks)


def extract_patch_tokens(encoder, data, layer: int, batch_size: int) -> np.ndarray:
    """(N, L, D) float32 patch tokens of ``data.train`` at block ``layer`` (the encoder interface, DESIGN §3.3)."""
    parts = []
    n = len(data.train)
    for lo in range(0, n, batch_size):
        images = data.train.batch(range(lo, min(lo + batch_size, n)))
        parts.append(encoder.tokens(images, layer=layer)["patches"].float().cpu().numpy())
    return np.concatenate(parts)


def image_folds(n: int, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """K folds over images (every patch of an image stays on one side)."""
    from sklearn.model_selection import KFold

    return [(tr, te) for tr, te in KFold(k, shuffle=True, random_state=seed).split(np.arange(n))]


def _summary(inp) -> dict:
    cfg = getattr(inp.cfg, "segmentation", None) or SegmentationConfig()
    masks = load_masks(inp.data, cfg)
    tokens = extract_patch_tokens(inp.encoder, inp.data, inp.layer, inp.cfg.extract_batch_size)
    return {"segmentation": dense_probe(tokens, masks, image_folds(len(masks), inp.cfg.folds, inp.cfg.seed), cfg,
                                        inp.cfg.seed)}


PROTOCOL = Protocol(name="segmentation", needs=frozenset({"encoder", "labels"}), tasks=frozenset({"classification"}),
                    summary=_summary, sweepable=False)
