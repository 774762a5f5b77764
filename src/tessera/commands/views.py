"""Draw the training views of a cutout store into a figure (seed 000 Figures 1 and 2): each parent cutout
with its ROI and crop boxes, followed by its views. ``--objective NAME`` previews the crop groups of any
registered objective (reconstruction, contrastive, dino, byol, ...); ``--branch`` is the older spelling for the
two seed objectives. Overrides name keys of the views section (``output_size=48``) or, with a section prefix,
of the whole pretraining config (``objective.dino.use_local_crops=false``)."""

from __future__ import annotations

import argparse

from tessera.commands._common import add_config_arguments, non_negative_int, positive_int

SECTIONS = ("model.", "views.", "objective.", "train.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from tessera.objectives.registry import list_objectives

    parser.add_argument("store", metavar="STORE", help="a cutout store directory (made by `tessera ingest`)")
    parser.add_argument("--out", required=True, help="output image, e.g. views.png")
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--branch", choices=("reconstruction", "contrastive"), default=None)
    choice.add_argument("--objective", choices=list_objectives(), default=None,
                        help="preview the crop groups of this registered objective")
    parser.add_argument("--n", type=positive_int, default=None, help="independent draws per cutout (default: 8, "
                        "2 for multi-crop objectives)")
    parser.add_argument("--cutouts", type=positive_int, default=4,
                        help="parent cutouts, one per row (default: %(default)s)")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tessera.config import resolve_config, save_config
    from tessera.corpus.store import CutoutStore
    from tessera.views.config import ViewConfig
    from tessera.commands._common import check_figure_path
    from tessera.views.figure import draw_crop_groups_figure, draw_views_figure

    check_figure_path(args.out)
    name = args.objective or args.branch or "reconstruction"
    store = CutoutStore(args.store)
    if name in ("reconstruction", "contrastive"):
        # A pretraining preset holds the recipe in its `views:` section; a flat YAML is a ViewConfig.
        cfg = resolve_config(ViewConfig, args.config, args.overrides, section="views")
        n = args.n or 8
        out = draw_views_figure(store, args.out, cfg, name, n, args.cutouts, args.seed)
        save_config(cfg, Path(out).with_suffix(".yaml"))
    else:
        from tessera.errors import TesseraError
        from tessera.objectives.registry import get_objective
        from tessera.train.config import resolve_pretrain_config

        overrides = [o if o.startswith(SECTIONS) else f"views.{o}" for o in args.overrides]
        full = resolve_pretrain_config(args.config, [f"train.branch={name}", *overrides])
        objective = get_objective(name, "--objective")(full)
        if objective.input_kind != "image":
            raise TesseraError(f"--objective {name}: trains on {objective.input_kind} data, whose view is the "
                               "spectrum itself (no crops to draw)")
        n = args.n or 2
        gen = objective.view_generator()
        groups = ", ".join(f"{g.count} x {g.name} {g.size}px" for g in gen.groups)
        title = f"tessera views: {name} crop groups {groups}"
        out = draw_crop_groups_figure(store, args.out, gen, title, n, args.cutouts, args.seed)
        save_config(full.views, Path(out).with_suffix(".yaml"))
    print(f"wrote {out} ({name}, {min(args.cutouts, len(store))} cutouts x {n} draws)")
    return 0
