"""Embed every cutout of a cutout store (or every image of an evaluate data spec) with an encoder.

The embeddings go into EMB/<fingerprint>-<readout>-L<layer>/ as sharded arrays plus a parquet table joining
each row to the store's manifest (file, HDU, plane, tile position, RA/Dec). Resumable and append-only: a
killed run, rerun, loses and repeats nothing; a grown store embeds only its new cutouts; another model,
readout or layer writes a separate set.
"""

from __future__ import annotations

from tessera.commands._common import positive_int


def add_arguments(parser):
    parser.add_argument("--model", required=True, metavar="REF", help="run dir, exported model, HF id or random:NAME")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--corpus", metavar="STORE", help="a cutout store (tessera ingest)")
    what.add_argument("--data", metavar="SPEC", help="an evaluate data spec (frdeep:PATH, a CSV, class folders...)")
    parser.add_argument("--out", required=True, metavar="EMB", help="the embedding folder (created or resumed)")
    parser.add_argument("--layer", type=int, default=-1, help="block to read (negative from the end; default -1)")
    parser.add_argument("--readout", choices=("mean_patch", "cls", "mean_patch+cls"),
                        help="token readout (default: the model's own)")
    parser.add_argument("--batch", type=positive_int, default=64, help="images per forward pass (default 64)")
    parser.add_argument("--shard-size", type=positive_int, default=4096, help="rows per shard (default 4096)")
    parser.add_argument("--hdu", type=int, help="FITS HDU of --data images (default: the first image HDU)")
    parser.add_argument("--device", help="torch device (default: cuda when available, else cpu)")


def run(args) -> int:
    import torch

    from tessera.models.load import load
    from tessera.progress import is_quiet
    from tessera.search.embed import embed_source
    from tessera.search.source import from_data_spec, from_store

    source = from_store(args.corpus) if args.corpus else from_data_spec(args.data, hdu=args.hdu)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    encoder = load(args.model, device=device)
    report = embed_source(encoder, source, args.out, model_ref=args.model, readout=args.readout, layer=args.layer,
                          batch=args.batch, shard_size=args.shard_size, hdu=args.hdu, progress=not is_quiet())
    rate = f" ({report['images_per_s']} images/s)" if report["images_per_s"] else ""
    print(f"{report['set']}: {report['rows']} rows of dimension {report['dim']}; embedded {report['embedded']} "
          f"now{rate}, {report['already_done']} already done")
    return 0
