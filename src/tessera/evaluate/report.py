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


def comparison_table(results: list[dict]) -> tuple[str, pd.DataFrame]:
    """Rows = models, column pairs = (data /) protocol: Macro-F1 and Weighted-F1 as mean ± std (3 decimals).

    Best per column in bold; for Macro-F1, ties (at 3 decimals) are broken by Weighted-F1 as in seed 000 Table 6.
    Returns (markdown, DataFrame of the same cells without bold).
    """
    several_data = len({r["data"] for r in results}) > 1
    models = list(dict.fromkeys(r["model"] for r in results))
    groups = list(dict.fromkeys(_group(r, several_data) for r in results))
    cell = {(r["model"], _group(r, several_data)): r for r in results}
    columns = [(g, m) for g in groups for m in ("Macro-F1", "Weighted-F1")]
    df = pd.DataFrame(index=pd.Index(models, name="Model"), columns=[f"{g} {m}" for g, m in columns], dtype=object)
    bold: set[tuple[str, str]] = set()
    for g in groups:
        present = [m for m in models if (m, g) in cell]
        for m in present:
            r = cell[(m, g)]
            df.loc[m, f"{g} Macro-F1"] = _fmt(r["macro_f1"])
            df.loc[m, f"{g} Weighted-F1"] = _fmt(r["weighted_f1"])
        if present:
            key = lambda m: (round(cell[(m, g)]["macro_f1"]["mean"], 3), round(cell[(m, g)]["weighted_f1"]["mean"], 3))
            best = max(key(m) for m in present)
            bold.update((m, f"{g} Macro-F1") for m in present if key(m) == best)
            wbest = max(round(cell[(m, g)]["weighted_f1"]["mean"], 3) for m in present)
            bold.update((m, f"{g} Weighted-F1") for m in present if round(cell[(m, g)]["weighted_f1"]["mean"], 3) == wbest)
    df = df.fillna("-")
    header = "| Model | " + " | ".join(f"{g} {m}" for g, m in columns) + " |"
    lines = [header, "|" + "---|" * (len(columns) + 1)]
    for m in models:
        cells = [f"**{df.loc[m, c]}**" if (m, c) in bold else df.loc[m, c] for c in df.columns]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n", df


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
                ax.text(j, i, f"{pct[i, j]:.0f}", ha="center", va="center", color="white" if pct[i, j] > 55 else "black")
        ax.set_title(f"{r['model']}\nmacro-F1 {r['macro_f1']['mean']:.3f}", fontsize=9)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
    fig.suptitle(f"{results[0]['data']}: {results[0]['protocol']} (recall %, summed over {results[0]['folds']} folds)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def layer_sweep_plot(sweeps: dict[str, list[dict]], path: str | Path, protocol: str) -> Path:
    """Macro-F1 (mean ± std over folds) against block depth, one line per model (seed 002 §5)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for model, rows in sweeps.items():
        layers = np.array([r["layer"] for r in rows])
        mean = np.array([r["macro_f1"]["mean"] for r in rows])
        std = np.array([r["macro_f1"]["std"] for r in rows])
        ax.errorbar(layers, mean, yerr=std, marker="o", capsize=3, label=model)
    ax.set_xlabel("block (layer index)")
    ax.set_ylabel("macro-F1")
    ax.set_title(f"{protocol}: macro-F1 against depth")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
