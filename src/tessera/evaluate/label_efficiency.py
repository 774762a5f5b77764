"""Label efficiency (issue 11): a probe trained on 5, 10, 25, 50 and all training labels per class.

Inside each outer training fold, ``draws`` random subsets with n images per class (all of a class when it has
fewer) train the protocol's predictor, which is scored on the full held-out fold; "all" (n = 0) is one draw.
Metrics are mean ± std over folds x draws. Users adopt pretraining to need fewer labels: this is where a gain
should show first.
"""

from __future__ import annotations

import numpy as np

from tessera.evaluate.metrics import CLASSIFICATION_METRICS, fold_metrics, mean_std


def subsample_per_class(train_idx: np.ndarray, labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """At most ``n`` indices of each class from ``train_idx`` (sorted); n = 0 keeps all."""
    train_idx = np.asarray(train_idx)
    if n == 0:
        return train_idx
    keep = []
    for c in np.unique(labels[train_idx]):
        idx = train_idx[labels[train_idx] == c]
        keep.append(idx if len(idx) <= n else rng.choice(idx, size=n, replace=False))
    return np.sort(np.concatenate(keep))


def label_efficiency_rows(predictor, labels: np.ndarray, folds, n_classes: int, shots, draws: int,
                          seed: int) -> list[dict]:
    """One row per shot level: {"per_class": n | "all", "n_draws", "n_train": mean training-set size, metrics...}.

    predictor(train_idx, test_idx, seed) -> FoldResult (a registry protocol's); labels (N,) class ids."""
    rows = []
    for n in shots:
        per, sizes = [], []
        n_draws = 1 if n == 0 else draws
        for k, (tr, te) in enumerate(folds):
            for d in range(n_draws):
                rng = np.random.default_rng([seed, k, d, n])
                sub = subsample_per_class(tr, labels, n, rng)
                fr = predictor(sub, te, seed + k)
                per.append(fold_metrics(fr.y_true, fr.y_pred, n_classes, fr.scores))
                sizes.append(len(sub))
        row = {"per_class": n if n else "all", "n_draws": n_draws, "n_train": float(np.mean(sizes))}
        for key in CLASSIFICATION_METRICS:
            if all(p.get(key) is not None for p in per):
                row[key] = mean_std([p[key] for p in per])
        rows.append(row)
    return rows


def label_efficiency_table(results: list[dict], metric: str = "macro_f1") -> str:
    """Markdown: rows = model / protocol, columns = labels per class, cells = mean ± std of ``metric``."""
    rows = [r for r in results if r.get("label_efficiency")]
    if not rows:
        return ""
    levels = list(dict.fromkeys(str(x["per_class"]) for r in rows for x in r["label_efficiency"]))
    lines = ["| Model | Protocol | " + " | ".join(f"{lv}/class" for lv in levels) + " |",
             "|" + "---|" * (len(levels) + 2)]
    for r in rows:
        cells = {str(x["per_class"]): x.get(metric) for x in r["label_efficiency"]}
        fmt = [f"{cells[lv]['mean']:.3f} ± {cells[lv]['std']:.3f}" if cells.get(lv) else "-" for lv in levels]
        lines.append(f"| {r['model']} | {r['protocol']} | " + " | ".join(fmt) + " |")
    return "\n".join(lines) + "\n"


def label_efficiency_figure(results: list[dict], path, metric: str = "macro_f1"):
    """One panel per model: ``metric`` against labels per class (log x), one line per protocol, ± std band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in results if r.get("label_efficiency")]
    models = list(dict.fromkeys(r["model"] for r in rows))
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.4), squeeze=False)
    for ax, model in zip(axes[0], models):
        for r in (r for r in rows if r["model"] == model):
            pts = r["label_efficiency"]
            x = np.array([p["n_train"] / len(r["classes"]) for p in pts])
            y = np.array([p[metric]["mean"] for p in pts])
            s = np.array([p[metric]["std"] for p in pts])
            ax.plot(x, y, marker="o", label=r["protocol"])
            ax.fill_between(x, y - s, y + s, alpha=0.2)
        ax.set_xscale("log")
        ax.set_xlabel("training labels per class (mean)")
        ax.set_ylabel(metric)
        ax.set_title(model, fontsize=9)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
