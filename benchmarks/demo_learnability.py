"""Are the demo's simulated classes learnable from the pixels? Prints one JSON object.

Simulates ``tessera simulate morphology`` at the demo's settings (``tessera.demo.BUDGETS["full"]``: per class and
cutout size) into a temporary directory, once with today's defaults and once with the old defaults passed as
overrides, and evaluates ``random:cpu`` (the ``cpu`` preset's ViT with untrained weights) on each with 3 folds:

- ``finetune``: every weight trains on the fold's labels, i.e. a supervised model of the same architecture. From
  random init the seed's fine-tune schedule (batch 256, layer-wise lr decay 0.65: 2 optimizer steps per epoch, the
  embeddings at 0.65^7 of the lr) does not train at all, so the supervised arm uses a from-scratch schedule
  (``SUPERVISED``: batch 32, no layer decay, no head multiplier); these are ``tessera evaluate`` keys, nothing else.
  A ViT from scratch on a few hundred images is slow to start (measured on one fold of the 150-per-class set: chance
  level for ~10 epochs, then train and test macro-F1 rising together to 0.71 at epoch 25 of 25, loss still falling;
  a lower lr of 5e-4 was slower, 0.57), i.e. under-trained rather than overfitting; hence 60 epochs by default on the
  demo's larger set (``--epochs``; 250 per class: 0.746 at 30 epochs, 0.861 at 60, README).
- the supervised arm's summed confusion matrix (``confusion``, rows = true class in ``classes`` order) says which
  classes it still confuses.
- ``linear`` and ``knn`` on the frozen random features: the floor pretraining must beat; it should sit well below
  the supervised number so that the set leaves room for pretraining to help.

The criterion is supervised learnability only (issue 12: supervised macro-F1 >= 0.8); no pretraining recipe is
looked at. Run from the repository root:

    PYTHONPATH=src OMP_NUM_THREADS=2 HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/demo_learnability.py
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _tessera import FROM_SCRATCH_FINETUNE  # noqa: E402
from _tessera import run_tessera as tessera  # noqa: E402

# The defaults of SimulateMorphologyConfig before issue 12, as overrides of today's.
OLD_DEFAULTS = (
    "snr_range=[8.0,500.0]",
    "extent_fraction_range=[0.3,0.8]",
    "contaminants_mean=1.0",
)
# Supervised training from random init (see the module docstring): many small steps at one lr for every layer.
SUPERVISED = (*FROM_SCRATCH_FINETUNE, "finetune.lr=1.5e-3")
PROTOCOLS = ("finetune", "linear", "knn")


def summary(result_path: Path) -> dict:
    """mean, std and per-fold macro-F1 of one ``results.json``, and its confusion matrix (summed over the folds,
    rows = true class, in ``classes`` order): which classes a model confuses."""
    result = json.loads(result_path.read_text())
    return {
        "macro_f1_mean": round(result["macro_f1"]["mean"], 4),
        "macro_f1_std": round(result["macro_f1"]["std"], 4),
        "macro_f1_per_fold": [round(f["macro_f1"], 4) for f in result["per_fold"]],
        "classes": result["classes"],
        "confusion": result["confusion"],
    }


def run_arm(name: str, root: Path, per_class: int, size: int, seed: int, overrides: tuple[str, ...],
            epochs: int) -> dict:
    """Simulate one labeled set and evaluate random:cpu on it under every protocol; the arm's numbers and commands."""
    data, out = root / name, root / f"{name}_eval"
    simulate = ["simulate", "morphology", "--out", str(data), "--per-class", str(per_class), "--size", str(size),
                "--seed", str(seed), *overrides]
    evaluate = ["evaluate", "--model", "random:cpu", "--data", str(data / "labels.csv"), "--out", str(out),
                *(a for p in PROTOCOLS for a in ("--protocol", p)), "folds=3", "progress=false",
                f"finetune.epochs={epochs}", *SUPERVISED]
    start = time.perf_counter()
    tessera(simulate)
    tessera(evaluate)
    arm = {"per_class": per_class, "size": size, "overrides": list(overrides),
           "commands": [f"tessera {shlex.join(simulate)}", f"tessera {shlex.join(evaluate)}"]}
    for protocol in PROTOCOLS:
        arm[protocol] = summary(out / "random_cpu" / protocol / "results.json")
    arm["wall_s"] = round(time.perf_counter() - start, 1)
    print(f"[{name}] " + ", ".join(f"{p} {arm[p]['macro_f1_mean']:.3f}" for p in PROTOCOLS), file=sys.stderr)
    return arm


def main() -> None:
    from tessera.demo import BUDGETS

    full = BUDGETS["full"]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=full.per_class, help="new-defaults arm (demo: %(default)s)")
    parser.add_argument("--old-per-class", type=int, default=full.per_class // 2,
                        help="old-defaults arm (half the demo's, to keep the script near 10 min on 2 cores)")
    parser.add_argument("--size", type=int, default=full.cutout_size)
    parser.add_argument("--epochs", type=int, default=60, help="supervised epochs (finetune.epochs)")
    parser.add_argument("--seed", type=int, default=1, help="simulation seed (the demo uses its seed + 1)")
    parser.add_argument("--skip-old", action="store_true", help="only the new defaults")
    parser.add_argument("--keep", type=Path, default=None, help="write the sets and results here instead of a temp dir")
    args = parser.parse_args()

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        report = {"target": "supervised (finetune of random:cpu) macro-F1 mean over 3 folds >= 0.8",
                  "new_defaults": run_arm("new_defaults", root, args.per_class, args.size, args.seed, (), args.epochs)}
        if not args.skip_old:
            report["old_defaults"] = run_arm("old_defaults", root, args.old_per_class, args.size, args.seed,
                                             OLD_DEFAULTS, args.epochs)
    report["target_met"] = report["new_defaults"]["finetune"]["macro_f1_mean"] >= 0.8
    report["wall_s"] = round(time.perf_counter() - start, 1)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
