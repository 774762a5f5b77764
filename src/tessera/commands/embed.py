"""Embed every cutout of a cutout store (or every image of an evaluate data spec) with an encoder.

The embeddings go into EMB/<fingerprint>-<readout>-L<layer>/ as sharded arrays plus a parquet table joining
each row to the store's manifest (file, HDU, plane, tile position, RA/Dec). Resumable and append-only: a
killed run, rerun, loses and repeats nothing; a grown store embeds only its new cutouts; another model,
readout or layer writes a separate set.

On a cluster: N processes with --shard I/N (I = 0..N-1; under torchrun the rank and world size are used when
--shard is not given) each embed a deterministic 1/N into EMB/<set>/parts/; then `tessera embed --merge EMB`
puts the parts in place, giving exactly the set one process writes (same rows, order and bytes). A missing or
unfinished part is refused by index; merging twice is merging once.
"""

from __future__ import annotations

from tessera.commands._common import positive_int
from tessera.errors import TesseraError


def add_arguments(parser):
    parser.add_argument("--model", metavar="REF", help="run dir, exported model, HF id or random:NAME")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--corpus", metavar="STORE", help="a cutout store (tessera ingest)")
    what.add_argument("--data", metavar="SPEC", help="an evaluate data spec (frdeep:PATH, a CSV, class folders...)")
    parser.add_argument("--out", metavar="EMB", help="the embedding folder (created or resumed)")
    parser.add_argument("--shard", metavar="I/N", help="embed only part I of N (0-based; merge with --merge EMB)")
    parser.add_argument("--merge", metavar="EMB", help="merge the --shard parts of EMB's sets (nothing else is done)")
    parser.add_argument("--layer", type=int, default=-1, help="block to read (negative from the end; default -1)")
    parser.add_argument("--readout", choices=("mean_patch", "cls", "mean_patch+cls"),
                        help="token readout (default: the model's own)")
    parser.add_argument("--batch", type=positive_int, default=64, help="images per forward pass (default 64)")
    parser.add_argument("--shard-size", type=positive_int, default=4096, help="rows per shard (default 4096)")
    parser.add_argument("--hdu", type=int, help="FITS HDU of --data images (default: the first image HDU)")
    parser.add_argument("--device", help="torch device (default: cuda when available, else cpu)")


def _merge(args) -> int:
    from tessera.search.embed import merge_embeddings

    given = [f"--{k}" for k in ("model", "corpus", "data", "out", "shard") if getattr(args, k)]
    if given:
        raise TesseraError(f"--merge {args.merge}: merges only; drop {', '.join(given)}")
    for r in merge_embeddings(args.merge):
        what = f"merged {r['parts']} parts ({r['shards']} shards)" if r["parts"] else "nothing to merge"
        print(f"{r['set']}: {what}; {r['rows']} rows")
    return 0


def _device(args, shard) -> str:
    import os

    import torch

    if args.device:
        return args.device
    if not torch.cuda.is_available():
        return "cpu"
    return f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if shard and "LOCAL_RANK" in os.environ else "cuda"


def run(args) -> int:
    if args.merge:
        return _merge(args)
    missing = [name for name, ok in (("--model", args.model), ("--corpus or --data", args.corpus or args.data),
                                     ("--out", args.out)) if not ok]
    if missing:
        raise TesseraError(f"needs {', '.join(missing)} (or --merge EMB)")
    from tessera.models.load import load
    from tessera.progress import is_quiet
    from tessera.search.embed import embed_source
    from tessera.search.sharding import parse_shard, shard_from_environment
    from tessera.search.source import from_data_spec, from_store

    shard = parse_shard(args.shard) if args.shard else shard_from_environment()
    source = from_store(args.corpus) if args.corpus else from_data_spec(args.data, hdu=args.hdu)
    encoder = load(args.model, device=_device(args, shard))
    report = embed_source(encoder, source, args.out, model_ref=args.model, readout=args.readout, layer=args.layer,
                          batch=args.batch, shard_size=args.shard_size, hdu=args.hdu, progress=not is_quiet(),
                          shard=shard)
    rate = f" ({report['images_per_s']} images/s)" if report["images_per_s"] else ""
    where = f" (shard {report['shard']}, in {report['part']}; merge with --merge)" if shard else ""
    print(f"{report['set']}{where}: {report['rows']} rows of dimension {report['dim']}; embedded "
          f"{report['embedded']} now{rate}, {report['already_done']} already done")
    return 0
