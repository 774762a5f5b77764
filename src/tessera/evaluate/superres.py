"""Super-resolution evaluation (seed 001 §4-5, issue 16): a PixelShuffle head on the encoder's token grid,
trained on LR/HR pairs with the encoder frozen or fine-tuned, scored by SSIM and PSNR (scikit-image,
``data_range=1`` on [0, 1] images) on held-out pairs against bicubic upsampling and against the same head on
other encoders (e.g. ``random:NAME``, the from-scratch baseline).

Pairs come from a CSV with ``lr_path`` and ``hr_path`` columns (paths relative to it; ``tessera simulate lensing``
writes them into labels.csv) or a folder holding such a labels.csv. Arrays are NPY or any readable image; values
are expected in [0, 1] (DeepLense's SR arrays and ours are) and clipped to it. All LR images share one shape, all
HR images another, an integer multiple of it: anything else is one error naming the file.

The encoder is used only through its interface (DESIGN §3.3): ``tokens`` (frozen) and, for fine-tuning, its
module on ``prepare``'d images as the fine-tune protocol does. One seeded hold-out split (``test_fraction``)
serves every model and mode, so the numbers are paired.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tessera.errors import ConfigError, TesseraError

PAIR_COLUMNS = ("lr_path", "hr_path")
MODES = ("frozen", "finetune")


@dataclass
class SuperResConfig:
    """Head training and evaluation settings (seed 001 §4: Adam, task-specific lr)."""

    modes: tuple[str, ...] = MODES
    epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-3  # head
    encoder_lr: float = 1e-4  # encoder, when fine-tuned
    width: int = 64  # channels of the head's conv blocks
    loss: str = "l1"  # "l1" or "l2" on [0, 1] pixels
    test_fraction: float = 0.2
    seed: int = 0
    max_pairs: int | None = None  # seeded subset (quick runs)
    figure_samples: int = 4
    device: str = "auto"

    def validate(self) -> None:
        bad = [m for m in self.modes if m not in MODES]
        if bad or not self.modes:
            raise ConfigError(f"config key 'modes': choose among {MODES}, got {list(self.modes)}")
        for name in ("epochs", "batch_size", "width"):
            if getattr(self, name) < 1:
                raise ConfigError(f"config key '{name}': must be >= 1, got {getattr(self, name)}")
        for name in ("lr", "encoder_lr"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"config key '{name}': must be > 0, got {getattr(self, name)}")
        if self.loss not in ("l1", "l2"):
            raise ConfigError(f"config key 'loss': 'l1' or 'l2', got {self.loss!r}")
        if not 0.0 < self.test_fraction < 1.0:
            raise ConfigError(f"config key 'test_fraction': must be in (0, 1), got {self.test_fraction}")
        if self.max_pairs is not None and self.max_pairs < 2:
            raise ConfigError(f"config key 'max_pairs': must be >= 2 or null, got {self.max_pairs}")


@dataclass
class SRPairs:
    """Matched pairs: ``lr`` (N, C, h, w) and ``hr`` (N, C, H, W) float32 in [0, 1], H = factor x h."""

    lr: np.ndarray
    hr: np.ndarray
    sources: list[str]
    labels: list[str] = field(default_factory=list)
    name: str = ""

    def __len__(self) -> int:
        return len(self.lr)

    @property
    def factor(self) -> int:
        return self.hr.shape[-1] // self.lr.shape[-1]


# ---------------------------------------------------------------- data
def _read_array(path: Path) -> np.ndarray:
    """(C, H, W) float32 from an NPY or any image tessera reads; (H, W) becomes (1, H, W)."""
    if path.suffix == ".npy":
        arr = np.load(path)
    else:
        from tessera.corpus.readers import read_image

        arr = read_image(path)
    arr = np.asarray(arr, dtype=np.float32)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise TesseraError(f"{path}: expected an image (H, W) or (C, H, W), got shape {arr.shape}")
    return np.clip(np.nan_to_num(arr, nan=0.0), 0.0, 1.0)


def _pair_table(path: Path):
    import pandas as pd

    csv = path / "labels.csv" if path.is_dir() else path
    if not csv.is_file():
        raise TesseraError(f"{path}: no pair CSV (expected a CSV with lr_path,hr_path or a folder holding labels.csv)")
    try:
        table = pd.read_csv(csv)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise TesseraError(f"{csv}: not a readable CSV ({type(exc).__name__})") from None
    missing = [c for c in PAIR_COLUMNS if c not in table.columns]
    if missing:
        raise TesseraError(f"{csv}: missing column(s) {missing}; super-resolution needs lr_path,hr_path")
    if table.empty:
        raise TesseraError(f"{csv}: no rows below the header")
    return csv, table


def load_sr_pairs(path: str | Path, max_pairs: int | None = None, seed: int = 0) -> SRPairs:
    """Read every (lr_path, hr_path) row of the CSV (or DIR/labels.csv); see the module docstring."""
    csv, table = _pair_table(Path(path))
    if max_pairs is not None and len(table) > max_pairs:
        keep = np.sort(np.random.default_rng(seed).choice(len(table), size=max_pairs, replace=False))
        table = table.iloc[keep]
    lrs, hrs = [], []
    for line, row in zip(table.index + 2, table.to_dict("records")):
        pair = []
        for col in PAIR_COLUMNS:
            file = csv.parent / str(row[col])
            if not file.is_file():
                raise TesseraError(f"{csv}: line {line}: {col} {row[col]!r} does not exist")
            pair.append(_read_array(file))
        lr, hr = pair
        if lrs and (lr.shape != lrs[0].shape or hr.shape != hrs[0].shape):
            raise TesseraError(f"{csv}: line {line}: LR {lr.shape} / HR {hr.shape} differ from the first pair's "
                               f"{lrs[0].shape} / {hrs[0].shape}; all pairs must share one LR and one HR size")
        lrs.append(lr)
        hrs.append(hr)
    check_pair_shapes(lrs[0].shape, hrs[0].shape, str(csv))
    labels = [str(v) for v in table["label"]] if "label" in table.columns else []
    return SRPairs(np.stack(lrs), np.stack(hrs), [str(v) for v in table["lr_path"]], labels, name=str(csv))


def check_pair_shapes(lr_shape: tuple, hr_shape: tuple, where: str) -> int:
    """The integer upscaling factor of (C, h, w) -> (C, H, W); a one-line error naming ``where`` otherwise."""
    c, h, w = lr_shape
    c2, hh, ww = hr_shape
    ok = c == c2 and h == w and hh == ww and hh % h == 0 and hh > h
    if not ok:
        raise TesseraError(f"{where}: LR {tuple(lr_shape)} and HR {tuple(hr_shape)} do not match: need square "
                           "images, the same channels, and an HR side an integer multiple (> 1) of the LR side")
    return hh // h


def split_pairs(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded hold-out split of range(n): (train indices, test indices), both sorted, both non-empty."""
    perm = np.random.default_rng(seed).permutation(n)
    n_test = min(n - 1, max(1, round(test_fraction * n)))
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


# ---------------------------------------------------------------- metrics
def ssim_psnr(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-image SSIM and PSNR (scikit-image, data_range=1): pred, target (N, C, H, W) in [0, 1] -> (N,), (N,).

    Multi-channel images are scored channel-wise and averaged (``channel_axis``); identical images give SSIM 1
    and PSNR inf."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    pred, target = np.asarray(pred, dtype=np.float64), np.asarray(target, dtype=np.float64)
    if pred.shape != target.shape:
        raise ValueError(f"prediction {pred.shape} and target {target.shape} differ in shape")
    ssim, psnr = np.empty(len(pred)), np.empty(len(pred))
    for i, (p, t) in enumerate(zip(pred, target)):
        if p.shape[0] == 1:
            ssim[i] = structural_similarity(t[0], p[0], data_range=1.0)
        else:
            ssim[i] = structural_similarity(t, p, data_range=1.0, channel_axis=0)
        if np.array_equal(p, t):
            psnr[i] = math.inf  # skimage divides by a zero MSE
        else:
            psnr[i] = peak_signal_noise_ratio(t, p, data_range=1.0)
    return ssim, psnr


def summarize(ssim: np.ndarray, psnr: np.ndarray) -> dict:
    return {"ssim": {"mean": float(np.mean(ssim)), "std": float(np.std(ssim))},
            "psnr": {"mean": float(np.mean(psnr)), "std": float(np.std(psnr))}}


def bicubic_baseline(pairs: SRPairs, idx: np.ndarray) -> np.ndarray:
    """Bicubic upsampling of ``pairs.lr[idx]`` to the HR size: (n, C, H, W) in [0, 1]."""
    import torch

    from tessera.models.superres import bicubic_upsample

    return bicubic_upsample(torch.from_numpy(pairs.lr[idx]), pairs.hr.shape[-1]).numpy()


# ---------------------------------------------------------------- training
def head_stages(encoder, hr_size: int) -> int:
    """PixelShuffle x2 stages taking the encoder's token grid to ``hr_size``; one-line error when none fits."""
    import torch

    probe = torch.zeros(1, 1, encoder.image_size, encoder.image_size)
    grid = math.isqrt(encoder.tokens(probe)["patches"].shape[1])  # any encoder: count its patch tokens
    stages = math.log2(hr_size / grid) if hr_size >= grid else -1.0
    if stages < 1 or stages != int(stages):
        raise TesseraError(f"encoder {encoder.name!r}: its {grid}x{grid} token grid cannot reach HR {hr_size} px "
                           "by x2 PixelShuffle stages (HR side / grid must be 2, 4, 8, ...)")
    return int(stages)


def _patch_tokens(enc, x, mode: str):
    """(B, L, D) patch tokens of LR images x (B, C, h, w): no gradient when frozen, differentiable when fine-tuned."""
    if mode == "frozen":
        return enc.tokens(x)["patches"]
    return enc.module(enc.prepare(x)).patches


def frozen_tokens(enc, pairs: SRPairs, idx: np.ndarray, batch_size: int, device):
    """Patch tokens of ``pairs.lr[idx]`` computed once, on the CPU: (n, L, D). A frozen encoder gives the same
    tokens every epoch, so the head trains on this cache instead of re-running the encoder per batch (the
    encoder's forward is most of the cost of a frozen run)."""
    import torch

    out = []
    for s in range(0, len(idx), batch_size):
        lr = torch.from_numpy(pairs.lr[idx[s : s + batch_size]]).to(device)
        out.append(enc.tokens(lr)["patches"].detach().cpu())
    return torch.cat(out)


def train_sr(encoder, pairs: SRPairs, train_idx: np.ndarray, cfg: SuperResConfig, mode: str, device=None):
    """Train a fresh head (and, for ``finetune``, a copy of the encoder) on ``pairs[train_idx]``.

    Returns (encoder used, head, per-epoch mean training losses)."""
    import torch
    import torch.nn.functional as F

    from tessera.models.superres import SuperResolutionHead

    device = torch.device(device or "cpu")
    enc = copy.deepcopy(encoder) if mode == "finetune" else encoder
    enc.module.to(device)
    torch.manual_seed(cfg.seed)
    head = SuperResolutionHead(enc.hidden_size, pairs.hr.shape[1], cfg.width, head_stages(enc, pairs.hr.shape[-1]))
    head.to(device)
    groups = [{"params": list(head.parameters()), "lr": cfg.lr}]
    if mode == "finetune":
        groups.append({"params": list(enc.module.parameters()), "lr": cfg.encoder_lr})
        enc.module.train()
    opt = torch.optim.Adam(groups)
    loss_fn = F.l1_loss if cfg.loss == "l1" else F.mse_loss
    g = torch.Generator().manual_seed(cfg.seed)
    cached = frozen_tokens(enc, pairs, train_idx, cfg.batch_size, device) if mode == "frozen" else None
    losses = []
    for _ in range(cfg.epochs):
        order = torch.randperm(len(train_idx), generator=g).numpy()
        total = 0.0
        for s in range(0, len(order), cfg.batch_size):
            rows = order[s : s + cfg.batch_size]
            idx = train_idx[rows]
            lr = torch.from_numpy(pairs.lr[idx]).to(device)
            hr = torch.from_numpy(pairs.hr[idx]).to(device)
            tokens = cached[torch.from_numpy(rows)].to(device) if cached is not None else _patch_tokens(enc, lr, mode)
            loss = loss_fn(head(tokens, lr), hr)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        losses.append(total / len(train_idx))
    if mode == "finetune":
        enc.invalidate_fingerprint()
    return enc, head, losses


def predict_sr(enc, head, pairs: SRPairs, idx: np.ndarray, batch_size: int = 64, device=None) -> np.ndarray:
    """Super-resolved ``pairs.lr[idx]``: (n, C, H, W) clamped to [0, 1]."""
    import torch

    device = torch.device(device or "cpu")
    head.eval()
    out = []
    with torch.no_grad():
        for s in range(0, len(idx), batch_size):
            lr = torch.from_numpy(pairs.lr[idx[s : s + batch_size]]).to(device)
            out.append(head(enc.tokens(lr)["patches"], lr).clamp(0.0, 1.0).cpu().numpy())
    head.train()
    return np.concatenate(out)


def evaluate_superres(models: list[tuple[str, object]], pairs: SRPairs, cfg: SuperResConfig) -> dict:
    """Bicubic and every (model, mode) on one seeded hold-out split; returns the results dict (results.json)
    and, under ``"_predictions"``, {row name: (n_test, C, H, W)} for the figure (not serialized)."""
    import torch

    cfg.validate()
    device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    for _, encoder in models:  # every encoder must fit before any training starts
        head_stages(encoder, pairs.hr.shape[-1])
    train_idx, test_idx = split_pairs(len(pairs), cfg.test_fraction, cfg.seed)
    target = pairs.hr[test_idx]
    t0 = time.perf_counter()
    bicubic = bicubic_baseline(pairs, test_idx)
    rows = [{"model": "bicubic", "mode": "-", **summarize(*ssim_psnr(bicubic, target)),
             "seconds": time.perf_counter() - t0}]
    predictions = {"bicubic": bicubic}
    for name, encoder in models:
        for mode in cfg.modes:
            t0 = time.perf_counter()
            enc, head, losses = train_sr(encoder, pairs, train_idx, cfg, mode, device)
            pred = predict_sr(enc, head, pairs, test_idx, device=device)
            rows.append({"model": name, "mode": mode, **summarize(*ssim_psnr(pred, target)),
                         "train_loss": losses, "seconds": time.perf_counter() - t0})
            predictions[f"{name} ({mode})"] = pred
    return {
        "data": pairs.name, "protocol": "superres", "n_pairs": len(pairs), "n_train": len(train_idx),
        "n_test": len(test_idx), "lr_size": int(pairs.lr.shape[-1]), "hr_size": int(pairs.hr.shape[-1]),
        "seed": cfg.seed, "test_sources": [pairs.sources[i] for i in test_idx], "rows": rows,
        "_predictions": predictions, "_test_idx": test_idx,
    }


# ---------------------------------------------------------------- outputs
def results_table(results: dict) -> str:
    """Markdown table: model, mode, SSIM and PSNR (mean ± std over the held-out pairs), minutes."""
    lines = [f"Super-resolution {results['lr_size']} -> {results['hr_size']} px on {results['n_test']} held-out pairs "
             f"({results['n_train']} for training), SSIM / PSNR with data_range=1.", "",
             "| model | encoder | SSIM | PSNR (dB) | minutes |", "|---|---|---|---|---|"]
    for r in results["rows"]:
        lines.append(f"| {r['model']} | {r['mode']} | {r['ssim']['mean']:.4f} ± {r['ssim']['std']:.4f} | "
                     f"{r['psnr']['mean']:.2f} ± {r['psnr']['std']:.2f} | {r['seconds'] / 60:.1f} |")
    return "\n".join(lines) + "\n"


def save_figure(results: dict, pairs: SRPairs, path: str | Path, row: str | None = None, samples: int = 4) -> Path:
    """LR / bicubic / SR (``row``, default the last model row) / HR / |SR - HR| for the first ``samples``
    held-out pairs, one pair per figure row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    preds = results["_predictions"]
    row = row or [k for k in preds if k != "bicubic"][-1]
    idx = results["_test_idx"]
    n = max(1, min(samples, len(idx)))
    fig, axes = plt.subplots(n, 5, figsize=(10, 2.1 * n), squeeze=False)
    titles = ("LR", "bicubic", f"SR: {row}", "HR", "|SR - HR|")
    for r in range(n):
        sr, hr = preds[row][r, 0], pairs.hr[idx[r], 0]
        panels = (pairs.lr[idx[r], 0], preds["bicubic"][r, 0], sr, hr, np.abs(sr - hr))
        for c, (img, title) in enumerate(zip(panels, titles)):
            ax = axes[r, c]
            ax.imshow(img, origin="lower", cmap="magma" if c == 4 else "viridis", vmin=0, vmax=None if c == 4 else 1,
                      interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
