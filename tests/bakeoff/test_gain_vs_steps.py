"""The gain-against-compute curve (issue 12: the best arm at 1x, 2x and 4x the budget) is read from the bake-offs'
own rows: the paired gain of each seed's arm at its step budget, never the random-init rows or other recipes."""

from __future__ import annotations

import json

import pytest

from tessera.bakeoff_report import gain_points
from tests._benchmarks import benchmark_module


def _row(model, protocol, f1, gain=None):
    row = {"data": "first:x", "model": model, "protocol": protocol, "macro_f1": {"mean": f1, "std": 0.01}}
    if gain is not None:
        row["gain"] = {"mean": gain, "std": 0.02, "wins": 7, "n": 9, "per_fold": [gain] * 9}
    return row


def _result(steps, seeds, gains):
    """A bake-off result of recipe 'byol-r' (one arm per seed) and recipe 'other', with their random init."""
    arms = [{"arm": "byol-r", "recipe": "byol-r", "seed": s, "steps": steps} for s in seeds]
    arms.append({"arm": "other", "recipe": "other", "seed": seeds[0], "steps": steps})
    label = (lambda a, s: a) if len(seeds) == 1 else (lambda a, s: f"{a}@seed{s}")
    rows = [_row(label("byol-r", s), "knn", 0.5 + g, g) for s, g in zip(seeds, gains)]
    rows += [_row(label("other", seeds[0]), "knn", 0.9, 0.4), _row("random-init:r", "knn", 0.5)]
    return {"arms": arms, "rows": rows, "config": {"seeds": seeds}}


def test_gain_points_are_the_recipes_own_rows_at_their_step_budget():
    one_seed = gain_points(_result(100, [42], [0.01]), "byol-r")
    assert [(p["steps"], p["seed"], p["gain"], p["wins"]) for p in one_seed] == [(100, 42, 0.01, 7)]
    two_seeds = gain_points(_result(200, [42, 43], [0.05, 0.02]), "byol-r")
    assert sorted((p["seed"], p["gain"], p["macro_f1"]) for p in two_seeds) == [(42, 0.05, 0.55), (43, 0.02, 0.52)]
    assert gain_points(_result(100, [42], [0.01]), "missing") == []


def test_gain_vs_steps_script_joins_bakeoffs_and_draws_the_curve(tmp_path, capsys):
    for name, steps, seeds, gains in (("1x", 100, [42], [0.01]), ("2x", 200, [42, 43], [0.05, 0.02])):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(_result(steps, seeds, gains)))
    with benchmark_module("gain_vs_steps") as script:
        out = script.main(["--recipe", "byol-r", "--bakeoff", str(tmp_path / "2x"), "--bakeoff", str(tmp_path / "1x"),
                           "--figure", str(tmp_path / "curve.png")])
        assert [(p["steps"], p["seed"]) for p in out["points"]] == [(100, 42), (200, 42), (200, 43)]
        assert (tmp_path / "curve.png").stat().st_size > 1000
        assert json.loads(capsys.readouterr().out)["points"][1]["gain"] == 0.05
        with pytest.raises(SystemExit, match="no bake-off results"):
            script.main(["--recipe", "byol-r", "--bakeoff", str(tmp_path / "missing")])
        with pytest.raises(SystemExit, match="no arm of recipe 'nope'"):
            script.main(["--recipe", "nope", "--bakeoff", str(tmp_path / "1x")])
