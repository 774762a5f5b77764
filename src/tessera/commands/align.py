"""Cross-modal alignment (seed 003, AstroCLIP): two pretrained towers pooled by cross-attention heads into one
shared space, trained with a symmetric InfoNCE (fixed logit scale 15.5); backbones frozen unless
train.trainable_blocks=K. Towers: any encoder ref (run dir, export, HF id, random:NAME) or a spectrum tower
(an exported spectrum encoder, random-spectrum:L). Pairs: frdeep-pairs:PATH (FIRST = a, NVSS = b) or a CSV of
path_a,path_b[,targets...], or match:A,B (each a path,ra_deg,dec_deg catalogue CSV or a CutoutStore directory
with RA/Dec in its manifest, joined within --match-radius arcsec; unmatched rows are counted and listed in
RUN/split.json). Works under `torchrun --nproc_per_node N` (negatives gathered across processes).

After training, RUN/results.json holds cross-modal recall@k and median rank, in-modal precision@k and zero-shot
k-NN results on the pairs held out of the alignment (data.holdout_fraction), for the unaligned towers, the
untrained heads and the aligned towers. `tessera.load(RUN, tower="a")` embeds into the shared space. Examples:

  tessera align --a random:vit_tiny_patch8_64 --b random:vit_tiny_patch8_64 --pairs frdeep-pairs:data/frdeep_fits \\
      --out runs/align train.max_steps=200
  tessera align --a runs/first --b runs/nvss --pairs frdeep-pairs:data/frdeep_fits --out runs/align --resume
"""

from __future__ import annotations

from tessera.commands._common import add_config_arguments


def add_arguments(parser) -> None:
    parser.add_argument("--a", required=True, metavar="REF_A", help="tower a's encoder ref")
    parser.add_argument("--b", required=True, metavar="REF_B", help="tower b's encoder ref")
    parser.add_argument("--pairs", required=True, metavar="PAIRS", help="frdeep-pairs:PATH or a CSV path_a,path_b,...")
    parser.add_argument("--match-radius", type=float, default=None, metavar="ARCSEC",
                        help="for --pairs match:A,B: join the catalogues' ra_deg/dec_deg or the stores' "
                        "manifest ra/dec within this radius")
    parser.add_argument("--out", required=True, metavar="RUN", help="the run directory to write")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true", help="continue RUN exactly from its latest checkpoint")
    group.add_argument("--overwrite", action="store_true", help="replace an existing RUN")
    parser.add_argument("--no-eval", action="store_true", help="skip the held-out evaluation (results.json)")
    add_config_arguments(parser, default=None, example="train.max_steps=100")


def run(args) -> int:
    import json
    import os

    from tessera.align.config import AlignConfig
    from tessera.align.results import alignment_results
    from tessera.align.trainer import align
    from tessera.config import resolve_config

    overrides = [f"a={args.a}", f"b={args.b}", f"pairs={args.pairs}", *args.overrides]
    if args.match_radius is not None:
        overrides.append(f"data.match_radius_arcsec={args.match_radius}")
    cfg = resolve_config(AlignConfig, args.config, overrides)
    run_dir = align(cfg, args.out, resume=args.resume, overwrite=args.overwrite)
    if os.environ.get("RANK", "0") != "0":
        return 0
    excluded = json.loads((run_dir / "split.json").read_text()).get("excluded", [])
    if excluded:  # unmatched rows of a position join, FR-DEEP objects without a partner image
        print(f"{len(excluded)} row(s) left unpaired, listed with their reason in {run_dir / 'split.json'}")
    if not args.no_eval:
        results = alignment_results(run_dir)
        (run_dir / "results.json").write_text(json.dumps(results, indent=2))
        for space in ("unaligned", "untrained_head", "aligned"):
            cross = results[space]["cross_modal"]
            line = ", ".join(f"{d}: " + " ".join(f"{k} {v['mean']:.3f}" for k, v in m.items() if k.startswith("recall"))
                             for d, m in cross.items() if isinstance(m, dict))
            print(f"{space}: {line or cross.get('skipped', '')}")
    print(run_dir)
    return 0
