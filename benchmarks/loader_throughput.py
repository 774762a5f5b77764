"""Does reading keep up with the model? The read-ahead loader (train/loader.py) against the synchronous path it
replaced, in the same run, plus each stage's images/s alone.

Rows (one JSON object):
- ``loader_images_per_s``: micro-batches read by ``MicroBatchStream`` (``--workers`` DataLoader workers, memmap
  float16 reads, collation into one tensor) with nothing else running, in sampled images/s;
- ``views_images_per_s``: device-side view generation with spare-pool resampling (``views_from_pool``) alone;
- ``model_images_per_s``: the optimizer step on a fixed view batch (no reading, no views);
- ``step_new_images_per_s`` / ``step_old_images_per_s``: the full ``train_step`` with the new loader vs the old
  synchronous ``draw_view_batch`` read-per-cutout path, timed in alternating rounds (ratio new/old);
- ``*_headroom``: each reading/view rate over the model's (>= 1.5 wanted on a GPU, issue 15).

The store is simulated with NumPy (benchmarks/_simstore.py: a float16 memmap, the CutoutStore's access pattern).

    python benchmarks/loader_throughput.py --preset cpu --workers 2 --cutouts 512 --size 256 --steps 12
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _simstore import NpyStore, make_store  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def build_trainer(cfg, store, device: torch.device, objective: str):
    from tessera.train import distributed as D
    from tessera.train.engine import StageSpec, StageTrainer
    from tessera.train.logging import MetricsLogger

    spec = StageSpec(0, objective, directory=None, step_offset=0, max_steps=10_000)
    info = D.DistInfo(rank=0, world_size=1, local_rank=0, device=device)
    return StageTrainer(cfg, spec, store, info, MetricsLogger([], enabled=False))


def old_micro_batch(trainer):
    """The engine's micro-batch before the loader: one synchronous read and device copy per cutout, host-side
    resampling loop (views/sampling.py draw_view_batch)."""
    from tessera.views.sampling import draw_view_batch

    def micro_batch(step: int, micro: int):
        indices = trainer.sampler.indices(step * trainer.accum + micro)
        views, _ = draw_view_batch(trainer.store, indices, trainer.views, trainer.generator(step, micro, 0),
                                   trainer.device, max_attempts=trainer.cfg.views.max_attempts)
        return views

    return micro_batch


def rate(fn, images: int, n: int, device: torch.device, warmup: int = 2) -> float:
    """Median images/s of ``fn()`` over ``n`` calls after ``warmup``."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(n):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return images / statistics.median(times)


def loader_rate(trainer, n: int, device: torch.device) -> float:
    """Sampled images/s of the trainer's stream read in order (the loader's steady state, after 2 batches)."""
    stream = trainer.data_stream()
    stream.get(0)
    stream.get(1)
    sync(device)
    t0 = time.perf_counter()
    for m in range(2, 2 + n):
        stream.get(m)
    sync(device)
    stream.close()
    return n * trainer.batch / (time.perf_counter() - t0)


def measure(preset: str, workers: int, store, steps: int, device: torch.device, objective: str = "reconstruction",
            extra: list[str] | None = None) -> dict:
    from tessera.train.config import resolve_pretrain_config, stage_configs
    from tessera.views.sampling import views_from_pool

    overrides = ["model.init=null", "train.effective_batch=null", "train.progress=false",
                 f"train.branch={objective}", f"train.loader_workers={workers}", *(extra or [])]
    cfg = stage_configs(resolve_pretrain_config(preset, overrides))[0]
    new, old = build_trainer(cfg, store, device, objective), build_trainer(cfg, store, device, objective)
    old.micro_batch = old_micro_batch(old)
    batch = new.batch
    out = {"objective": objective, "batch": batch, "workers": workers, "spares": new.data_stream().reads.spares,
           "cutout_size": list(store.get_array(0).shape), "view_size": cfg.views.output_size}

    out["loader_images_per_s"] = loader_rate(build_trainer(cfg, store, device, objective), steps, device)
    read = new.data_stream().get(0)
    out["views_images_per_s"] = rate(
        lambda: views_from_pool(new.views, read.images, read.batch, torch.Generator(device=device).manual_seed(0)),
        batch, steps, device)
    fixed = build_trainer(cfg, store, device, objective)
    views = fixed.micro_batch(0, 0)
    fixed.micro_batch = lambda step, micro: views
    counter = iter(range(10**9))
    out["model_images_per_s"] = rate(lambda: fixed.train_step(next(counter)), batch, steps, device)
    new.data_stream().close()

    # Alternating steps of the two contenders so load from other processes hits both alike.
    counters = {"new": iter(range(10**9)), "old": iter(range(10**9))}
    trainers = {"new": new, "old": old}
    for name in trainers:
        for _ in range(2):
            trainers[name].train_step(next(counters[name]))
    times: dict[str, list[float]] = {"new": [], "old": []}
    for _ in range(steps):  # one step per contender per round: the finest interleaving
        for name, trainer in trainers.items():
            for _ in range(1):
                sync(device)
                t0 = time.perf_counter()
                trainer.train_step(next(counters[name]))
                sync(device)
                times[name].append(time.perf_counter() - t0)
    new.data_stream().close()
    for name in times:
        out[f"step_{name}_images_per_s"] = batch / statistics.median(times[name])
    out["step_ratio_new_over_old"] = out["step_new_images_per_s"] / out["step_old_images_per_s"]
    out["loader_headroom"] = out["loader_images_per_s"] / out["model_images_per_s"]
    out["views_headroom"] = out["views_images_per_s"] / out["model_images_per_s"]
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in out.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--objective", default="reconstruction")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cutouts", type=int, default=512)
    parser.add_argument("--size", type=int, default=256, help="cutout side (px)")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--store", default=None, help="directory for the simulated store (default: a temp dir)")
    parser.add_argument("--override", action="append", default=[], help="extra config overrides (key=value)")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with tempfile.TemporaryDirectory() as tmp:
        store = NpyStore(make_store(args.store or tmp, args.cutouts, args.size))
        result = measure(args.preset, args.workers, store, args.steps, device, args.objective, args.override)
    result.update(benchmark="loader_throughput", preset=args.preset,
                  device=torch.cuda.get_device_name() if device.type == "cuda"
                  else f"cpu ({torch.get_num_threads()} threads)")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
