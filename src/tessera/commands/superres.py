"""Super-resolution with a PixelShuffle head on the encoder's token grid (seed 001 §4, issue 16).

--data is a CSV with lr_path,hr_path columns (paths relative to it) or a folder holding one as labels.csv, e.g.
the output of `tessera simulate lensing`. Each --model (LABEL=REF; a run dir, an exported model, random:NAME)
gets a fresh head trained with the encoder frozen and fine-tuned (key modes); all are scored with SSIM and PSNR
(scikit-image, data_range=1) on one seeded hold-out split, against bicubic upsampling. Writes OUT/results.json,
OUT/superres.md and OUT/superres.png (LR / bicubic / SR / HR / residual). Example (``tessera superres`` once the
command is listed in tessera.cli.COMMANDS):

  python -m tessera.commands.superres --model pretrained=runs/lens --model scratch=random:vit_tiny_patch4_64 \\
      --data sim/labels.csv \\
      --out eval/sr epochs=20

Config precedence (later wins): defaults, --config file section 'superres', key=value overrides.
"""

from __future__ import annotations

from tessera.commands._common import add_config_arguments, add_quiet_argument


def add_arguments(parser) -> None:
    parser.add_argument("--model", action="append", required=True, metavar="REF",
                        help="encoder, optionally LABEL=REF to name its row (repeatable)")
    parser.add_argument("--data", required=True, metavar="PATH",
                        help="pair CSV (lr_path,hr_path) or a folder with labels.csv")
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty output directory")
    add_quiet_argument(parser, "print nothing on success")
    add_config_arguments(parser, example="epochs=20 modes=[finetune]")


def run(args) -> int:
    import json

    from tessera.config import resolve_config, save_config
    from tessera.evaluate.protocol import resolve_models
    from tessera.evaluate.superres import SuperResConfig, evaluate_superres, load_sr_pairs, results_table, save_figure
    from tessera.outputs import prepare_output_dir

    cfg = resolve_config(SuperResConfig, args.config, list(args.overrides), section="superres")
    cfg.validate()
    pairs = load_sr_pairs(args.data, cfg.max_pairs, cfg.seed)
    models = resolve_models(args.model)
    out = prepare_output_dir(args.out, overwrite=args.overwrite, inputs=[args.data])
    save_config(cfg, out)
    results = evaluate_superres(models, pairs, cfg)
    save_figure(results, pairs, out / "superres.png", samples=cfg.figure_samples)
    public = {k: v for k, v in results.items() if not k.startswith("_")}
    (out / "results.json").write_text(json.dumps(public, indent=2, allow_nan=True) + "\n")
    table = results_table(results)
    (out / "superres.md").write_text(table)
    if not args.quiet:
        print(table, end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m tessera.commands.superres ...``: the command before it is listed in ``tessera.cli.COMMANDS``
    (registering it there needs a README example, which test_readme checks for every command)."""
    import argparse
    import sys

    from tessera.errors import TesseraError

    parser = argparse.ArgumentParser(prog="tessera superres", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    try:
        return run(parser.parse_args(argv))
    except TesseraError as exc:  # ConfigError included: one line, as tessera.cli does
        print(f"tessera superres: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
