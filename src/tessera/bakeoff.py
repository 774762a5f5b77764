"""The recipe bake-off (seed 002 §14: "run the bake-off on your own corpus"): pretrain every recipe on the same
corpus with the same optimizer-step budget, evaluate each result and a random-init encoder of each architecture
under the same protocols and the same folds, and rank them by a rule fixed before any number is seen.

Layout of ``OUT``::

    OUT/bakeoff.yaml                 the resolved BakeoffConfig
    OUT/budget.json                  the step budget and how it was calibrated (seconds per step of every arm)
    OUT/arms/<arm>/seed<S>/run/      a `tessera pretrain` run directory (resumable)
    OUT/arms/<arm>/seed<S>/arm.json  wall time, images/s, steps, the exact command (written when it finished)
    OUT/eval/<data>/r<R>/...         `tessera evaluate` outputs of repeat R (one fold seed per repeat)
    OUT/results.json / .csv          every (data, model, protocol) with per-fold values and the paired gain
    OUT/report.md                    the ranked tables, the figures and the commands

Everything is a pure function of the config: rerunning the same command resumes unfinished arms (their runs
resume exactly) and keeps every finished arm's numbers, so one bake-off can be carried across sittings.

Ranking rule (fixed in advance, stated in the report): for every data set and every headline protocol
(``rank_protocols``, default k-NN and the converged logistic probe) the arms are ranked by mean macro-F1; an arm's
score is its mean rank over those cells, ties broken by the mean paired gain over random init.
"""

from __future__ import annotations

import json
import math
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tessera.config import save_config, to_dict
from tessera.errors import ConfigError, TesseraError

DEFAULT_RECIPES = ("mae-small", "contrastive-small", "two-stage", "byol", "dino", "byol-resnet")
HEADLINE_METRIC = "macro_f1"
REPORTED_METRICS = ("roc_auc",)  # shown beside the headline where every fold has them; never used for ranking
# Variants of an evaluation protocol: name -> (protocol, EvalConfig overrides).
PROTOCOL_VARIANTS = {"knn-std": ("knn", ["knn.standardize=true"]), "linear-std": ("linear",
    ["linear.standardize=true"])}


@dataclass
class BakeoffConfig:
    """What a bake-off compares and how. ``steps`` None = calibrate the budget to ``minutes`` (see step_budget)."""

    recipes: list[str] = field(default_factory=lambda: list(DEFAULT_RECIPES))
    steps: int | None = None  # optimizer steps per arm, summed over its stages
    minutes: float = 15.0  # calibration target: pretraining minutes per arm on this machine
    equalize: str = "time"  # calibrated budgets: "time" (same minutes per arm) or "steps" (same steps, slowest arm)
    calibration_steps: int = 12
    seeds: list[int] = field(default_factory=lambda: [42])  # pretraining seeds (every arm)
    # A protocol, or a named variant of one (PROTOCOL_VARIANTS). knn-std and logistic are invariant to a common
    # offset and scale of the features; the seed's strict linear probe and DINO-style k-NN are not (README).
    protocols: list[str] = field(default_factory=lambda: ["knn", "knn-std", "logistic", "linear"])
    rank_protocols: list[str] = field(default_factory=lambda: ["logistic", "knn-std"])
    label_efficiency: bool = True
    label_efficiency_protocols: list[str] = field(default_factory=lambda: ["knn-std", "logistic"])
    folds: int = 3
    repeats: int = 3  # repeated stratified K-fold: fold seeds 0 .. repeats-1
    monitor_every: int = 0  # >0: online k-NN macro-F1 on (a subset of) the first --data set every N steps
    monitor_max_images: int = 300
    pretrain_overrides: list[str] = field(default_factory=list)  # applied to every arm, e.g. train.device=cuda
    eval_overrides: list[str] = field(default_factory=list)  # EvalConfig keys, e.g. extract_batch_size=128
    progress: bool = True

    def validate(self) -> None:
        if not self.recipes:
            raise ConfigError("config key 'recipes': name at least one recipe")
        if len(set(self.recipes)) != len(self.recipes):
            raise ConfigError("config key 'recipes': listed twice: "
                              f"{sorted({r for r in self.recipes if self.recipes.count(r) > 1})}")
        if self.steps is not None and self.steps < 1:
            raise ConfigError(f"config key 'steps': must be >= 1 or null, got {self.steps}")
        if self.equalize not in ("time", "steps"):
            raise ConfigError(f"config key 'equalize': {self.equalize!r} is not one of 'time', 'steps'")
        if not self.minutes > 0:
            raise ConfigError(f"config key 'minutes': must be > 0, got {self.minutes}")
        if self.calibration_steps < 2:
            raise ConfigError(f"config key 'calibration_steps': must be >= 2, got {self.calibration_steps}")
        if not self.seeds:
            raise ConfigError("config key 'seeds': give at least one pretraining seed")
        if self.folds < 2 or self.repeats < 1:
            raise ConfigError(f"config keys 'folds' (>= 2) and 'repeats' (>= 1): got {self.folds} and {self.repeats}")
        unknown = [p for p in self.rank_protocols if p not in self.protocols]
        if unknown:
            raise ConfigError(f"config key 'rank_protocols': {unknown} not among 'protocols' {self.protocols}")


@dataclass
class Arm:
    """One recipe of the bake-off: its name, where its config came from, and the resolved PretrainConfig."""

    name: str
    source: str
    cfg: Any  # PretrainConfig

    @property
    def architecture(self) -> str:
        """Key of the encoder architecture: arms sharing it share one random-init baseline."""
        return architecture_key(self.cfg.model)


def slug(text: str) -> str:
    """Directory-safe name (evaluate's own ``model_slug``); a recipe file is named by its stem."""
    from tessera.evaluate.protocol import model_slug

    text = str(text)
    return model_slug(Path(text).stem if text.endswith(".yaml") else text)


def architecture_key(model_cfg) -> str:
    """Name of the random-init baseline of an encoder architecture (preset, backbone, registers, input size)."""
    parts = [model_cfg.preset]
    if model_cfg.backbone not in ("vit_mae", "resnet"):
        parts.append(model_cfg.backbone)
    if model_cfg.registers:
        parts.append(f"reg{model_cfg.registers}")
    if model_cfg.image_size:
        parts.append(f"{model_cfg.image_size}px")
    return "random-init:" + "-".join(parts)


# ------------------------------------------------------------------------------------------------ arms


def resolve_arms(cfg: BakeoffConfig) -> list[Arm]:
    """Every recipe resolved and validated before any work (a bad recipe fails with its file and key)."""
    from tessera.train.config import resolve_pretrain_config

    arms = []
    for source in cfg.recipes:
        try:
            pcfg = resolve_pretrain_config(source, list(cfg.pretrain_overrides))
            pcfg.validate()
        except ConfigError as exc:
            raise ConfigError(f"recipe '{source}': {exc}") from None
        arms.append(Arm(slug(source), source, pcfg))
    names = [a.name for a in arms]
    if len(set(names)) != len(names):
        raise ConfigError(f"config key 'recipes': two recipes share a name ({names}); rename one file")
    return arms


def stage_count(pcfg) -> int:
    return len(pcfg.train.stages)


def stage_names(pcfg) -> list[str]:
    return [getattr(stage, "objective", stage) for stage in pcfg.train.stages]


def arm_overrides(arm: Arm, steps: int, seed: int, extra: list[str]) -> list[str]:
    """Overrides that give ``arm`` exactly ``steps`` optimizer steps in all.

    Stages without their own ``max_steps`` share them evenly (``train.max_steps``); a recipe whose stages set
    their own step counts keeps their proportions (the stages are rewritten with scaled counts)."""
    stages = list(arm.cfg.train.stages)
    common = [*extra, "train.epochs=null", f"train.seed={seed}"]
    if not _has_stage_steps(arm):
        return [*common, f"train.max_steps={max(1, steps // len(stages))}"]
    counts = [max(1, int(steps * share)) for share in _stage_shares(arm)]
    flow = ", ".join(_stage_flow(stage, n) for stage, n in zip(stages, counts))
    return [*common, f"train.stages=[{flow}]"]


def _stage_flow(stage, steps: int) -> str:
    """One stage as a YAML flow mapping (for a ``train.stages=[...]`` override)."""
    parts = [f"objective: {stage.objective}", f"max_steps: {steps}", f"init: {stage.init}"]
    if stage.overrides:
        parts.append("overrides: {" + ", ".join(f"{k}: {json.dumps(v)}" for k, v in stage.overrides.items()) + "}")
    return "{" + ", ".join(parts) + "}"


def pretrain_command(arm: Arm, corpus: str, out: Path, overrides: list[str]) -> str:
    return shlex.join(["tessera", "pretrain", "--config", arm.source, "--corpus", str(corpus), "--out", str(out),
                       *overrides])


# ------------------------------------------------------------------------------------------------ budget


def _stage_rates(run_dir: Path) -> list[float]:
    """Seconds per optimizer step of each stage of a finished run, from the last logged window of each stage."""
    from tessera.train.logging import read_metrics

    rows = read_metrics(run_dir / "metrics.jsonl")
    last: dict[int, dict] = {}
    for row in rows:
        last[int(row.get("stage_index", 0))] = row
    return [row["micro_batch"] * row["accumulation"] / max(row["images_per_s"], 1e-9) for _,
            row in sorted(last.items())]


def calibrate(arms: list[Arm], corpus: str, workdir: Path, cfg: BakeoffConfig, log) -> dict[str, float]:
    """Seconds per optimizer step of every arm: each stage runs ``calibration_steps`` steps and is timed over its
    second half (the first steps pay for warm-up); stages are weighted by their share of the arm's budget."""
    from tessera.train.config import resolve_pretrain_config
    from tessera.train.engine import pretrain

    rates = {}
    n = cfg.calibration_steps
    for arm in arms:
        stages = stage_count(arm.cfg)
        overrides = [*arm_overrides(arm, n * stages, cfg.seeds[0], list(cfg.pretrain_overrides)),
                     f"train.log_every={n // 2}", f"train.checkpoint_every={n}", "train.progress=false"]
        pcfg = resolve_pretrain_config(arm.source, overrides)
        run = pretrain(pcfg, corpus, workdir / arm.name, overwrite=True)
        shares = _stage_shares(arm)
        rates[arm.name] = float(sum(w * r for w, r in zip(shares, _stage_rates(run))))
        log(f"calibration: {arm.name}: {rates[arm.name]:.3f} s/step")
    return rates


def _has_stage_steps(arm: Arm) -> bool:
    return any(getattr(stage, "max_steps", None) is not None for stage in arm.cfg.train.stages)


def _stage_shares(arm: Arm) -> list[float]:
    """Each stage's fraction of the arm's optimizer steps (equal unless the recipe sets per-stage steps)."""
    stages = list(arm.cfg.train.stages)
    if not _has_stage_steps(arm):
        return [1 / len(stages)] * len(stages)
    weights = [stage.max_steps or arm.cfg.train.max_steps for stage in stages]
    return [w / sum(weights) for w in weights]


def step_budget(cfg: BakeoffConfig, arms: list[Arm], corpus: str, out: Path, log) -> dict:
    """The step budget: ``cfg.steps`` for every arm, a recorded calibration, or a new one (recorded in budget.json,
    so a rerun, here or on another machine, trains exactly the same steps).

    Calibrated budgets follow ``cfg.equalize``: "time" gives every arm ``minutes`` on this machine (its own step
    count: the comparison a user with a fixed compute budget needs), "steps" gives every arm the step count
    that the slowest arm runs in ``minutes`` (the same optimizer steps for all: sample efficiency)."""
    path = out / "budget.json"
    if cfg.steps is not None:
        budget = {"steps": int(cfg.steps), "equalize": "steps", "source": "--steps given"}
    elif path.exists() and _same_calibration(json.loads(path.read_text()), cfg, arms):
        return json.loads(path.read_text())
    else:
        rates = calibrate(arms, corpus, out / "calibration", cfg, log)
        per_arm = {name: max(1, int(cfg.minutes * 60 / rate)) for name, rate in rates.items()}
        if cfg.equalize == "steps":
            slowest = max(rates, key=rates.get)
            per_arm = {name: per_arm[slowest] for name in per_arm}
            source = f"calibrated: the slowest arm ({slowest}) gets {cfg.minutes:g} minutes; every arm the same steps"
        else:
            source = f"calibrated: every arm gets {cfg.minutes:g} minutes on this machine (its own step count)"
        budget = {"steps_per_arm": per_arm, "equalize": cfg.equalize, "source": source, "minutes": cfg.minutes,
                  "seconds_per_step": rates, "machine": _machine()}
    path.write_text(json.dumps(budget, indent=2))
    return budget


def _same_calibration(budget: dict, cfg: BakeoffConfig, arms: list[Arm]) -> bool:
    return (budget.get("minutes") == cfg.minutes and budget.get("equalize") == cfg.equalize
            and set(budget.get("steps_per_arm", {})) >= {a.name for a in arms})


def arm_steps(budget: dict, arm: Arm) -> int:
    """Optimizer steps of ``arm`` under ``budget`` (summed over its stages)."""
    return int(budget["steps_per_arm"][arm.name]) if "steps_per_arm" in budget else int(budget["steps"])


def budget_text(budget: dict) -> str:
    if "steps_per_arm" in budget:
        steps = ", ".join(f"{k} {v}" for k, v in budget["steps_per_arm"].items())
        return f"optimizer steps per arm: {steps} ({budget['source']})"
    return f"{budget['steps']} optimizer steps per arm ({budget['source']})"


def _machine() -> dict:
    import os
    import platform

    import torch

    return {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


# ------------------------------------------------------------------------------------------------ pretraining


def arm_dir(out: Path, arm: Arm, seed: int) -> Path:
    return out / "arms" / arm.name / f"seed{seed}"


def run_arm(arm: Arm, seed: int, steps: int, corpus: str, out: Path, cfg: BakeoffConfig, monitor) -> dict:
    """Pretrain one arm (or resume it); returns its record (wall time, images/s, command). Finished arms are skipped."""
    from tessera.train.config import resolve_pretrain_config
    from tessera.train.engine import pretrain

    directory = arm_dir(out, arm, seed)
    record_path = directory / "arm.json"
    if record_path.exists():
        record = json.loads(record_path.read_text())
        if record["steps"] != steps:
            raise TesseraError(f"{record_path}: arm '{arm.name}' was trained for {record['steps']} steps, this "
                               "bake-off "
                               f"gives {steps}; keep the budget or use a new --out")
        return record
    overrides = arm_overrides(arm, steps, seed, list(cfg.pretrain_overrides))
    if monitor is not None and cfg.monitor_every:
        overrides.append(f"train.monitor_every={cfg.monitor_every}")
    overrides.append(f"train.progress={'true' if cfg.progress else 'false'}")
    pcfg = resolve_pretrain_config(arm.source, overrides)
    run = directory / "run"
    resume = (run / "config.yaml").exists()
    start = time.perf_counter()
    kwargs = {"monitor": monitor} if monitor is not None else {}
    pretrain(pcfg, corpus, run, resume=resume, **kwargs)
    wall = time.perf_counter() - start
    from tessera.train.logging import read_metrics

    rows = read_metrics(run / "metrics.jsonl")
    record = {
        "arm": arm.name, "recipe": arm.source, "seed": seed, "steps": steps,
        "stages": stage_names(pcfg), "wall_s": wall, "resumed": resume,
        "images_per_s": float(np.mean([r["images_per_s"] for r in rows])) if rows else None,
        "model": str(run), "architecture": arm.architecture,
        "command": pretrain_command(arm, corpus, run, [o for o in overrides if not o.startswith("train.progress")]),
    }
    record_path.write_text(json.dumps(record, indent=2))
    return record


# ------------------------------------------------------------------------------------------------ evaluation


def random_encoder(model_cfg, name: str):
    """Random-init encoder with exactly ``model_cfg``'s architecture (the same weights every call)."""
    from tessera.models.load import random_encoder as build

    return build(model_cfg, name)


def eval_config(cfg: BakeoffConfig, repeat: int, cache_dir: Path, extra: list[str] = ()):
    from tessera.config import apply_overrides
    from tessera.evaluate.config import EvalConfig

    base = EvalConfig(folds=cfg.folds, seed=repeat, cache_dir=str(cache_dir), progress=cfg.progress)
    return apply_overrides(base, [*cfg.eval_overrides, *extra])


def protocol_variant(name: str) -> tuple[str, list[str]]:
    """(evaluate protocol, its EvalConfig overrides) of a bake-off protocol name."""
    protocol, extra = PROTOCOL_VARIANTS.get(name, (name, []))
    return protocol, list(extra)


def evaluate_models(models: dict[str, Any], data_spec: str, cfg: BakeoffConfig, out: Path, log) -> list[dict]:
    """Every model under every protocol for every repeat; per-fold values concatenated over repeats."""
    from tessera.evaluate.protocol import evaluate, resolve_data

    data_dir = out / "eval" / slug(data_spec.replace(":", "_"))
    cache = out / "eval" / "feature_cache"
    data = resolve_data(data_spec, eval_config(cfg, 0, cache))
    rows = []
    for variant in cfg.protocols:
        protocol, extra = protocol_variant(variant)
        for name, model in models.items():
            per_fold, seconds = [], 0.0
            for repeat in range(cfg.repeats):
                target = data_dir / f"r{repeat}" / variant
                done = target / slug(name) / protocol / "results.json"
                if done.exists():
                    result = json.loads(done.read_text())
                else:
                    t0 = time.perf_counter()
                    encoder = model() if callable(model) else model
                    named = _named(encoder, name)
                    result = evaluate([named], data, protocol, target, eval_config(cfg, repeat, cache, extra))[0]
                    seconds += time.perf_counter() - t0
                per_fold += [dict(f, repeat=repeat) for f in result["per_fold"]]
            values = [f[HEADLINE_METRIC] for f in per_fold]
            rows.append({"data": data_spec, "model": name, "protocol": variant, "per_fold": per_fold,
                         **fold_summary(per_fold), "eval_seconds": seconds})
            log(f"  {data_spec} / {name} / {variant}: {np.mean(values):.3f} ± {np.std(values):.3f}")
    return rows


def fold_summary(per_fold: list[dict]) -> dict:
    """Mean and std over all folds of the headline metric and of every REPORTED_METRICS entry that every fold has
    (ROC AUC exists where the protocol gives class scores: issue 16's lensing classes are ranked by it)."""
    out = {}
    for metric in (HEADLINE_METRIC, *REPORTED_METRICS):
        values = [f.get(metric) for f in per_fold]
        if values and all(v is not None for v in values):
            out[metric] = {"mean": float(np.mean(values)), "std": float(np.std(values))}
    return out


def _named(encoder, name: str):
    encoder.name = name
    return encoder


def paired_gain(arm_folds: list[dict], base_folds: list[dict], metric: str = HEADLINE_METRIC) -> dict:
    """Per-fold differences arm - random init on the same folds: mean, std, and on how many folds the arm is better."""
    if len(arm_folds) != len(base_folds):
        raise TesseraError(f"paired comparison needs the same folds: {len(arm_folds)} vs {len(base_folds)} fold values")
    diffs = np.array([a[metric] - b[metric] for a, b in zip(arm_folds, base_folds)], dtype=np.float64)
    return {"mean": float(diffs.mean()), "std": float(diffs.std()), "wins": int((diffs > 0).sum()),
            "n": int(len(diffs)), "per_fold": diffs.round(4).tolist()}


def add_gains(rows: list[dict], baseline_of: dict[str, str]) -> None:
    """Attach ``gain`` (paired, per fold) to every pretrained row, against the random init of its architecture."""
    index = {(r["data"], r["model"], r["protocol"]): r for r in rows}
    for row in rows:
        base = baseline_of.get(row["model"])
        if base is None:
            continue
        ref = index[(row["data"], base, row["protocol"])]
        row["baseline"] = base
        row["gain"] = paired_gain(row["per_fold"], ref["per_fold"])


def rank_arms(rows: list[dict], arms: list[str], cfg: BakeoffConfig) -> list[dict]:
    """The fixed ranking rule: mean rank over (data, headline protocol) cells; ties by mean gain."""
    from scipy.stats import rankdata

    cells = sorted({(r["data"], r["protocol"]) for r in rows if r["protocol"] in cfg.rank_protocols})
    ranks = {a: [] for a in arms}
    gains = {a: [] for a in arms}
    for cell in cells:
        scores = {r["model"]: r[HEADLINE_METRIC]["mean"] for r in rows
                  if (r["data"], r["protocol"]) == cell and r["model"] in ranks}
        # Tied scores share their average rank, so a tie never decides the order by listing position.
        positions = rankdata([-v for v in scores.values()], method="average")
        for model, position in zip(scores, positions):
            ranks[model].append(float(position))
        for r in rows:
            if (r["data"], r["protocol"]) == cell and r["model"] in gains and "gain" in r:
                gains[r["model"]].append(r["gain"]["mean"])
    table = [{"model": a, "mean_rank": float(np.mean(ranks[a])) if ranks[a] else math.inf,
              "mean_gain": float(np.mean(gains[a])) if gains[a] else 0.0} for a in arms]
    return sorted(table, key=lambda t: (t["mean_rank"], -t["mean_gain"]))


def seed_averaged_rows(rows: list[dict], records: list[dict], cfg: BakeoffConfig) -> list[dict]:
    """One row per (data, protocol, recipe): the headline mean and the mean paired gain averaged over the recipe's
    pretraining seeds. Two seeds of one recipe can differ by more than twice the fold spread (README, bake-off), so
    the rule picks a recipe from its seeds' mean, never from its luckiest seed."""
    labels: dict[str, list[str]] = {}
    for record in records:
        labels.setdefault(record["arm"], []).append(model_label(record["arm"], record["seed"], cfg.seeds))
    index = {(r["data"], r["protocol"], r["model"]): r for r in rows}
    cells = dict.fromkeys((r["data"], r["protocol"]) for r in rows)
    out = []
    for data, protocol in cells:
        for arm, members in labels.items():
            found = [index[(data, protocol, m)] for m in members if (data, protocol, m) in index]
            if not found:
                continue
            row = {"data": data, "protocol": protocol, "model": arm, "seeds": len(found),
                   HEADLINE_METRIC: {"mean": float(np.mean([r[HEADLINE_METRIC]["mean"] for r in found]))}}
            if all("gain" in r for r in found):
                row["gain"] = {"mean": float(np.mean([r["gain"]["mean"] for r in found]))}
            out.append(row)
    return out


def rank_recipes(rows: list[dict], records: list[dict], cfg: BakeoffConfig) -> list[dict]:
    """The ranking rule applied to recipes with their seeds averaged (:func:`seed_averaged_rows`)."""
    averaged = seed_averaged_rows(rows, records, cfg)
    return rank_arms(averaged, list(dict.fromkeys(r["arm"] for r in records)), cfg)


# ------------------------------------------------------------------------------------------------ the job


def run_bakeoff(corpus: str | Path, data: list[str], out: str | Path, cfg: BakeoffConfig | None = None,
                resume: bool = True) -> dict:
    """The ``tessera bakeoff`` job. Returns {"budget", "arms", "rows", "ranking"} and writes the report."""
    from tessera.outputs import prepare_output_dir

    cfg = cfg or BakeoffConfig()
    cfg.validate()
    if not data:
        raise ConfigError("--data: give at least one labeled data set to evaluate on")
    if not Path(corpus).exists():
        raise TesseraError(f"{corpus}: corpus store not found (build one with `tessera ingest`)")
    arms = resolve_arms(cfg)
    out = prepare_output_dir(out, resume=resume)
    save_config(cfg, out / "bakeoff.yaml")
    log = _logger()
    budget = step_budget(cfg, arms, str(corpus), out, log)
    log(f"budget: {budget_text(budget)}")
    monitor = build_monitor(data[0], cfg) if cfg.monitor_every else None
    from tessera.progress import progress_bar

    records = []
    total = len(arms) * len(cfg.seeds)
    bar = progress_bar(total=total, desc="bake-off arms", unit="arm", every=1, disable=not cfg.progress)
    for i, (arm, seed) in enumerate(((a, s) for a in arms for s in cfg.seeds), 1):
        steps = arm_steps(budget, arm)
        log(f"[arm {i}/{total}] {arm.name} seed {seed}: pretraining ({steps} steps)")
        record = run_arm(arm, seed, steps, str(corpus), out, cfg, monitor)
        records.append(record)
        bar.update(1)
        log(f"[arm {i}/{total}] {arm.name} seed {seed}: done in {record['wall_s'] / 60:.1f} min "
            f"({record['images_per_s'] or 0:.0f} img/s)")
    bar.close()
    models, baseline_of = models_to_evaluate(arms, records, cfg)
    rows = []
    for spec in data:
        rows += evaluate_models(models, spec, cfg, out, log)
    add_gains(rows, baseline_of)
    ranking = rank_arms(rows, [m for m in models if m in baseline_of], cfg)
    recipe_ranking = rank_recipes(rows, records, cfg) if len(cfg.seeds) > 1 else None
    curves = None
    if cfg.label_efficiency:
        curves = label_efficiency_curves(models, data, cfg, out, log)
    result = {"budget": budget, "arms": records, "rows": rows, "ranking": ranking, "recipe_ranking": recipe_ranking,
              "label_efficiency": curves, "config": to_dict(cfg)}
    (out / "results.json").write_text(json.dumps(result, indent=2))
    from tessera.bakeoff_report import write_report

    report = write_report(result, out)
    log(f"report: {report}")
    return result


def model_label(arm: str, seed: int, seeds) -> str:
    """An arm's row name in the results: the arm alone with one pretraining seed, ``arm@seedN`` with several."""
    return arm if len(seeds) == 1 else f"{arm}@seed{seed}"


def models_to_evaluate(arms: list[Arm], records: list[dict], cfg: BakeoffConfig) -> tuple[dict, dict]:
    """{label: loader} for every trained arm and every architecture's random init; {arm label: its baseline}.
    Each loader builds its encoder once (the evaluations of every protocol, repeat and data set share it)."""
    from functools import cache

    import tessera

    models: dict[str, Any] = {}
    baseline_of: dict[str, str] = {}
    by_name = {a.name: a for a in arms}
    for record in records:
        label = model_label(record["arm"], record["seed"], cfg.seeds)
        models[label] = cache(lambda path=record["model"]: tessera.load(path))
        baseline_of[label] = by_name[record["arm"]].architecture
    for arm in arms:
        key = arm.architecture
        if key not in models:
            models[key] = cache(lambda mc=arm.cfg.model, k=key: random_encoder(mc, k))
    return models, baseline_of


def build_monitor(spec: str, cfg: BakeoffConfig):
    """The online k-NN monitor of ``tessera pretrain`` (train.monitor_data) on ``spec``, on the field the
    evaluation shows (its ``center_crop``, when ``eval_overrides`` set one)."""
    from tessera.commands.pretrain import build_knn_monitor

    crop = eval_config(cfg, 0, Path(".")).center_crop
    return build_knn_monitor(spec, max_images=cfg.monitor_max_images, center_crop=crop)


def label_efficiency_curves(models: dict, data: list[str], cfg: BakeoffConfig, out: Path, log) -> list[dict]:
    """Macro-F1 with 5, 10, 25, 50 and all labels per class (evaluation's ``label_efficiency``: 5 draws inside
    each fold of the first repeat) for every model and ``label_efficiency_protocols``; one row per point."""
    from tessera.evaluate.protocol import label_efficiency

    rows = []
    for spec in data:
        target = out / "eval" / slug(spec.replace(":", "_")) / "label_efficiency.json"
        if target.exists():
            rows += json.loads(target.read_text())
            continue
        found = []
        for variant in cfg.label_efficiency_protocols:
            protocol, extra = protocol_variant(variant)
            ecfg = eval_config(cfg, 0, out / "eval" / "feature_cache", extra)
            for name, model in models.items():
                encoder = _named(model() if callable(model) else model, name)
                for result in label_efficiency([encoder], spec, protocols=(protocol,), cfg=ecfg):
                    for point in result["label_efficiency"]:
                        found.append({"data": spec, "model": name, "protocol": variant,
                                      "labels_per_class": point["per_class"], "n_train": point["n_train"],
                                      "macro_f1": point["macro_f1"]})
                log(f"  label efficiency: {spec} / {name} / {variant} done")
        target.write_text(json.dumps(found, indent=2))
        rows += found
    return rows


def _logger():
    start = time.perf_counter()

    def log(message: str) -> None:
        print(f"[bakeoff {time.perf_counter() - start:7.0f}s] {message}", file=sys.stderr, flush=True)

    return log


__all__ = ["BakeoffConfig", "run_bakeoff", "paired_gain", "rank_arms", "rank_recipes", "DEFAULT_RECIPES"]
