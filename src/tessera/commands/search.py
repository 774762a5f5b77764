"""Find the cutouts most similar to a query: a cutout id, an image file, or a sky position.

A position query is a cone search first (the cutouts whose footprint contains the position, or whose centre
lies within --radius), then a similarity search from the one whose centre is nearest. An image is embedded
with the set's own model. Prints the k nearest cutouts with provenance and similarity; with --out DIR also
writes results.csv, gallery.png and a static index.html gallery there.
"""

from __future__ import annotations


def add_arguments(parser):
    parser.add_argument("emb", metavar="EMB", help="an embedding set (or an EMB folder holding one)")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--image", metavar="FILE", help="an image file (FITS, PNG, NPY...), normalized like ingest")
    what.add_argument("--cutout", metavar="ID", help="a cutout id of the set (cutout_id column)")
    what.add_argument("--ra", type=float, help="right ascension in degrees (with --dec)")
    parser.add_argument("--dec", type=float, help="declination in degrees (with --ra)")
    parser.add_argument("--k", type=int, default=20, help="number of neighbours (default 20)")
    parser.add_argument("--radius", type=float, metavar="ARCSEC", help="cone radius around the position")
    parser.add_argument("--where", action="append", metavar="COL=VALUE", help="keep neighbours with COL == VALUE")
    parser.add_argument("--hdu", type=int, help="FITS HDU of --image (default: the first image HDU)")
    parser.add_argument("--out", metavar="DIR", help="write results.csv, gallery.png and index.html here")


def _check(args) -> None:
    from tessera.errors import TesseraError

    if args.k <= 0:
        raise TesseraError(f"--k {args.k}: must be a positive integer")
    if (args.ra is None) != (args.dec is None):
        raise TesseraError("--ra and --dec go together")
    if args.radius is not None and args.ra is None:
        raise TesseraError("--radius applies to a position query (--ra/--dec)")


def _print_table(results, score_col: str) -> None:
    cols = [c for c in ("rank", "cutout_id", score_col, "source", "survey", "path", "hdu", "x", "y", "ra", "dec")
            if c in results.columns]
    formats = {c: (lambda v: f"{v:.5f}") for c in ("ra", "dec") if c in cols}
    formats[score_col] = lambda v: f"{v:.4f}"
    print(results[cols].to_string(index=False, formatters=formats))


def run(args) -> int:
    from tessera.search.gallery import caption, write_gallery
    from tessera.search.query import Index, parse_where, read_query_image

    _check(args)
    where = parse_where(args.where)
    index = Index.open(args.emb)
    if args.image:
        query_image = read_query_image(args.image, args.hdu)
        results = index.query_files([args.image], args.k, where=where, hdu=args.hdu)
        query_caption = args.image
    elif args.cutout:
        results = index.query_ids([args.cutout], args.k, where=where)
        query_image, query_caption = None, caption(index.table.iloc[index.row_of(args.cutout)].to_dict())
    else:
        results, cone = index.query_position(args.ra, args.dec, args.k, args.radius, where=where)
        seed = str(results["query"].iat[0])
        print(f"cone: {len(cone)} cutout(s) at RA {args.ra} Dec {args.dec}; searching from {seed} "
              f"({cone['separation_arcsec'].iat[0]:.1f} arcsec from its centre)")
        query_image, query_caption = None, f"{seed}\nRA {args.ra} Dec {args.dec}"
    score_col = "similarity" if "similarity" in results.columns else "distance"
    _print_table(results, score_col)
    if args.out:
        if query_image is None:
            query_image = index.image_of(str(results["query"].iat[0]))
        images = [index.image_of(c) for c in results["cutout_id"]]
        paths = write_gallery(args.out, results, query_image, query_caption, images)
        print(f"wrote {paths['csv']}, {paths['figure']}, {paths['html']}")
    return 0
