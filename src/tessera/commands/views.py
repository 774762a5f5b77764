"""Draw the training views of a cutout store into a figure (seed 000 Figures 1 and 2): each parent cutout
with its ROI and crop boxes, followed by reconstruction views or contrastive (wide, additional) pairs."""

from __future__ import annotations

import argparse

from tessera.commands._common import add_config_arguments, non_negative_int, positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("store", metavar="STORE", help="a cutout store directory (made by `tessera ingest`)")
    parser.add_argument("--out", required=True, help="output image, e.g. views.png")
    parser.add_argument("--branch", choices=("reconstruction", "contrastive"), default="reconstruction")
    parser.add_argument("--n", type=positive_int, default=8, help="independent draws per cutout (default: %(default)s)")
    parser.add_argument("--cutouts", type=positive_int, default=4, help="parent cutouts, one per row (default: %(default)s)")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tessera.config import resolve_config, save_config
    from tessera.corpus.store import CutoutStore
    from tessera.views.config import ViewConfig
    from tessera.commands._common import check_figure_path
    from tessera.views.figure import draw_views_figure

    check_figure_path(args.out)
    # A pretraining preset holds the recipe in its `views:` section; a flat YAML is a ViewConfig.
    cfg = resolve_config(ViewConfig, args.config, args.overrides, section="views")
    store = CutoutStore(args.store)
    out = draw_views_figure(store, args.out, cfg, args.branch, args.n, args.cutouts, args.seed)
    save_config(cfg, Path(out).with_suffix(".yaml"))
    print(f"wrote {out} ({args.branch}, {min(args.cutouts, len(store))} cutouts x {args.n} draws)")
    return 0
