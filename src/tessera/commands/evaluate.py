"""Transfer evaluation under stratified K-fold CV (seed 000 §9): strict linear probe, converged logistic probe,
fine-tuning, k-NN, ridge (regression), mlp (few-shot regression, seed 003 §6), retrieval, segmentation (dense
probe on patch tokens; needs a mask column); layer sweeps, label efficiency, dense-feature diagnostics.

--data is a CSV (path,label; paths relative to it), a folder of class folders, or a benchmark spec:
first:PATH, frdeep:PATH, frdeep-cross:PATH (train FIRST, test NVSS of held-out objects), frdeep-pairs:PATH
(FIRST/NVSS pairs cut to their common field, for retrieval), mirabest:PATH.
--model is a run dir, an exported model dir, a Hugging Face id, or random:NAME (e.g. random:cpu).
Writes OUT/<model>/<protocol>/results.json, OUT/comparison.md/.csv, OUT/confusion_<protocol>.png.
"""

from __future__ import annotations

import sys

from tessera.commands._common import add_config_arguments, positive_int

PROTOCOL_CHOICES = ("linear", "logistic", "knn", "finetune", "ridge", "retrieval", "segmentation", "mlp")


def add_arguments(parser) -> None:
    parser.add_argument("--model", action="append", required=True, metavar="REF",
                        help="encoder to evaluate, optionally LABEL=REF to name its row (repeatable)")
    parser.add_argument("--data", required=True, metavar="PATH_OR_BENCHMARK", help="labeled data or benchmark spec")
    parser.add_argument("--protocol", action="append", choices=PROTOCOL_CHOICES, metavar="NAME",
                        help=" | ".join(PROTOCOL_CHOICES) + " (repeatable; default linear)")
    parser.add_argument("--folds", type=positive_int, default=None, help="K of the stratified K-fold (default 3)")
    parser.add_argument("--seed", type=int, default=None, help="fold and training seed (default 0)")
    parser.add_argument("--layer", type=int, default=None, help="read features from block N (default: last)")
    parser.add_argument("--layers", choices=["all"], default=None,
                        help="'all': every block from one feature extraction; plots the metric against depth")
    parser.add_argument("--target", default=None, metavar="COLUMN",
                        help="regression on this metadata column (knn, ridge, mlp: R2 and MAE); never inferred")
    parser.add_argument("--label-efficiency", action="store_true",
                        help="logistic and knn with 5/10/25/50/all labels per class (label_efficiency.md/.png)")
    parser.add_argument("--diagnostics", action="store_true",
                        help="token norms, outliers, CLS-patch drift, effective rank, attention maps per model")
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty output directory")
    parser.add_argument("--resume", action="store_true",
                        help="keep a non-empty output directory and reuse its feature cache")
    add_config_arguments(parser)


def _summary_line(r: dict) -> str:
    for key in ("macro_f1", "r2"):
        if key in r:
            return (f"{r['model']} / {r['protocol']}: {key} {r[key]['mean']:.3f} ± {r[key]['std']:.3f} "
                    f"({r['seconds']:.1f} s)")
    return f"{r['model']} / {r['protocol']}: done ({r['seconds']:.1f} s)"


def run(args) -> int:
    from pathlib import Path

    from tessera.config import resolve_config
    from tessera.evaluate.config import EvalConfig
    from tessera.evaluate.protocol import run_evaluation
    from tessera.outputs import check_out_vs_inputs

    check_out_vs_inputs(args.out, [args.data, args.data.split(":", 1)[-1]])  # a benchmark spec NAME:PATH reads PATH
    # The flags are merged as typed values (``--target on`` stays the string "on"), after the key=value overrides.
    flags = {"folds": args.folds, "seed": args.seed, "layer": args.layer, "target": args.target,
             "sweep_layers": True if args.layers == "all" else None,
             "label_efficiency.enabled": True if args.label_efficiency else None,
             "diagnostics.enabled": True if args.diagnostics else None}
    cfg = resolve_config(EvalConfig, args.config, list(args.overrides), section="evaluate", values=flags)
    results = run_evaluation(args.model, args.data, args.protocol or ["linear"], args.out, cfg,
                             overwrite=args.overwrite, resume=args.resume)
    for r in results:
        print(_summary_line(r), file=sys.stderr)
    out = Path(args.out)
    print((out / "comparison.md").read_text())
    for extra in ("label_efficiency.md", "diagnostics.md"):
        if (out / extra).is_file():
            print((out / extra).read_text())
    return 0
