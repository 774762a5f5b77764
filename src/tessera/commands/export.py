"""Export a run's encoder as a Hugging Face model directory with its model card, and optionally publish it.

RUN is a pretraining run directory (its model/ is copied, byte for byte, and described from RUN/config.yaml and
RUN/corpus.json) or an exported model directory (its card is rewritten). OUT is written, or rewritten when it
already holds an export; --eval adds the comparison table of a `tessera evaluate` output directory, --corpus the
description of the pretraining store, --push-to-hub uploads OUT with huggingface_hub (HF_ENDPOINT and HF_TOKEN
are honoured).
"""

from __future__ import annotations


def add_arguments(parser) -> None:
    parser.add_argument("run_dir", metavar="RUN", help="a pretraining run directory or an exported model directory")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="the exported model directory (written or rewritten)")
    parser.add_argument("--eval", metavar="DIR", help="a `tessera evaluate` output directory: its comparison table")
    parser.add_argument("--corpus", metavar="STORE", help="the pretraining cutout store, to describe it in the card")
    parser.add_argument("--push-to-hub", metavar="REPO_ID", help="upload OUT to this Hub model repository")
    parser.add_argument("--private", action="store_true", help="create the Hub repository private")


def run(args) -> int:
    from tessera.hub import check_repo_id, export_run, push_folder

    repo_id = check_repo_id(args.push_to_hub) if args.push_to_hub else None
    out = export_run(args.run_dir, args.out, eval_dir=args.eval, store=args.corpus, repo_id=repo_id)
    files = sorted(p.name for p in out.iterdir() if p.is_file())
    print(f"{out}: {len(files)} files ({', '.join(files)})")
    if repo_id is not None:
        print(f"pushed to {repo_id}: {push_folder(out, repo_id, private=args.private)}")
    return 0
