"""Turn FITS mosaics/cubes, images (PNG/JPEG/TIFF) and arrays (NPY/HDF5) into a normalized cutout store.

Every image plane is tiled (non-overlapping by default, partial edge tiles dropped), tiles with NaN/Inf,
all zeros or a constant value are dropped, and each kept tile is ZScale-normalized to [0, 1]
(seed 000 §3.1-3.2). Re-running the same command resumes an interrupted ingest and never duplicates
a cutout; new inputs are appended to an existing store. Config overrides (key=value) may follow the inputs.
PDF sheets (vector or scanned, multi-page) are rendered per page at --dpi in grayscale, inverted so ink is
bright, kept on their own linear scale, and near-blank tiles are dropped with --min-ink-fraction (issue 20).
On a cluster, N processes with --shard I/N (I = 0..N-1) each ingest every N-th input into STORE/parts/; then
`tessera ingest --merge STORE` combines them into exactly the store one process writes (same manifest bytes).
With --spectra (or a batch of CSV tables) the inputs are 1-D spectra: a spectrum store of float32 (C, L) on one
grid saved with it (grid.npy, store.json), NaN = missing channel, manifest and resume as for cutouts.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from tessera.commands._common import add_config_arguments, positive_int

_OVERRIDE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*=")


def add_arguments(parser):
    parser.add_argument("inputs", nargs="*", metavar="INPUT", help="files, directories (recursive) or glob patterns")
    parser.add_argument("--out", metavar="STORE", help="the cutout store directory (created or resumed)")
    parser.add_argument("--shard", metavar="I/N", help="ingest only every N-th input, from the I-th (0-based), into "
                        "STORE/parts/ (merge with --merge STORE)")
    parser.add_argument("--merge", metavar="STORE", help="merge the --shard parts of STORE into it (nothing else)")
    parser.add_argument("--tile", type=positive_int, help="tile side in pixels (default 512)")
    parser.add_argument("--stride", type=positive_int, help="tile stride (default: the tile size, no overlap)")
    parser.add_argument("--min-tile", type=positive_int,
                        help="keep inputs smaller than a tile whole if both sides are at least this (default 64)")
    parser.add_argument("--center-crop", type=positive_int, metavar="N",
                        help="cut every cutout to its central N x N after normalization (catalogue cutouts centred "
                        "on their source; the evaluation key center_crop=N cuts the same field)")
    parser.add_argument("--workers", type=positive_int, help="processes reading inputs in parallel (default 1)")
    parser.add_argument("--source",
                        help="survey/source name recorded in the manifest (default: the input's folder name)")
    parser.add_argument("--gray", action="store_true",
                        help="convert color images to one luma channel (a store keeps one channel count; odd inputs "
                        "are skipped)")
    parser.add_argument("--max-nan-fraction", type=float, metavar="F",
                        help="keep tiles with at most this fraction of blanked (NaN) pixels (default 0: any NaN drops "
                        "the tile)")
    parser.add_argument("--dpi", type=float, metavar="DPI",
                        help="PDF pages are rendered at this resolution (default 150)")
    parser.add_argument("--invert", action=argparse.BooleanOptionalAction, default=None,
                        help="ink bright on dark (radio's sparsity convention); "
                             "default: PDFs inverted, other files as they are")
    parser.add_argument("--min-ink-fraction", type=float, metavar="F",
                        help="drop tiles with a smaller fraction of ink pixels (blank sheet margins; default 0: off)")
    parser.add_argument("--spectra", action="store_true",
                        help="the inputs are 1-D spectra (NPY on one grid, or CSV/FITS tables of flux against "
                        "frequency or wavelength, resampled onto the store's grid); default: auto (a CSV-only batch, "
                        "or an existing spectrum store)")
    parser.add_argument("--length", type=positive_int, metavar="L",
                        help="spectra: channels of the store's grid (default: the NPY length or the longest table)")
    parser.add_argument("--positions", metavar="CSV",
                        help="spectra: a path,ra_deg,dec_deg catalogue giving the spectra their sky positions")
    parser.add_argument("--overwrite", action="store_true", help="wipe an existing store instead of resuming it")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    # The inputs are greedy, so key=value overrides land there; run() separates them.
    add_config_arguments(parser, example="shard_size=128")


def split_overrides(items: list[str]) -> tuple[list[str], list[str]]:
    """INPUT... key=value... -> (inputs, overrides); an existing path that looks like key=value stays an input."""
    inputs, overrides = [], []
    for item in items:
        if _OVERRIDE.match(item) and not Path(item).exists():
            overrides.append(item)
        else:
            inputs.append(item)
    return inputs, overrides


def _print_summary(report: dict) -> None:
    run = report["run"]
    dropped = ", ".join(f"{k} {v}" for k, v in report["tiles_dropped"].items())
    what = "spectra" if report.get("kind") == "spectrum" else "cutouts"
    lines = [
        f"store {report['store']}: {report['tiles_written']} {what} from {report['inputs_read']} inputs "
        f"({report['inputs_skipped']} skipped)",
        f"  dropped tiles: {dropped}",
    ]
    kept = {k: v for k, v in report.get("tiles_kept", {}).items() if v}
    if kept:
        lines.append("  kept tiles: " + ", ".join(f"{k} {v}" for k, v in kept.items()))
    lines += [
        f"  this run: {run['inputs_processed']} inputs processed, {run['inputs_already_done']} already done, "
        f"{run['mb_read']} MB in {run['seconds']} s ({run['mb_per_s']} MB/s, {run['tiles_per_s']} tiles/s, "
        f"{run['workers']} workers)",
    ]
    for item in report["skipped_inputs"][:10]:
        lines.append(f"  skipped: {item['reason']}")
    if len(report["skipped_inputs"]) > 10:
        lines.append(f"  ... and {len(report['skipped_inputs']) - 10} more skipped (see skipped.parquet)")
    print("\n".join(lines))


def _merge(args) -> int:
    from tessera.corpus.shards import merge_store
    from tessera.errors import TesseraError

    if args.inputs or args.out or args.shard:
        raise TesseraError(f"--merge {args.merge}: merges only; drop the inputs, --out and --shard")
    report = merge_store(args.merge)
    if not args.quiet:
        if report["merged_parts"]:
            print(f"merged {report['merged_parts']} parts into {report['store']}")
            _print_summary(report)
        else:
            print(f"{report['store']}: nothing to merge")
    return 0


def run(args) -> int:
    from tessera.config import resolve_config
    from tessera.corpus.config import IngestConfig
    from tessera.corpus.ingest import run_ingest
    from tessera.errors import TesseraError
    from tessera.shard_spec import parse_shard

    if args.merge:
        return _merge(args)
    if not args.inputs or not args.out:
        raise TesseraError("needs INPUT... and --out STORE (or --merge STORE)")
    shard = parse_shard(args.shard) if args.shard else None
    inputs, overrides = split_overrides(list(args.inputs))
    overrides = list(args.overrides or []) + overrides
    # The flags are merged as the typed values argparse made (never as "key=value" text re-read as YAML).
    flags = {"tile": args.tile, "stride": args.stride, "min_tile": args.min_tile, "center_crop": args.center_crop,
             "workers": args.workers,
             "source": args.source, "max_nan_fraction": args.max_nan_fraction, "to_gray": True if args.gray else None,
             "dpi": args.dpi, "invert": args.invert, "min_ink_fraction": args.min_ink_fraction,
             "kind": "spectrum" if args.spectra else None, "length": args.length, "positions": args.positions}
    cfg = resolve_config(IngestConfig, args.config, overrides, section="ingest", values=flags)
    report = run_ingest(inputs, args.out, cfg, overwrite=args.overwrite, progress=not args.quiet, shard=shard)
    if not args.quiet and shard is not None:
        print(f"shard {report['shard']} in {report['part']}; merge with: tessera ingest --merge {args.out}")
    if not args.quiet:
        _print_summary(report)
    sys.stdout.flush()
    return 0
