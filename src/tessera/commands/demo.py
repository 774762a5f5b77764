"""Run the end-to-end demo offline: simulate -> ingest -> views -> two-stage pretraining (cpu preset)
-> linear probe and k-NN against random init -> DIR/report.md. About 15 minutes on 2 CPU cores."""

from __future__ import annotations


def add_arguments(parser):
    parser.add_argument("--out", default="demo_out", help="output directory (default: %(default)s)")
    parser.add_argument("--budget", choices=["full", "tiny"], default="full",
                        help="'full' is the demo; 'tiny' is a seconds-long smoke run used by the tests")
    parser.add_argument("--seed", type=int, default=0, help="seed for the simulated data (default: %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty output directory")


def run(args) -> int:
    from tessera.demo import run_demo

    run_demo(args.out, budget_name=args.budget, overwrite=args.overwrite, seed=args.seed)
    return 0
