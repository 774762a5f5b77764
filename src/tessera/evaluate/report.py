"""Comparison tables (seed 000 Tables 6-14), recall-form confusion figures (Figure 4) and layer-sweep plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tessera.evaluate.metrics import recall_matrix


def _fmt(stat: dict) -> str:
    return f"{stat['mean']:.3f} ± {stat['std']:.3f}"


def _group(result: dict, several_data: bool) -> str:
    name = result["protocol"]
    if result.get("layer", -1) not in (-1, None):
        name += f" (layer {result['layer']})"
    return f"{result['data']} / {name}" if several_data else name


# (column name, result key, higher is better) per task; old results.json files lack "task": classification.
EXTRA_CLASSIFICATION = (("Balanced-Acc", "balanced_accuracy", True), ("ROC-AUC", "roc_auc", True))
REGRESSION_COLUMNS = (("R2", "r2", True), ("MAE", "mae", False))


def _retrieval_columns(result: dict) -> list[tuple[str, callable, bool]]:
    cols = []
    for direction, metrics in result.get("match_retrieval", {}).items():
        for key in ("recall@1", "recall@10", "median_rank"):
            if key in metrics:
                cols.append((f"{direction} {key}", lambda r, d=direction, k=key: r["match_retrieval"][d].get(k),
                             key != "median_rank"))
    for key in result.get("label_retrieval", {}):
        cols.append((f"label {key}", lambda r, k=key: r["label_retrieval"].get(k), True))
    return cols


def _rank_key(result: dict, column: str, get, sign: int):
    """What "best" means in a column (higher is better after ``sign``); Macro-F1 ties are broken by weighted-F1."""
    if column == "Macro-F1":
        weighted = (result.get("weighted_f1") or {"mean": 0})["mean"]
        return (round(result["macro_f1"]["mean"], 3), round(weighted, 3))
    return sign * round(get(result)["mean"], 3)


def _columns(group_results: list[dict]) -> list[tuple[str, callable, bool]]:
    """The metric columns of one (data /) protocol group: (name, result -> {"mean", "std"} | None, higher better)."""
    task = group_results[0].get("task", "classification")
    if task == "retrieval":
        return list({c[0]: c for r in group_results for c in _retrieval_columns(r)}.values())
    if task == "regression":
        return [(n, lambda r, k=k: r.get(k), hb) for n, k, hb in REGRESSION_COLUMNS]
    if all("segmentation" in r for r in group_results):  # the dense probe (evaluate/segmentation.py)
        return [(n, lambda r, k=k: r["segmentation"].get(k), True)
                for n, k in (("mIoU", "miou"), ("Pixel mIoU", "pixel_miou"), ("Pixel F1", "pixel_f1"))]
    cols = [("Macro-F1", lambda r: r.get("macro_f1"), True), ("Weighted-F1", lambda r: r.get("weighted_f1"), True)]
    for n, k, hb in EXTRA_CLASSIFICATION:  # only where some result has them (old files do not)
        if any(r.get(k) for r in group_results):
            cols.append((n, lambda r, k=k: r.get(k), hb))
    return cols


def comparison_table(results: list[dict]) -> tuple[str, pd.DataFrame]:
    """Rows = models, columns = (data /) protocol x metric as mean ± std (3 decimals).

    Classification: Macro-F1 and Weighted-F1 (plus balanced accuracy and ROC AUC where the results have them);
    regression: R² and MAE; retrieval: recall@1/10 and median rank per direction, label precision@k.
    Best per column in bold (lowest for MAE and median rank); for Macro-F1, ties (at 3 decimals) are broken by
    Weighted-F1 as in seed 000 Table 6. Results written before the newer metrics load unchanged.
    Returns (markdown, DataFrame of the same cells without bold).
    """
    several_data = len({r["data"] for r in results}) > 1
    models = list(dict.fromkeys(r["model"] for r in results))
    groups = list(dict.fromkeys(_group(r, several_data) for r in results))
    cell = {(r["model"], _group(r, several_data)): r for r in results}
    columns = []  # (group, column name, getter, higher better)
    for g in groups:
        members = [r for r in results if _group(r, several_data) == g]
        columns += [(g, n, get, hb) for n, get, hb in _columns(members)]
    names = [f"{g} {n}" for g, n, _, _ in columns]
    df = pd.DataFrame(index=pd.Index(models, name="Model"), columns=names, dtype=object)
    bold: set[tuple[str, str]] = set()
    for g, n, get, hb in columns:
        col = f"{g} {n}"
        present = [m for m in models if (m, g) in cell and get(cell[(m, g)])]
        for m in present:
            df.loc[m, col] = _fmt(get(cell[(m, g)]))
        if not present:
            continue
        scores = {m: _rank_key(cell[(m, g)], n, get, 1 if hb else -1) for m in present}
        best = max(scores.values())
        bold.update((m, col) for m in present if scores[m] == best)
    df = df.fillna("-")
    header = "| Model | " + " | ".join(names) + " |"
    lines = [header, "|" + "---|" * (len(names) + 1)]
    for m in models:
        cells = [f"**{df.loc[m, c]}**" if (m, c) in bold else df.loc[m, c] for c in df.columns]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n", df


def load_results(paths) -> list[dict]:
    """results.json files (any schema version) -> result dicts; a file without ``task`` is classification."""
    import json

    out = []
    for p in paths:
        r = json.loads(Path(p).read_text())
        r.setdefault("task", "regression" if "r2" in r else "retrieval" if "match_retrieval" in r else "classification")
        out.append(r)
    return out


def write_comparison(results: list[dict], out: str | Path) -> str:
    """DIR/comparison.md and DIR/comparison.csv; returns the markdown."""
    md, df = comparison_table(results)
    out = Path(out)
    (out / "comparison.md").write_text(md)
    df.to_csv(out / "comparison.csv")
    return md


def confusion_figure(results: list[dict], path: str | Path) -> Path:
    """Recall-form confusion matrices (% per true class; rows true, columns predicted), models side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(results)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n + 0.6, 3.8), squeeze=False)
    for ax, r in zip(axes[0], results):
        pct = recall_matrix(r["confusion"])
        ax.imshow(pct, vmin=0, vmax=100, cmap="Blues")
        classes = r["classes"]
        ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
        ax.set_yticks(range(len(classes)), classes)
        for i in range(len(classes)):
            for j in range(len(classes)):
                ax.text(j, i, f"{pct[i, j]:.0f}", ha="center", va="center", color="white" if pct[i,
                    j] > 55 else "black")
        ax.set_title(f"{r['model']}\nmacro-F1 {r['macro_f1']['mean']:.3f}", fontsize=9)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
    fig.suptitle(f"{results[0]['data']}: {results[0]['protocol']} (recall %, summed over {results[0]['folds']} folds)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def layer_sweep_plot(results: list[dict], path: str | Path, protocol: str) -> Path:
    """The headline metric (macro-F1, or R² for regression; mean ± std over folds) against block depth, one line
    per model, the best block of each marked and named in the legend (seed 002 §5: MIM features peak in the
    middle blocks)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.8, 3.9))
    metric = "macro_f1"
    for r in results:
        rows = r["layer_sweep"]
        metric = r.get("best_layer", {}).get("metric", "macro_f1")
        if not rows or metric not in rows[0]:
            continue
        layers = np.array([row["layer"] for row in rows])
        mean = np.array([row[metric]["mean"] for row in rows])
        std = np.array([row[metric]["std"] for row in rows])
        best = r.get("best_layer", {}).get("layer")
        line = ax.errorbar(layers, mean, yerr=std, marker="o", capsize=3, label=f"{r['model']} (best: block {best})")
        if best is not None:
            i = int(np.flatnonzero(layers == best)[0])
            ax.plot([best], [mean[i]], marker="*", markersize=14, color=line[0].get_color())
    ax.set_xlabel("block (layer index)")
    ax.set_ylabel(metric)
    ax.set_title(f"{protocol}: {metric} against depth")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
