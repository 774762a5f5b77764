"""The bake-off's report: ranked tables with per-fold values and paired gains, the arms' cost, figures and the
commands that reproduce each arm. Pure formatting of :func:`tessera.bakeoff.run_bakeoff`'s result."""

from __future__ import annotations

import csv
from pathlib import Path

MONITOR_KEY = "monitor_knn_macro_f1"


def _stat(stat: dict) -> str:
    return f"{stat['mean']:.3f} ± {stat['std']:.3f}"


def _gain(gain: dict | None) -> str:
    if gain is None:
        return "—"
    return f"{gain['mean']:+.3f} ± {gain['std']:.3f} ({gain['wins']}/{gain['n']})"


def ranked_table(result: dict, data: str) -> str:
    """Markdown: one row per model (ranked arms first, then the random-init baselines), per protocol the macro-F1
    mean ± std over all folds and the paired gain over the random init of the same architecture (wins/folds)."""
    rows = [r for r in result["rows"] if r["data"] == data]
    protocols = list(dict.fromkeys(r["protocol"] for r in rows))
    order = [t["model"] for t in result["ranking"]]
    baselines = sorted({r["model"] for r in rows} - set(order))
    index = {(r["model"], r["protocol"]): r for r in rows}
    # ROC AUC beside macro-F1 for a protocol whose rows carry it (class scores: logistic, k-NN, fine-tune)
    with_auc = {p for p in protocols if any("roc_auc" in r for r in rows if r["protocol"] == p)}
    head = ["rank", "model"]
    for p in protocols:
        head += [f"{p} macro-F1", *([f"{p} ROC-AUC"] if p in with_auc else []), f"{p} gain vs random"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    best = {p: max(index[(m, p)]["macro_f1"]["mean"] for m in order + baselines if (m, p) in index) for p in protocols}
    for position, model in enumerate(order + baselines, 1):
        cells = [str(position) if model in order else "", model]
        for p in protocols:
            r = index.get((model, p))
            if r is None:
                cells += ["—"] * (3 if p in with_auc else 2)
                continue
            text = _stat(r["macro_f1"])
            auc = [_stat(r["roc_auc"]) if "roc_auc" in r else "—"] if p in with_auc else []
            cells += [f"**{text}**" if r["macro_f1"]["mean"] == best[p] else text, *auc, _gain(r.get("gain"))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def per_fold_table(result: dict, data: str, protocol: str) -> str:
    rows = [r for r in result["rows"] if r["data"] == data and r["protocol"] == protocol]
    if not rows:
        return ""
    seen: dict[int, int] = {}
    head = ["model"]
    for fold in rows[0]["per_fold"]:
        repeat = fold.get("repeat", 0)
        head.append(f"r{repeat}.f{seen.get(repeat, 0)}")
        seen[repeat] = seen.get(repeat, 0) + 1
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append("| " + " | ".join([r["model"]] + [f"{f['macro_f1']:.3f}" for f in r["per_fold"]]) + " |")
    return "\n".join(lines)


def arms_table(result: dict) -> str:
    lines = ["| arm | seed | stages | steps | wall (min) | images/s | command |", "|---|---|---|---|---|---|---|"]
    for a in result["arms"]:
        ips = f"{a['images_per_s']:.0f}" if a.get("images_per_s") else "—"
        lines.append(f"| {a['arm']} | {a['seed']} | {' → '.join(a['stages'])} | {a['steps']} | {a['wall_s'] / 60:.1f} "
                     "| "
                     f"{ips} | `{a['command']}` |")
    return "\n".join(lines)


def write_csv(result: dict, path: Path) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["data", "model", "protocol", "repeat", "fold", "macro_f1", "weighted_f1", "accuracy", "gain",
                    "roc_auc"])
        for r in result["rows"]:
            gains = (r.get("gain") or {}).get("per_fold") or [None] * len(r["per_fold"])
            for i, (fold, g) in enumerate(zip(r["per_fold"], gains)):
                w.writerow([r["data"], r["model"], r["protocol"], fold.get("repeat", 0), i, f"{fold['macro_f1']:.4f}",
                            f"{fold.get('weighted_f1', float('nan')):.4f}", f"{fold.get('accuracy', float('nan')):.4f}",
                            "" if g is None else f"{g:.4f}",
                            "" if fold.get("roc_auc") is None else f"{fold['roc_auc']:.4f}"])
    return path


def _metrics(run: Path) -> list[dict]:
    from tessera.train.logging import read_metrics

    return read_metrics(run / "metrics.jsonl")  # [] when the run has no metrics yet


def curves_figure(result: dict, path: Path) -> Path | None:
    """Loss (one panel per arm, stages on one global step axis) and the online k-NN of every arm on one plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = result["arms"]
    if not arms:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    any_monitor = False
    for i, a in enumerate(arms):
        rows = _metrics(Path(a["model"]))
        label, color = f"{a['arm']} (seed {a['seed']})", f"C{i % 10}"  # one colour per arm in both panels
        for stage in sorted({r.get("stage_index", 0) for r in rows}):
            part = [r for r in rows if r.get("stage_index", 0) == stage and "loss" in r]
            axes[0].plot([r["global_step"] for r in part], [r["loss"] for r in part], color=color,
                         linestyle="-" if stage == 0 else "--", label=label if stage == 0 else None)
        mon = [r for r in rows if MONITOR_KEY in r]
        if mon:
            any_monitor = True
            axes[1].plot([r["global_step"] for r in mon], [r[MONITOR_KEY] for r in mon], marker="o", color=color,
                         label=label)
    axes[0].set(xlabel="optimizer step (all stages)", ylabel="training loss", yscale="log",
                title="loss (later stages dashed)")
    axes[0].legend(fontsize=7)
    if any_monitor:
        axes[1].set(xlabel="optimizer step", ylabel="k-NN macro-F1", title="online k-NN (monitor set)")
        axes[1].legend(fontsize=7)
    else:
        axes[1].text(0.5, 0.5, "no online monitor\n(bakeoff monitor_every=0)", ha="center", va="center")
        axes[1].set_axis_off()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def label_efficiency_figure(result: dict, path: Path) -> Path | None:
    rows = result.get("label_efficiency") or []
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(r["data"] for r in rows))
    protocols = list(dict.fromkeys(r["protocol"] for r in rows))
    fig, axes = plt.subplots(len(datasets), len(protocols), figsize=(5 * len(protocols), 3.5 * len(datasets)),
                             squeeze=False)
    for i, d in enumerate(datasets):
        for j, p in enumerate(protocols):
            ax = axes[i][j]
            for model in dict.fromkeys(r["model"] for r in rows):
                pts = [r for r in rows if r["data"] == d and r["protocol"] == p and r["model"] == model]
                pts.sort(key=lambda r: r["labels_per_class"] if r["labels_per_class"] != "all" else 1e9)
                xs = list(range(len(pts)))
                ax.errorbar(xs, [r["macro_f1"]["mean"] for r in pts], yerr=[r["macro_f1"]["std"] for r in pts],
                            marker="o", capsize=2, label=model, linestyle="--" if model.startswith("random") else "-")
                ax.set_xticks(xs, [str(r["labels_per_class"]) for r in pts])
            ax.set(title=f"{d} / {p}", xlabel="labels per class", ylabel="macro-F1")
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def ranking_lines(ranking: list[dict], what: str) -> list[str]:
    """The ranking as a markdown table: rank, ``what`` (arm or recipe), mean rank, mean gain."""
    return [f"| rank | {what} | mean rank | mean gain |", "|---|---|---|---|",
            *(f"| {i} | {t['model']} | {t['mean_rank']:.2f} | {t['mean_gain']:+.3f} |"
              for i, t in enumerate(ranking, 1))]


def write_report(result: dict, out: Path) -> Path:
    out = Path(out)
    write_csv(result, out / "results.csv")
    curves = curves_figure(result, out / "curves.png")
    label_fig = label_efficiency_figure(result, out / "label_efficiency.png")
    budget = result["budget"]
    cfg = result["config"]
    lines = ["# tessera bake-off", ""]
    from tessera.bakeoff import budget_text

    lines += [f"Budget: **{budget_text(budget)}**. "
              f"Folds: {cfg['repeats']} repeats of {cfg['folds']}-fold stratified CV (fold seeds "
              f"0..{cfg['repeats'] - 1}), "
              "the same folds for every model.", ""]
    lines += ["Ranking rule (fixed before any result): mean rank of macro-F1 over every data set × "
              f"{', '.join(cfg['rank_protocols'])}; ties by mean paired gain. Gain = mean ± std over folds of "
              "(arm − random init of the same architecture) on the same fold; (w/n) = folds where the arm is better.",
              ""]
    if result.get("recipe_ranking"):
        lines += [f"**Recipes, seeds averaged** ({len(cfg['seeds'])} pretraining seeds: each recipe's macro-F1 and "
                  "gain are the means over its seeds, then ranked by the same rule; this ranking picks the recipe):",
                  "", *ranking_lines(result["recipe_ranking"], "recipe"), "", "Every (recipe, seed) on its own:", ""]
    lines += [*ranking_lines(result["ranking"], "arm"), ""]
    for data in dict.fromkeys(r["data"] for r in result["rows"]):
        lines += [f"## {data}", "", ranked_table(result, data), ""]
        for protocol in dict.fromkeys(r["protocol"] for r in result["rows"] if r["data"] == data):
            lines += [f"<details><summary>per-fold macro-F1, {protocol}</summary>", "",
                      per_fold_table(result, data, protocol), "", "</details>", ""]
    if label_fig:
        lines += ["## Label efficiency", "", f"![label efficiency]({label_fig.name})", ""]
    lines += ["## Arms: cost and commands", "", arms_table(result), ""]
    if curves:
        lines += [f"![curves]({curves.name})", ""]
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n")
    return report


def gain_points(result: dict, recipe: str) -> list[dict]:
    """One point per (data set, protocol, pretraining seed) of ``recipe``'s arms in one bake-off result: its step
    budget, macro-F1 and paired gain over its random init. Several bake-offs of one recipe at different
    ``--steps`` give the curve of gain against compute (issue 12: the best arm at 1x, 2x and 4x the budget)."""
    from tessera.bakeoff import model_label

    points = []
    seeds = result.get("config", {}).get("seeds") or [None]  # bake-offs from before `seeds` had one
    for record in result["arms"]:
        if record["recipe"] != recipe:
            continue
        label = model_label(record["arm"], record["seed"], seeds)
        for row in result["rows"]:
            if row["model"] == label and row.get("gain") is not None:
                points.append({"data": row["data"], "protocol": row["protocol"], "steps": record["steps"],
                               "seed": record["seed"], "macro_f1": row["macro_f1"]["mean"],
                               "gain": row["gain"]["mean"], "gain_std": row["gain"]["std"],
                               "wins": row["gain"]["wins"], "n": row["gain"]["n"]})
    return points


def gain_curve_figure(points: list[dict], path: Path, title: str = "") -> Path | None:
    """Gain over random init against optimizer steps: one panel per data set, one line per protocol (seeds
    averaged), each seed's point drawn as well, the ±1 std of the paired per-fold gain as error bars."""
    if not points:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    datasets = list(dict.fromkeys(p["data"] for p in points))
    protocols = list(dict.fromkeys(p["protocol"] for p in points))  # one colour per protocol in every panel
    all_steps = sorted({p["steps"] for p in points})
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.5 * len(datasets), 3.8), squeeze=False)
    for ax, data in zip(axes[0], datasets):
        mine = [p for p in points if p["data"] == data]
        for i, protocol in enumerate(protocols):
            color = f"C{i % 10}"
            pts = [p for p in mine if p["protocol"] == protocol]
            if not pts:
                continue
            steps = sorted({p["steps"] for p in pts})
            mean = [np.mean([p["gain"] for p in pts if p["steps"] == s]) for s in steps]
            ax.plot(steps, mean, color=color, marker="o", label=protocol)
            ax.errorbar([p["steps"] for p in pts], [p["gain"] for p in pts], yerr=[p["gain_std"] for p in pts],
                        color=color, linestyle="none", marker=".", alpha=0.45, capsize=2)
        ax.axhline(0.0, color="black", linewidth=0.8)
        ax.set(xscale="log", xlabel="pretraining optimizer steps", ylabel="macro-F1 gain over random init",
               title=f"{title} {data.split(':')[0]}".strip())
        ax.set_xticks(all_steps, [str(s) for s in all_steps])
        ax.minorticks_off()
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
