"""The bake-off: paired per-fold gains, the fixed ranking rule, and a tiny end-to-end bake-off with resume."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tessera.bakeoff import BakeoffConfig, paired_gain, rank_arms, rank_recipes, run_bakeoff
from tessera.errors import ConfigError


def test_paired_gain_is_computed_from_the_fold_values():
    arm = [{"macro_f1": v} for v in (0.60, 0.55, 0.70)]
    base = [{"macro_f1": v} for v in (0.50, 0.58, 0.60)]
    gain = paired_gain(arm, base)
    assert gain["per_fold"] == pytest.approx([0.10, -0.03, 0.10])
    assert gain["mean"] == pytest.approx(np.mean([0.10, -0.03, 0.10]))
    assert gain["std"] == pytest.approx(np.std([0.10, -0.03, 0.10]))
    assert (gain["wins"], gain["n"]) == (2, 3)
    with pytest.raises(Exception, match="same folds"):
        paired_gain(arm, base[:2])


def _row(data, model, protocol, mean, gain=None):
    row = {"data": data, "model": model, "protocol": protocol, "macro_f1": {"mean": mean, "std": 0.0}}
    if gain is not None:
        row["gain"] = {"mean": gain}
    return row


def test_ranking_is_the_mean_rank_over_data_and_headline_protocols():
    rows = [_row("a", "x", "knn", 0.9, 0.1), _row("a", "y", "knn", 0.8, 0.0),
            _row("b", "x", "knn", 0.5, 0.0), _row("b", "y", "knn", 0.6, 0.2),
            # not a headline protocol: must not count
            _row("a", "y", "linear", 0.99, 0.5), _row("a", "x", "linear", 0.1, -0.5)]
    ranking = rank_arms(rows, ["x", "y"], BakeoffConfig(protocols=["knn", "linear"], rank_protocols=["knn"]))
    # x and y both have mean rank 1.5; the tie goes to the larger mean gain (y: 0.1 vs x: 0.05).
    assert [r["model"] for r in ranking] == ["y", "x"]
    assert [r["mean_rank"] for r in ranking] == [1.5, 1.5]


def _labeled_blobs(folder, per_class=9, size=48):
    """Two learnable classes: one wide or one narrow Gaussian source (a CSV of .npy images)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    lines = ["path,label"]
    for label, width in (("wide", 7.0), ("narrow", 1.5)):
        for i in range(per_class):
            cy, cx = rng.uniform(14, size - 14, 2)
            img = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * width**2)) + rng.normal(0, 0.02, (size, size))
            np.save(folder / f"{label}_{i}.npy", img.astype(np.float32))
            lines.append(f"{label}_{i}.npy,{label}")
    (folder / "labels.csv").write_text("\n".join(lines) + "\n")
    return folder / "labels.csv"


def _recipe(path, branch):
    path.write_text(
        "model: {preset: vit_micro_patch8_32, proj_hidden: 32, proj_dim: 16}\n"
        f"train: {{branch: {branch}, batch_size_reconstruction: 4, batch_size_contrastive: 4, effective_batch: null, "
        "checkpoint_every: 1, log_every: 1}\n"
    )
    return str(path)


@pytest.mark.slow
def test_tiny_bakeoff_end_to_end_and_resume(blob_store, tmp_path):
    data = tmp_path / "labeled"
    data.mkdir()
    labels = _labeled_blobs(data)
    recipes = [_recipe(tmp_path / "mae.yaml", "reconstruction"), _recipe(tmp_path / "simclr.yaml", "contrastive")]
    cfg = BakeoffConfig(recipes=recipes, steps=2, protocols=["knn", "knn-std", "linear"], rank_protocols=["knn-std"],
                        repeats=2, label_efficiency_protocols=["knn-std"], progress=False,
                        eval_overrides=["linear.epochs=2"])
    out = tmp_path / "bake"
    result = run_bakeoff(blob_store, [str(labels)], out, cfg)

    models = {r["model"] for r in result["rows"]}
    # Both arms and the one random-init baseline of their shared architecture, under both protocols.
    assert models == {"mae", "simclr", "random-init:vit_micro_patch8_32"}
    assert len(result["rows"]) == 3 * 3
    for row in result["rows"]:
        assert len(row["per_fold"]) == 3 * 2  # 2 repeats of 3 folds
    index = {(r["model"], r["protocol"]): r for r in result["rows"]}
    for arm in ("mae", "simclr"):
        for protocol in ("knn", "linear"):
            row, base = index[(arm, protocol)], index[("random-init:vit_micro_patch8_32", protocol)]
            diffs = [a["macro_f1"] - b["macro_f1"] for a, b in zip(row["per_fold"], base["per_fold"])]
            assert row["gain"]["per_fold"] == pytest.approx(diffs, abs=1e-4)
            assert row["gain"]["wins"] == sum(d > 0 for d in diffs)
    assert {r["model"] for r in result["ranking"]} == {"mae", "simclr"}
    # Every arm really trained for the budget, and its exact command is recorded.
    for record in result["arms"]:
        metrics = out / "arms" / record["arm"] / "seed42" / "run" / "metrics.jsonl"
        steps = [json.loads(x)["step"] for x in metrics.read_text().splitlines()]
        assert max(steps) == 2 and record["command"].startswith("tessera pretrain --config")
    report = (out / "report.md").read_text()
    assert "random-init:vit_micro_patch8_32" in report and "| 1 |" in report and "(w/n)" in report
    assert (out / "results.csv").read_text().count("\n") == 1 + 9 * 6
    # knn-std is the k-NN protocol on fold-standardized features, evaluated into its own directory.
    for variant, standardized in (("knn", False), ("knn-std", True)):
        saved = json.loads(next((out / "eval").glob(f"*/r0/{variant}/mae/knn/results.json")).read_text())
        assert saved["config"]["knn"]["standardize"] is standardized
    points = result["label_efficiency"]
    assert {p["model"] for p in points} == models and {p["protocol"] for p in points} == {"knn-std"}
    assert {p["labels_per_class"] for p in points} >= {5, "all"}
    assert (out / "label_efficiency.png").is_file()

    # Resume: nothing is retrained or re-evaluated; the numbers are identical.
    stamp = (out / "arms" / "mae" / "seed42" / "arm.json").stat().st_mtime_ns
    again = run_bakeoff(blob_store, [str(labels)], out, cfg)
    assert (out / "arms" / "mae" / "seed42" / "arm.json").stat().st_mtime_ns == stamp
    assert [r["macro_f1"] for r in again["rows"]] == [r["macro_f1"] for r in result["rows"]]
    # A different budget in the same directory is refused instead of mixing arms of two budgets.
    with pytest.raises(Exception, match="trained for 2 steps"):
        run_bakeoff(blob_store, [str(labels)], out, BakeoffConfig(**{**cfg.__dict__, "steps": 3}))


def test_a_bad_recipe_names_its_file_and_key(tmp_path, blob_store):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {max_stepz: 3}\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*train\.max_stepz"):
        run_bakeoff(blob_store, ["x.csv"], tmp_path / "out", BakeoffConfig(recipes=[str(bad)], steps=1))


def test_tied_scores_share_their_rank():
    rows = [_row("a", "x", "knn", 0.7, 0.0), _row("a", "y", "knn", 0.7, 0.1), _row("a", "z", "knn", 0.5, -0.1)]
    ranking = rank_arms(rows, ["x", "y", "z"], BakeoffConfig(protocols=["knn"], rank_protocols=["knn"]))
    assert [(r["model"], r["mean_rank"]) for r in ranking] == [("y", 1.5), ("x", 1.5), ("z", 3.0)]


def test_bakeoff_command_parses_and_rejects_missing_corpus(tmp_path, capsys):
    from tessera.cli import main

    code = main(["bakeoff", "--corpus", str(tmp_path / "nope"), "--data", "x.csv", "--out", str(tmp_path / "o"),
                 "--steps", "3", "repeats=1"])
    assert code == 2 and "corpus store not found" in capsys.readouterr().err


@pytest.mark.slow
def test_calibrated_budget_is_recorded_and_reused(blob_store, tmp_path):
    from tessera.bakeoff import resolve_arms, step_budget

    recipes = [_recipe(tmp_path / "mae.yaml", "reconstruction"), _recipe(tmp_path / "simclr.yaml", "contrastive")]
    messages = []
    for equalize in ("time", "steps"):
        cfg = BakeoffConfig(recipes=recipes, minutes=0.05, calibration_steps=4, equalize=equalize, progress=False)
        out = tmp_path / equalize
        out.mkdir()
        budget = step_budget(cfg, resolve_arms(cfg), str(blob_store), out, messages.append)
        rates = budget["seconds_per_step"]
        assert set(rates) == {"mae", "simclr"} and all(r > 0 for r in rates.values())
        expected = {a: max(1, int(3.0 / r)) for a, r in rates.items()}  # 0.05 min = 3 s per arm
        if equalize == "steps":
            slowest = max(rates, key=rates.get)
            expected = {a: expected[slowest] for a in expected}
        assert budget["steps_per_arm"] == expected
        assert json.loads((out / "budget.json").read_text())["steps_per_arm"] == expected
        # A rerun reads the recorded budget instead of calibrating again (reproducible on another machine).
        again = step_budget(cfg, resolve_arms(cfg), str(blob_store), out, messages.append)
        assert again == json.loads((out / "budget.json").read_text())
    assert sum("calibration:" in m for m in messages) == 4  # two arms, calibrated once per directory


def test_recipes_are_ranked_by_their_seeds_mean_not_their_luckiest_seed():
    cfg = BakeoffConfig(protocols=["knn"], rank_protocols=["knn"], seeds=[42, 43])
    records = [{"arm": a, "seed": s} for a in ("steady", "lucky") for s in (42, 43)]
    # lucky@seed42 is the best single model on both sets, but lucky's other seed is the worst: its seed mean
    # (0.70 on a, 0.50 on b) is below steady's (0.75, 0.55).
    rows = [_row("a", "steady@seed42", "knn", 0.76, 0.06), _row("a", "steady@seed43", "knn", 0.74, 0.04),
            _row("a", "lucky@seed42", "knn", 0.80, 0.10), _row("a", "lucky@seed43", "knn", 0.60, -0.10),
            _row("b", "steady@seed42", "knn", 0.56, 0.02), _row("b", "steady@seed43", "knn", 0.54, 0.00),
            _row("b", "lucky@seed42", "knn", 0.60, 0.06), _row("b", "lucky@seed43", "knn", 0.40, -0.14)]
    per_seed = rank_arms(rows, [f"{r['arm']}@seed{r['seed']}" for r in records], cfg)
    assert per_seed[0]["model"] == "lucky@seed42"
    ranking = rank_recipes(rows, records, cfg)
    assert [r["model"] for r in ranking] == ["steady", "lucky"]
    assert [r["mean_rank"] for r in ranking] == [1.0, 2.0]
    assert ranking[0]["mean_gain"] == pytest.approx(np.mean([0.05, 0.01]))
    assert ranking[1]["mean_gain"] == pytest.approx(np.mean([0.0, -0.04]))
