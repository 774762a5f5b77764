"""Is the lensing population neither trivial nor hopeless? Prints one JSON object (issue 16: a from-scratch
classifier's macro ROC AUC between about 0.85 and 0.97 on the 3 classes).

Two measurements, both through tessera's own functions and commands:

- the signal diagnostic (``tessera.simulate.lensing.substructure_signal``): on matched macro lenses, the noiseless
  max |cdm - no_sub| and |axion - no_sub| and their matched-filter SNR against the configured noise sigma;
- learnability: ``tessera simulate lensing`` with the given overrides, then ``tessera evaluate --protocol
  finetune`` of ``random:MODEL`` (a from-scratch supervised model: every weight trains from random init) with a
  from-scratch schedule (``SUPERVISED``, as benchmarks/demo_learnability.py: the seed's fine-tune schedule,
  batch 256 and layer decay 0.65, does not train a ViT from scratch), stratified K-fold, macro one-vs-rest AUC.

Run from the repository root (1 thread: the shared 2-core machine):

    PYTHONPATH=src OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/lensing_calibration.py \\
        --out cal.json [KEY=VALUE ...simulator overrides]

The default model is ``resnet_tiny_64``, a small ResNet: a ViT from scratch does not train on a few thousand lenses
(README, lensing), so it cannot say whether the population is learnable; the CNN can (the defaults, 1000 lenses
per class, 3 folds, 30 epochs at lr 2e-3: macro AUC 0.875, 11 CPU-minutes).
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

# From-scratch supervised schedule: many small steps, one lr for every layer (see the module docstring).
SUPERVISED = (*FROM_SCRATCH_FINETUNE, "finetune.lr=2e-3")
TARGET = (0.85, 0.97)


def signal_summary(overrides: list[str], n: int) -> dict:
    """Median and 10/90 % quantiles of the substructure signal on ``n`` matched lenses, in units of the peak and
    (``l2_delta``) as matched-filter SNR at the noisiest and the cleanest configured SNR."""
    import numpy as np

    from tessera.config import apply_overrides
    from tessera.simulate.config import SimulateLensingConfig
    from tessera.simulate.lensing import substructure_signal

    cfg = apply_overrides(SimulateLensingConfig(), overrides)
    cfg.validate()
    out = {}
    for label, d in substructure_signal(cfg, n=n).items():
        q = {k: [round(float(x), 4) for x in np.quantile(v, [0.1, 0.5, 0.9])] for k, v in d.items()}
        low, high = cfg.snr_range
        q["matched_filter_snr_noisiest"] = [round(x * low, 1) for x in q["l2_delta"]]
        q["matched_filter_snr_cleanest"] = [round(x * high, 1) for x in q["l2_delta"]]
        out[label] = q
    out["noise_sigma_range"] = [round(1 / cfg.snr_range[1], 4), round(1 / cfg.snr_range[0], 4)]
    out["quantiles"] = [0.1, 0.5, 0.9]
    return out


def learnability(root: Path, args, overrides: list[str]) -> dict:
    data, out = root / "sim", root / "eval"
    simulate = ["simulate", "lensing", "--out", str(data), "--per-class", str(args.per_class), "--seed",
                str(args.seed), "--quiet", *overrides]
    evaluate = ["evaluate", "--model", f"scratch=random:{args.model}", "--data", str(data / "labels.csv"),
                "--out", str(out), "--protocol", "finetune", f"folds={args.folds}", "progress=false",
                f"finetune.epochs={args.epochs}", f"stretch={args.stretch}", *SUPERVISED, *args.eval]
    t0 = time.perf_counter()
    tessera(simulate)
    t1 = time.perf_counter()
    tessera(evaluate)
    t2 = time.perf_counter()
    result = json.loads((out / "scratch" / "finetune" / "results.json").read_text())
    return {
        "roc_auc": round(result["roc_auc"]["mean"], 4), "roc_auc_std": round(result["roc_auc"]["std"], 4),
        "roc_auc_per_fold": [round(f["roc_auc"], 4) for f in result["per_fold"]],
        "accuracy": round(result["accuracy"]["mean"], 4), "confusion": result["confusion"],
        "classes": result["classes"], "simulate_s": round(t1 - t0, 1), "evaluate_s": round(t2 - t1, 1),
        "commands": [f"tessera {shlex.join(simulate)}", f"tessera {shlex.join(evaluate)}"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="SimulateLensingConfig overrides")
    parser.add_argument("--per-class", type=int, default=1000)
    parser.add_argument("--model", default="resnet_tiny_64", help="random:MODEL is the from-scratch model")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stretch", default="minmax", choices=("minmax", "zscale"),
                        help="evaluate's per-image normalization (ZScale saturates the ring: see corpus.normalize)")
    parser.add_argument("--eval", action="append", default=[], metavar="KEY=VALUE",
                        help="extra `tessera evaluate` overrides (repeatable)")
    parser.add_argument("--signal-lenses", type=int, default=40, help="matched lenses for the signal diagnostic")
    parser.add_argument("--skip-train", action="store_true", help="only the signal diagnostic")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args()

    start = time.perf_counter()
    report = {"overrides": args.overrides, "stretch": args.stretch, "target_roc_auc": list(TARGET),
              "signal": signal_summary(args.overrides, args.signal_lenses)}
    if not args.skip_train:
        with tempfile.TemporaryDirectory() as tmp:
            report["learnability"] = {"model": f"random:{args.model}", "per_class": args.per_class,
                                      "folds": args.folds, "epochs": args.epochs,
                                      **learnability(Path(tmp), args, args.overrides)}
        auc = report["learnability"]["roc_auc"]
        report["in_target"] = TARGET[0] <= auc <= TARGET[1]
        print(f"[calibration] {args.overrides}: AUC {auc:.3f}", file=sys.stderr)
    report["wall_s"] = round(time.perf_counter() - start, 1)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
