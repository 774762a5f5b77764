"""Pretraining of a ViT on a cutout store: any recipe of registered objectives (reconstruction, contrastive,
two-stage, dino, byol, or a YAML list of stages; seed 000 §5.4, seed 002 §7-8).

Runs on one process, or under `torchrun --nproc_per_node N` with DDP (nccl on GPU, gloo on CPU). The run
directory gets config.yaml, metrics.jsonl, checkpoints and model/ (the exported encoder); multi-stage runs keep
each stage in RUN/stageK_<objective>. `--config NAME` is a preset (cpu, paper), a shipped recipe
(configs/recipes/NAME.yaml) or a YAML path. With `train.monitor_data=SPEC` (any `tessera evaluate --data`
spec) a k-NN macro-F1 on frozen features of a few hundred labeled images is logged every train.monitor_every
steps (metrics.jsonl `monitor_knn_macro_f1`, TensorBoard, the progress bar). Examples:

  tessera pretrain --config cpu --corpus STORE --out runs/cpu
  tessera pretrain --config dino --corpus STORE --out runs/dino train.monitor_data=mirabest:data/MiraBest
  tessera pretrain --config paper --corpus STORE --out runs/paper train.branch=contrastive
  tessera pretrain --corpus STORE --out runs/cpu --resume      (reads runs/cpu/config.yaml)
  tessera pretrain --config spectrum --corpus SPECSTORE --out runs/spec   (a spectrum store: `ingest --spectra`)

A spectrum store (`tessera ingest --spectra`) trains the 1-D spectrum tower by masked modelling (objective
spectrum-masked, recipe `spectrum`); RUN/model is then a spectrum encoder that `tessera align --b RUN` reads.
"""

from __future__ import annotations

import sys
from typing import Callable

from tessera.commands._common import add_config_arguments


def build_knn_monitor(
    spec: str,
    max_images: int = 300,
    k: int = 20,
    temperature: float = 0.07,
    folds: int = 3,
    readout: str | None = None,
    seed: int = 0,
    batch_size: int = 64,
    center_crop: int | None = None,
) -> Callable[[object, int], dict[str, float]]:
    """A training monitor: stratified ``folds``-fold weighted k-NN macro-F1 (tessera.evaluate.knn, k=20, T=0.07)
    on frozen features of at most ``max_images`` images of the labeled set ``spec`` (any ``--data`` spec).

    The set is read once, here; the returned ``monitor(encoder, step) -> {"monitor_knn_macro_f1": f1}`` embeds
    it with ``encoder.embed`` (the tessera.models.encoder.Encoder interface) on every call. Pass it to
    ``tessera.train.engine.pretrain(..., monitor=...)``; train itself never imports evaluate. ``center_crop``:
    the images cut to their central N x N first, as the evaluation key of that name does.
    """
    import numpy as np

    from tessera.evaluate.benchmarks import load_eval_data
    from tessera.evaluate.folds import stratified_folds
    from tessera.evaluate.knn import knn_predict
    from tessera.evaluate.metrics import fold_metrics

    data = load_eval_data(spec, max_per_class=max(1, max_images // 2), seed=seed).train
    if center_crop is not None:
        from tessera.evaluate.datasets import center_cropped

        data = center_cropped(data, center_crop)
    order = np.random.default_rng(seed).permutation(len(data))[:max_images]
    labels = data.labels[order]
    n_classes = len(data.classes)
    splits = stratified_folds(labels, k=min(folds, int(np.bincount(labels).min()) if len(labels) else 2), seed=seed)

    def monitor(encoder, step: int) -> dict[str, float]:
        feats = np.zeros((len(order), encoder.hidden_size), dtype=np.float32)
        for group in data.shape_groups(order):
            for lo in range(0, len(group), batch_size):
                part = group[lo : lo + batch_size]
                rows = [int(np.nonzero(order == i)[0][0]) for i in part]
                feats[rows] = encoder.embed(data.batch(part), readout=readout).float().cpu().numpy()
        scores = [
            fold_metrics(labels[te], knn_predict(feats[tr], labels[tr], feats[te], n_classes, k=k,
                                                 temperature=temperature), n_classes)["macro_f1"]
            for tr, te in splits
        ]
        return {"monitor_knn_macro_f1": float(np.mean(scores))}

    return monitor


def _is_spectrum_store(corpus) -> bool:
    from tessera.corpus.store import read_store_info

    return read_store_info(corpus)["kind"] == "spectrum"


def add_arguments(parser) -> None:
    parser.add_argument("--corpus", required=True, metavar="STORE", help="a cutout store made by `tessera ingest`")
    parser.add_argument("--out", required=True, metavar="RUN", help="the run directory to write")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true", help="continue RUN exactly from its latest checkpoint")
    group.add_argument("--overwrite", action="store_true", help="replace an existing RUN")
    add_config_arguments(parser, default=None, example="train.max_steps=100",
                         default_help="cpu; with --resume, RUN's own config.yaml")


def run(args) -> int:
    from pathlib import Path

    from tessera.dist import is_main
    from tessera.errors import TesseraError
    from tessera.outputs import check_out_vs_inputs
    from tessera.train.engine import pretrain
    from tessera.train.run import resolve_run_config

    check_out_vs_inputs(args.out, [args.corpus])  # --overwrite must never delete the corpus (issue 17)
    cfg = resolve_run_config(args.config, args.overrides, args.out, args.resume)
    if not Path(args.corpus).exists():
        raise TesseraError(f"{args.corpus}: corpus store not found (build one with `tessera ingest`)")
    tc = cfg.train
    monitor_data = tc.monitor_data
    if monitor_data and _is_spectrum_store(args.corpus):
        # The k-NN monitor embeds labeled images with encoder.embed; a spectrum tower takes (B, C, L) spectra.
        print("tessera: warning: train.monitor_data skipped: the k-NN monitor embeds labeled images, and a spectrum "
              "run's encoder takes spectra", file=sys.stderr)
        monitor_data = None
    monitor = build_knn_monitor(monitor_data, max_images=tc.monitor_max_images,
                                seed=tc.seed) if monitor_data else None
    run_dir = pretrain(cfg, args.corpus, args.out, resume=args.resume, overwrite=args.overwrite, monitor=monitor)
    if is_main():  # one line from the whole torchrun job
        print(run_dir)
    return 0
