"""How does one recipe's gain over random init grow with pretraining compute? Prints one JSON object.

Reads the ``results.json`` of several ``tessera bakeoff`` runs of the same recipe at different ``--steps`` (same
corpus, data and folds) and collects, per data set x protocol x pretraining seed, the step budget, the macro-F1
and the paired per-fold gain over the random init of the same architecture; ``--figure`` draws them as gain
against steps (issue 12: the best arm at 1x, 2x and 4x the budget). Run from the repository root:

    PYTHONPATH=src .venv/bin/python benchmarks/gain_vs_steps.py --recipe byol-resnet-tiny \
        --bakeoff runs/bakeoff_src128 --bakeoff runs/bakeoff_src128_2x --bakeoff runs/bakeoff_src128_4x \
        --figure runs/gain_vs_steps.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def read_result(directory: Path) -> dict:
    path = Path(directory) / "results.json"
    if not path.is_file():
        raise SystemExit(f"{path}: no bake-off results (run `tessera bakeoff --out {directory}` to the end first)")
    return json.loads(path.read_text())


def main(argv: list[str] | None = None) -> dict:
    from tessera.bakeoff_report import gain_curve_figure, gain_points

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bakeoff", action="append", required=True, type=Path, help="a bake-off OUT (repeatable)")
    parser.add_argument("--recipe", required=True, help="the recipe whose arms are compared")
    parser.add_argument("--figure", type=Path, help="write the gain-vs-steps plot here")
    args = parser.parse_args(argv)
    points = []
    for directory in args.bakeoff:
        found = gain_points(read_result(directory), args.recipe)
        if not found:
            raise SystemExit(f"{directory}: no arm of recipe {args.recipe!r} with a gain row")
        points += [{**p, "bakeoff": str(directory)} for p in found]
    points.sort(key=lambda p: (p["data"], p["protocol"], p["steps"], p["seed"]))
    out = {"recipe": args.recipe, "points": points}
    if args.figure:
        out["figure"] = str(gain_curve_figure(points, args.figure, title=args.recipe))
    json.dump(out, sys.stdout, indent=1)
    print()
    return out


if __name__ == "__main__":
    main()
