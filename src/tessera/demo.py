"""The end-to-end demo: a script of the public ``tessera`` commands on simulated data, offline.

simulate (sky + labeled morphologies) -> ingest both, labels unused -> views figures -> two-stage pretraining
(cpu preset) -> linear probe and k-NN, then the converged logistic probe and fold-standardized k-NN (the
bake-off's ranking protocols), each against a random-init baseline of the same architecture -> report.md.

Each step runs the same command a user would type (through :func:`tessera.cli.main`), and the report
lists those commands verbatim, so every intermediate directory is usable on its own.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tessera.bakeoff import BakeoffConfig
from tessera.errors import TesseraError


@dataclass(frozen=True)
class DemoBudget:
    """How big the demo is. ``full`` fits 15 minutes on 2 CPU cores; ``tiny`` is for the tests."""

    mosaics: int
    mosaic_size: int
    tile: int
    per_class: int
    cutout_size: int
    steps_per_stage: int
    eval_overrides: tuple[str, ...] = ()
    pretrain_overrides: tuple[str, ...] = ()


BUDGETS = {
    "full": DemoBudget(mosaics=6, mosaic_size=2048, tile=128, per_class=250, cutout_size=96, steps_per_stage=600),
    "tiny": DemoBudget(
        mosaics=1,
        mosaic_size=512,
        tile=128,
        per_class=12,
        cutout_size=64,
        steps_per_stage=2,
        eval_overrides=("linear.epochs=2",),
        pretrain_overrides=(
            "train.batch_size_reconstruction=8",
            "train.batch_size_contrastive=4",
            "train.checkpoint_every=1",
            "train.log_every=1",
        ),
    ),
}


def demo_commands(out: Path, budget: DemoBudget, seed: int = 0) -> list[tuple[str, list[str]]]:
    """The demo as (step name, argv of ``tessera``) pairs, in order."""
    sky, morph, corpus, run, evaluation = (out / n for n in ("sky", "morphology", "corpus", "run", "eval"))
    steps = [
        ("simulate a radio sky", ["simulate", "radio", "--out", str(sky), "--mosaics", str(budget.mosaics),
                                  "--size", str(budget.mosaic_size), "--seed", str(seed)]),
        ("simulate labeled morphologies", ["simulate", "morphology", "--out", str(morph), "--per-class",
                                           str(budget.per_class), "--size", str(budget.cutout_size),
                                           "--seed", str(seed + 1)]),
        # The corpus holds the evaluation images without their labels (the transductive case), as the real-data
        # bake-off's corpus holds FIRST's (README results): a corpus of the survey one labels is what moved FIRST
        # most (issue 12), and the sky alone left the demo's pretrained encoder at random init's level.
        ("ingest the sky and the morphology images (labels unused) into a cutout store",
         ["ingest", str(sky), str(morph), "--out", str(corpus), "--tile", str(budget.tile)]),
    ]
    for branch in ("reconstruction", "contrastive"):
        steps.append((f"draw {branch} views", ["views", str(corpus), "--out", str(out / f"views_{branch}.png"),
                                               "--branch", branch, "--n", "6", "--seed", str(seed)]))
    steps.append(("two-stage pretraining (cpu preset)",
                  ["pretrain", "--config", "cpu", "--corpus", str(corpus), "--out", str(run),
                   "train.branch=two-stage", f"train.max_steps={budget.steps_per_stage}",
                   *budget.pretrain_overrides]))
    evaluate = ["evaluate", "--model", f"pretrained={run}", "--model", "random-init=random:cpu",
                "--data", str(morph / "labels.csv")]
    steps.append(("linear probe and k-NN vs random init (seed 000 strict protocol)",
                  [*evaluate, "--protocol", "linear", "--protocol", "knn", "--out", str(evaluation),
                   *budget.eval_overrides]))
    # The bake-off's ranking protocols (RANKING_PROTOCOLS), plus the strict probe on standardized features, which
    # isolates what standardizing alone changes. The plain features are reused from the strict run's cache.
    steps.append(("converged logistic probe and fold-standardized k-NN and linear probe",
                  [*evaluate, "--protocol", "linear", "--protocol", "logistic", "--protocol", "knn",
                   "--out", str(out / "eval_standardized"), f"cache_dir={evaluation / 'cache'}",
                   "linear.standardize=true", "knn.standardize=true", *budget.eval_overrides]))
    return steps


# What ``tessera bakeoff`` ranks recipes by (its default ``rank_protocols``), and why, for the report and the final
# print: read from the bake-off's config so the two cannot drift apart.
RANKING_PROTOCOLS = tuple(BakeoffConfig().rank_protocols)
RANKING_NOTE = (
    "The bake-off's ranking protocols are `logistic` (the converged logistic probe: fold-standardized, D4-averaged "
    "features, L2 strength by inner CV, L-BFGS to convergence) and `knn-std` (k-NN on fold-standardized features): "
    "both are invariant to a common offset and scale of the features, so they measure what the features separate. "
    "Seed 000's strict probe trains one linear layer on the raw features for a fixed short schedule "
    "(`linear.epochs` of AdamW, a few steps per epoch here), and its k-NN takes cosine similarities of the raw "
    "features: a large offset shared by all features (pretraining often leaves one) uses up the probe's schedule "
    "and dominates the cosine, so the strict numbers can fall while the features get better."
)


def run_demo(out: str | Path, budget_name: str = "full", overwrite: bool = False, seed: int = 0) -> Path:
    """Run every step of the demo into ``out`` and write ``out/report.md``; returns the report path."""
    from tessera.cli import main as tessera_main
    from tessera.outputs import prepare_output_dir

    if budget_name not in BUDGETS:
        raise TesseraError(f"unknown demo budget '{budget_name}' (choose from {', '.join(BUDGETS)})")
    out = prepare_output_dir(out, overwrite=overwrite)
    steps = demo_commands(out, BUDGETS[budget_name], seed)
    timings = []
    for i, (name, argv) in enumerate(steps, 1):
        print(f"\n[demo {i}/{len(steps)}] {name}\n$ tessera {shlex.join(argv)}", file=sys.stderr, flush=True)
        start = time.perf_counter()
        code = tessera_main(argv)
        timings.append(time.perf_counter() - start)
        if code != 0:
            raise TesseraError(f"demo step '{name}' failed with exit code {code}: tessera {shlex.join(argv)}")
    report = write_report(out, steps, timings)
    strict, standardized = ((out / d / "comparison.md").read_text() for d in ("eval", "eval_standardized"))
    print(f"\nDemo finished in {sum(timings) / 60:.1f} min. Report: {report}\n\n"
          f"Strict protocol (seed 000 §9):\n{strict}\n"
          f"Fold-standardized features and the converged logistic probe (the bake-off ranks by "
          f"{' and '.join(RANKING_PROTOCOLS)}):\n{standardized}")
    return report


@dataclass(frozen=True)
class LossSeries:
    """One stage's loss curve on the run's global step axis: ``steps`` and ``losses`` are (n,) lists."""

    stage_index: int
    stage: str
    steps: list[int]
    losses: list[float]

    @property
    def label(self) -> str:
        return f"stage {self.stage_index + 1}: {self.stage}"


def _metrics_rows(run: Path) -> list[dict]:
    """Logged rows of a run: ``RUN/metrics.jsonl`` holds every stage; a run without it (older layouts) falls back
    to the per-stage files, in stage-directory order."""
    top = run / "metrics.jsonl"
    files = [top] if top.is_file() else sorted(run.rglob("metrics.jsonl"))
    rows = []
    for stage_order, file in enumerate(files):
        for line in file.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                row.setdefault("stage_index", stage_order)
                rows.append(row)
    return [r for r in rows if "loss" in r and ("global_step" in r or "step" in r)]


def loss_curve_series(run: str | Path) -> list[LossSeries]:
    """Every stage's loss against the *global* optimizer step, in stage order.

    Rows carry ``stage_index`` and ``global_step`` (the engine's step offset plus the stage's own step), so stage 2
    starts where stage 1 ended. Rows without ``global_step`` get it from the stages before them (their last step)."""
    by_stage: dict[int, list[dict]] = {}
    for row in _metrics_rows(Path(run)):
        by_stage.setdefault(int(row["stage_index"]), []).append(row)
    series, offset = [], 0
    for index in sorted(by_stage):
        rows = by_stage[index]
        steps = [int(r["global_step"]) if "global_step" in r else offset + int(r["step"]) for r in rows]
        order = sorted(range(len(rows)), key=steps.__getitem__)
        series.append(LossSeries(index, str(rows[0].get("stage", f"stage {index + 1}")),
                                 [steps[i] for i in order], [float(rows[i]["loss"]) for i in order]))
        offset = max(offset, max(steps))
    return series


def draw_loss_curves(ax, series: list[LossSeries]) -> list:
    """One line per stage on ``ax`` (global step on x; no segment joins two stages); returns the Line2D objects.

    Stage losses live on different scales (a pixel MSE ~1e-2, a contrastive cross-entropy ~1-10), so the y axis is
    logarithmic when every loss is positive."""
    lines = [ax.plot(s.steps, s.losses, label=s.label)[0] for s in series]
    if series and all(v > 0 for s in series for v in s.losses):
        ax.set_yscale("log")
    ax.set_xlabel("optimizer step (all stages)")
    ax.set_ylabel("loss")
    if series:
        ax.legend(loc="best", fontsize="small")
    return lines


def plot_loss_curves(run: Path, path: Path) -> Path | None:
    """Loss against the global step for every stage of a run, one figure; None when the run logged no loss."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = loss_curve_series(run)
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.5))
    draw_loss_curves(ax, series)
    ax.set_title(run.name)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(out: Path, steps: list[tuple[str, list[str]]], timings: list[float]) -> Path:
    """``report.md``: comparison table, figures, loss curves, confusion matrices, and the commands to reproduce."""
    curves = plot_loss_curves(out / "run", out / "loss_curves.png")
    evaluation = out / "eval"
    lines = ["# tessera demo report", "", "## Transfer evaluation (simulated FRI/FRII/Compact/Bent morphologies)", ""]
    lines += ["Strict protocol of seed 000 §9 (frozen encoder, mean-pooled patch tokens, one linear layer; k-NN):", ""]
    lines += [(evaluation / "comparison.md").read_text().strip(), ""]
    lines += ["The converged logistic probe (`logistic`) and the same features z-scored with each training fold's "
              "statistics (`knn` and `linear` here are k-NN and the strict probe's schedule on standardized "
              "features; not seed 000's protocol):", ""]
    lines += [(out / "eval_standardized" / "comparison.md").read_text().strip(), ""]
    lines += [RANKING_NOTE, ""]
    lines += ["Random init is the same architecture with untrained weights: the floor pretraining must beat. "
              "Differences smaller than the fold std are noise. The pretraining corpus holds the simulated sky and "
              "the evaluation images without their labels (the transductive case).", ""]
    for png in sorted(evaluation.glob("confusion_*.png")):
        lines += [f"![{png.stem}]({png.relative_to(out)})", ""]
    lines += ["## Training views", ""]
    lines += [f"![{p.stem}]({p.name})" for p in sorted(out.glob("views_*.png"))] + [""]
    if curves:
        lines += ["## Loss curves", "", f"![loss curves]({curves.name})", ""]
    lines += ["## Commands (each step on its own)", "", "| step | seconds | command |", "|---|---|---|"]
    for (name, argv), seconds in zip(steps, timings):
        lines.append(f"| {name} | {seconds:.1f} | `tessera {shlex.join(argv)}` |")
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n")
    return report
