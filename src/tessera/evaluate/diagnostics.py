"""Dense-feature health of an encoder (seed 002 §2, §8; Darcet et al. 2024, "Vision Transformers Need Registers").

Over a set of evaluation images: the distribution of patch-token norms and the fraction of high-norm outlier
tokens (norm > ``outlier_factor`` x the median patch norm: the artifact tokens that registers absorb), whether
those outliers sit on background or on source pixels (from the image's own mean intensity under each patch),
the mean cosine between CLS and patch tokens per block (CLS-patch drift), the effective rank of the patch
features, and the last block's attention maps of a few images (CLS and, with registers, register rows;
computed on the eager path by the encoder). The pure functions take token tensors, so they are tested on
planted tokens; :func:`diagnose` runs them through the encoder interface (``tokens(..., layers=)``,
``attention``); :func:`run_diagnostics` writes ``diagnostics.json`` and ``diagnostics.png``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from tessera.errors import TesseraError


def token_norm_outliers(patches: torch.Tensor, factor: float = 10.0) -> dict:
    """patches (N, L, D) -> {"norms" (N, L), "median", "threshold", "mask" (N, L) bool, "count", "fraction",
    "positions": [(image, token), ...]}: outliers are tokens whose l2 norm exceeds ``factor`` x the median norm
    over all N*L tokens."""
    norms = torch.linalg.vector_norm(patches.float(), dim=-1)
    median = float(norms.median())
    threshold = factor * median
    mask = norms > threshold
    positions = [tuple(int(v) for v in p) for p in torch.nonzero(mask).tolist()]
    return {"norms": norms, "median": median, "threshold": threshold, "mask": mask, "count": int(mask.sum()),
            "fraction": float(mask.float().mean()), "positions": positions}


def source_patch_mask(images01: torch.Tensor, grid: int, level: float = 0.1) -> torch.Tensor:
    """images01 (N, C, H, W) in [0, 1] -> (N, grid*grid) bool in the encoder's patch order (row-major): True where
    the mean intensity under the patch exceeds ``level`` (source), False for background sky."""
    pooled = F.adaptive_avg_pool2d(images01.float().mean(dim=1, keepdim=True), grid)  # (N, 1, g, g)
    return (pooled.flatten(1) > level)


def cls_patch_cosine(cls: torch.Tensor, patches: torch.Tensor) -> float:
    """Mean cosine similarity between each image's CLS (N, D) and its patch tokens (N, L, D)."""
    return float(F.cosine_similarity(patches.float(), cls.float()[:, None, :], dim=-1).mean())


def effective_rank(features: torch.Tensor) -> float:
    """Effective rank (Roy & Vetterli 2007) of features (M, D): exp of the entropy of the normalized singular
    values of the centred matrix; 1 = collapsed onto a line, D = isotropic."""
    x = features.double()
    x = x - x.mean(dim=0, keepdim=True)
    s = torch.linalg.svdvals(x)
    if float(s.sum()) == 0.0:
        return 0.0
    p = s / s.sum()
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def _resize(images, size: int) -> torch.Tensor:
    x = torch.as_tensor(images, dtype=torch.float32)
    if tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False).clamp(0.0, 1.0)
    return x


def diagnose(encoder, images, outlier_factor: float = 10.0, source_level: float = 0.1, attention_images: int = 4,
             batch_size: int = 32) -> dict:
    """Diagnostics of ``encoder`` on images (N, C, H, W) in [0, 1]; returns JSON-safe numbers plus the arrays the
    figure needs (``_norms`` (N*L,), ``_attention`` (n, rows, g, g)), which :func:`run_diagnostics` drops from
    the JSON. Needs ``encoder.tokens(images, layers=[...])`` and ``encoder.attention(images)``."""
    if not hasattr(encoder, "attention"):
        raise TesseraError(f"diagnostics need an encoder with tokens(..., layers=) and attention(); "
                           f"{getattr(encoder, 'name', type(encoder).__name__)} has none")
    images = torch.as_tensor(images, dtype=torch.float32)
    depth = int(encoder.num_layers)
    per_block: dict[int, list[float]] = {b: [] for b in range(depth)}
    last_patches, last_cls = [], []
    for s in range(0, len(images), batch_size):
        toks = encoder.tokens(images[s : s + batch_size], layers=list(range(depth)))
        for b in range(depth):
            n = len(toks[b]["cls"])
            per_block[b].append((cls_patch_cosine(toks[b]["cls"], toks[b]["patches"]), n))
        last_patches.append(toks[depth - 1]["patches"].cpu())
        last_cls.append(toks[depth - 1]["cls"].cpu())
    patches = torch.cat(last_patches)  # (N, L, D)
    n_img, n_tok, dim = patches.shape
    grid = int(round(n_tok ** 0.5))
    out = token_norm_outliers(patches, outlier_factor)
    src = source_patch_mask(_resize(images, int(encoder.image_size)), grid,
                            source_level) if grid * grid == n_tok else None
    on_source = int((out["mask"] & src).sum()) if src is not None else None
    result = {
        "n_images": int(n_img), "tokens_per_image": int(n_tok), "hidden_size": int(dim),
        "registers": int(getattr(encoder, "num_registers", 0)),
        "patch_norm": {"median": out["median"], "mean": float(out["norms"].mean()),
                       "p99": float(out["norms"].quantile(0.99)),
                       "max": float(out["norms"].max())},
        "outliers": {"factor": outlier_factor, "threshold": out["threshold"], "count": out["count"],
                     "fraction": out["fraction"], "on_source": on_source,
                     "on_background": (out["count"] - on_source) if on_source is not None else None,
                     "source_patch_fraction": float(src.float().mean()) if src is not None else None},
        "cls_patch_cosine": [float(sum(c * n for c, n in v) / sum(n for _, n in v)) for b,
                             v in sorted(per_block.items())],
        "effective_rank": effective_rank(patches.reshape(-1, dim)),
        "_norms": out["norms"].flatten().numpy(),
    }
    if attention_images and grid * grid == n_tok:
        attn = encoder.attention(images[:attention_images]).float().mean(dim=1)  # (n, T, T), mean over heads
        r = result["registers"]
        rows = attn[:, : 1 + r, 1 + r :]  # CLS and register rows, patch columns
        result["_attention"] = rows.reshape(len(rows), 1 + r, grid, grid).cpu().numpy()
        result["_images"] = _resize(images[:attention_images], int(encoder.image_size))[:, 0].numpy()
    return result


def diagnostics_figure(diag: dict, path, title: str = "") -> Path:
    """Norm histogram (log x, outlier threshold), CLS-patch cosine per block, and attention maps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    att = diag.get("_attention")
    n_att = 0 if att is None else len(att)
    rows_att = 0 if att is None else att.shape[1]
    fig = plt.figure(figsize=(10, 3.2 * (1 + (1 if n_att else 0))))
    ax = fig.add_subplot(2 if n_att else 1, 2, 1)
    norms = np.maximum(np.asarray(diag["_norms"]), 1e-6)
    ax.hist(norms, bins=np.logspace(np.log10(norms.min()), np.log10(norms.max()) + 1e-6, 50))
    ax.axvline(diag["outliers"]["threshold"], color="r", ls="--", label=f"{diag['outliers']['factor']:g}x median")
    ax.set_xscale("log")
    ax.set_xlabel("patch-token norm (last block)")
    ax.set_title(f"outliers {diag['outliers']['count']} ({100 * diag['outliers']['fraction']:.2f} %)", fontsize=9)
    ax.legend(fontsize=8)
    ax = fig.add_subplot(2 if n_att else 1, 2, 2)
    ax.plot(range(len(diag["cls_patch_cosine"])), diag["cls_patch_cosine"], marker="o")
    ax.set_xlabel("block")
    ax.set_ylabel("mean cos(CLS, patch)")
    ax.set_title(f"effective rank {diag['effective_rank']:.1f} / {diag['hidden_size']}", fontsize=9)
    if n_att:
        cols = n_att * (1 + rows_att)
        for i in range(n_att):
            a = fig.add_subplot(2, cols, cols + i * (1 + rows_att) + 1)
            a.imshow(diag["_images"][i], cmap="gray")
            a.set_axis_off()
            for j in range(rows_att):
                a = fig.add_subplot(2, cols, cols + i * (1 + rows_att) + 2 + j)
                a.imshow(att[i, j], cmap="inferno")
                a.set_title("CLS" if j == 0 else f"reg {j}", fontsize=7)
                a.set_axis_off()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def run_diagnostics(encoder, ls, out_dir, cfg, seed: int = 0, name: str = "") -> dict:
    """Diagnostics on a seeded subset (``cfg.max_images``) of labeled set ``ls`` (images of one shape are resized
    by the encoder); writes ``out_dir/diagnostics.json`` and ``diagnostics.png``; returns the JSON dict."""
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(ls), size=min(cfg.max_images, len(ls)), replace=False))
    size = int(encoder.image_size)
    images = torch.cat([_resize(ls.batch(g), size) for g in ls.shape_groups(idx)])
    diag = diagnose(encoder, images, cfg.outlier_factor, cfg.source_level, cfg.attention_images)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    diagnostics_figure(diag, out_dir / "diagnostics.png", title=name)
    public = {"model": name, **{k: v for k, v in diag.items() if not k.startswith("_")}}
    (out_dir / "diagnostics.json").write_text(json.dumps(public, indent=2))
    return public


def diagnostics_table(diags: list[dict]) -> str:
    """Markdown: one row per model: outlier fraction (on source / background), effective rank, last-block CLS-patch
    cosine."""
    lines = ["| Model | Registers | Outlier tokens | On source | On background | Effective rank | CLS-patch cos (last) "
             "|",
             "|---|---|---|---|---|---|---|"]
    for d in diags:
        o = d["outliers"]
        lines.append(f"| {d['model']} | {d['registers']} | {100 * o['fraction']:.2f} % ({o['count']}) | "
                     f"{o['on_source']} | "
                     f"{o['on_background']} | {d['effective_rank']:.1f} | {d['cls_patch_cosine'][-1]:.3f} |")
    return "\n".join(lines) + "\n"
