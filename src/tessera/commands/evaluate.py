"""Transfer evaluation under stratified K-fold CV (seed 000 §9): linear probe, fine-tuning, k-NN.

--data is a CSV (path,label; paths relative to it), a folder of class folders, or a benchmark spec:
first:PATH, frdeep:PATH, frdeep-cross:PATH (train FIRST, test NVSS of held-out objects), mirabest:PATH.
--model is a run dir, an exported model dir, a Hugging Face id, or random:NAME (e.g. random:cpu).
Writes OUT/<model>/<protocol>/results.json, OUT/comparison.md/.csv, OUT/confusion_<protocol>.png.
"""

from __future__ import annotations

from tessera.commands._common import add_config_arguments, positive_int


def add_arguments(parser) -> None:
    parser.add_argument("--model", action="append", required=True, metavar="REF",
                        help="encoder to evaluate, optionally LABEL=REF to name its row (repeatable)")
    parser.add_argument("--data", required=True, metavar="PATH_OR_BENCHMARK", help="labeled data or benchmark spec")
    parser.add_argument("--protocol", action="append", choices=["linear", "finetune", "knn"], metavar="NAME",
                        help="linear | finetune | knn (repeatable; default linear)")
    parser.add_argument("--folds", type=positive_int, default=None, help="K of the stratified K-fold (default 3)")
    parser.add_argument("--seed", type=int, default=None, help="fold and training seed (default 0)")
    parser.add_argument("--layer", type=int, default=None, help="read features from block N (default: last)")
    parser.add_argument("--layers", choices=["all"], default=None, help="'all': sweep every block and plot macro-F1 against depth")
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty output directory")
    parser.add_argument("--resume", action="store_true", help="keep a non-empty output directory and reuse its feature cache")
    add_config_arguments(parser)


def run(args) -> int:
    from tessera.config import resolve_config
    from tessera.evaluate.config import EvalConfig
    from tessera.evaluate.protocol import run_evaluation
    from tessera.outputs import check_out_vs_inputs

    check_out_vs_inputs(args.out, [args.data, args.data.split(":", 1)[-1]])  # a benchmark spec NAME:PATH reads PATH
    overrides = list(args.overrides)
    for key, value in (("folds", args.folds), ("seed", args.seed), ("layer", args.layer)):
        if value is not None:
            overrides.append(f"{key}={value}")
    if args.layers == "all":
        overrides.append("sweep_layers=true")
    cfg = resolve_config(EvalConfig, args.config, overrides, section="evaluate")
    run_evaluation(args.model, args.data, args.protocol or ["linear"], args.out, cfg, overwrite=args.overwrite, resume=args.resume)
    return 0
