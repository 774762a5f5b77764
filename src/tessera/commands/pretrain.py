"""Continued pretraining of a ViT on a cutout store: reconstruction, contrastive, or two-stage (seed 000 §5.4).

Runs on one process, or under `torchrun --nproc_per_node N` with DDP (nccl on GPU, gloo on CPU). The run
directory gets config.yaml, metrics.jsonl, checkpoints and model/ (the exported encoder); two-stage runs keep
each stage in RUN/stage1_reconstruction and RUN/stage2_contrastive. Examples:

  tessera pretrain --config cpu --corpus STORE --out runs/cpu
  tessera pretrain --config paper --corpus STORE --out runs/paper train.branch=contrastive
  tessera pretrain --config cpu --corpus STORE --out runs/cpu --resume
"""

from __future__ import annotations

from tessera.commands._common import add_config_arguments


def add_arguments(parser) -> None:
    parser.add_argument("--corpus", required=True, metavar="STORE", help="a cutout store made by `tessera ingest`")
    parser.add_argument("--out", required=True, metavar="RUN", help="the run directory to write")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true", help="continue RUN exactly from its latest checkpoint")
    group.add_argument("--overwrite", action="store_true", help="replace an existing RUN")
    add_config_arguments(parser, default="cpu", example="train.max_steps=100")


def run(args) -> int:
    import os

    from tessera.outputs import check_out_vs_inputs
    from tessera.train.engine import pretrain_from_config

    check_out_vs_inputs(args.out, [args.corpus])  # --overwrite must never delete the corpus (issue 17)
    run_dir = pretrain_from_config(
        args.config, args.overrides, args.corpus, args.out, resume=args.resume, overwrite=args.overwrite
    )
    if os.environ.get("RANK", "0") == "0":  # one line from the whole torchrun job
        print(run_dir)
    return 0
