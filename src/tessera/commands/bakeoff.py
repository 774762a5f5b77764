"""The recipe bake-off (seed 002 §14): pretrain every recipe on one corpus with the same step budget, evaluate each
and a random-init encoder of each architecture under the same protocols and folds, and rank them.

--recipe is a shipped recipe name (see `tessera pretrain --help`), a preset, or a YAML file (repeatable; default:
the shipped default set). --steps fixes the optimizer steps per arm; without it the budget is calibrated once so
that the slowest arm takes --minutes on this machine, and recorded in OUT/budget.json (a rerun reuses it).
Rerunning the same command resumes: finished arms and evaluations are kept, unfinished arms resume exactly.

  tessera bakeoff --corpus STORE --data first:DATA/first_radio_galaxies --out bakeoff
  tessera bakeoff --corpus STORE --data labels.csv --out b --recipe mae-small --recipe byol --steps 600 repeats=1
"""

from __future__ import annotations

from tessera.commands._common import add_config_arguments, positive_int


def add_arguments(parser) -> None:
    parser.add_argument("--corpus", required=True, metavar="STORE", help="a cutout store made by `tessera ingest`")
    parser.add_argument("--data", action="append", required=True, metavar="SPEC",
                        help="labeled data to evaluate on, any `tessera evaluate --data` spec (repeatable)")
    parser.add_argument("--out", required=True, metavar="DIR", help="the bake-off directory (resumed when it exists)")
    parser.add_argument("--recipe", action="append", metavar="NAME_OR_YAML", help="a recipe to compare (repeatable)")
    parser.add_argument("--steps", type=positive_int, default=None,
                        help="optimizer steps per arm (default: calibrated)")
    parser.add_argument("--minutes", type=float, default=None,
                        help="calibration target of the slowest arm (default 15)")
    parser.add_argument("--seed", type=int, action="append", dest="seeds", metavar="N",
                        help="pretraining seed (repeatable; default 42)")
    add_config_arguments(parser, example="repeats=1")


def run(args) -> int:
    from tessera.bakeoff import BakeoffConfig, run_bakeoff
    from tessera.config import resolve_config

    overrides = list(args.overrides)
    cfg = resolve_config(BakeoffConfig, args.config, overrides, section="bakeoff")
    if args.recipe:
        cfg.recipes = list(args.recipe)
    if args.steps is not None:
        cfg.steps = args.steps
    if args.minutes is not None:
        cfg.minutes = args.minutes
    if args.seeds:
        cfg.seeds = list(args.seeds)
    result = run_bakeoff(args.corpus, args.data, args.out, cfg)
    if result.get("recipe_ranking"):
        print(f"recipes, {len(cfg.seeds)} seeds averaged:")
        _print_ranking(result["recipe_ranking"])
        print("every (recipe, seed):")
    _print_ranking(result["ranking"])
    return 0


def _print_ranking(ranking: list[dict]) -> None:
    for position, row in enumerate(ranking, 1):
        print(f"{position}. {row['model']}  mean rank {row['mean_rank']:.2f}  mean gain {row['mean_gain']:+.3f}")
