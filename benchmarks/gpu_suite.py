"""One section of the GPU suite (benchmarks/gpu_suite.sh): ViT-B/16 at 224 px in bf16 (the ``paper`` preset from
scratch), each result merged into one JSON file as soon as it is measured, so a run cut short still reports.

Sections: ``env`` (GPU, versions, peak), ``mae`` (reconstruction step images/s and MFU, eager vs SDPA
attention), ``contrastive`` (2-view step images/s), ``dino`` (2 global + local crops), ``views`` (device view
generation images/s from 512 px cutouts, headroom over the model), ``loader`` (the read-ahead loader with 8 and
16 workers, headroom), ``pretrain`` (a from-scratch MAE run of ``--seconds`` on the simulated store through the
whole pipeline: loader -> device views -> step, the loss logged as it falls), ``compile`` (the MAE step with
``train.compile=true``). ``--smoke`` runs the same code on a micro ViT, tiny cutouts and the CPU, for the tests.

Model FLOPs utilization (stated in the JSON): FLOPs per image = 3 x forward (backward = 2 x forward), forward =
sum over the transformer stacks it runs of L * (24 T d^2 [QKV, output and 4d-MLP projections, 2 FLOPs per
multiply-add; ``16 T d m / 2`` for MLP width m in general] + 4 T^2 d [scores and weighted sum]) plus the patch
embedding and, for MAE, the decoder embedding and pixel prediction, with T the tokens that stack sees (MAE:
1 + 25% of the patches in the encoder, 1 + all patches in the decoder). MFU = FLOPs per image x images/s / the
GPU's dense bf16 peak (NVIDIA datasheets: H100/H200 SXM 989 TFLOPS, H100 PCIe 756, A100 312).

    python benchmarks/gpu_suite.py --section mae --out benchmarks/results_gpu.json [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

PEAK_BF16_TFLOPS = {"H200": 989.0, "H100 PCIe": 756.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0}
SECTIONS = ("env", "mae", "contrastive", "dino", "views", "loader", "pretrain", "compile")


# ----------------------------------------------------------------------------------------------- bookkeeping


def merge_result(path: Path, section: str, value) -> None:
    """Merge ``{section: value}`` into the JSON file at ``path`` (written atomically)."""
    data = json.loads(path.read_text()) if path.exists() else {}
    data[section] = value
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def read_result(path: Path, section: str, key: str):
    try:
        return json.loads(path.read_text())[section][key]
    except (OSError, KeyError, TypeError, ValueError):
        return None


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, tflops in PEAK_BF16_TFLOPS.items():  # "H100 PCIe" before "H100"
        if key in name:
            return tflops * 1e12
    return None


# ----------------------------------------------------------------------------------------------- FLOPs


def stack_flops(layers: int, tokens: int, width: int, mlp: int) -> float:
    """Forward FLOPs of ``layers`` transformer blocks on ``tokens`` tokens of ``width`` with MLP width ``mlp``."""
    proj = 2 * tokens * (4 * width * width + 2 * width * mlp)
    attention = 4 * tokens * tokens * width
    return layers * (proj + attention)


def train_flops_per_image(preset: dict, channels: int, objective: str, mask_ratio: float, views: int = 1) -> float:
    """Training FLOPs per image (3 x forward), formula in the module docstring."""
    p, d = preset["patch_size"], preset["hidden_size"]
    patches = (preset["image_size"] // p) ** 2
    embed = 2 * patches * p * p * channels * d
    if objective == "reconstruction":
        kept = 1 + int(patches * (1 - mask_ratio))
        dd = preset["decoder_hidden_size"]
        fwd = embed + stack_flops(preset["num_hidden_layers"], kept, d, preset["intermediate_size"])
        fwd += 2 * kept * d * dd + stack_flops(preset["decoder_num_hidden_layers"], patches + 1, dd,
                                               preset["decoder_intermediate_size"])
        fwd += 2 * (patches + 1) * dd * p * p * channels
    else:
        fwd = views * (embed + stack_flops(preset["num_hidden_layers"], patches + 1, d, preset["intermediate_size"]))
    return 3.0 * fwd


# ----------------------------------------------------------------------------------------------- set-up


def suite_config(smoke: bool, objective: str, extra: list[str] | None = None):
    from tessera.train.config import resolve_pretrain_config, stage_configs

    base = ["model.init=null", "train.effective_batch=null", "train.progress=false", f"train.branch={objective}"]
    if smoke:
        base += ["model.preset=vit_micro_patch8_32", "model.proj_hidden=32", "model.proj_dim=16",
                 "train.batch_size_reconstruction=8", "train.batch_size_contrastive=4"]
        return stage_configs(resolve_pretrain_config("cpu", base + (extra or [])))[0]
    return stage_configs(resolve_pretrain_config("paper", base + (extra or [])))[0]


def sizes(smoke: bool) -> dict:
    return ({"cutouts": 96, "size": 64, "steps": 3, "workers": [1], "seconds": 4.0} if smoke else
            {"cutouts": 1024, "size": 512, "steps": 20, "workers": [8, 16], "seconds": 60.0})


def store_for(args):
    from _simstore import NpyStore, make_store

    s = sizes(args.smoke)
    return NpyStore(make_store(args.store, s["cutouts"], s["size"]))


def fixed_views(cfg, objective: str, device: torch.device):
    from tessera.objectives.registry import get_objective

    plugin = get_objective(objective)(cfg)
    b, c, s = plugin.batch_size(), cfg.model.in_channels, cfg.views.output_size
    g = torch.Generator().manual_seed(0)
    if objective in ("reconstruction", "contrastive"):
        v = 1 if objective == "reconstruction" else 2
        return torch.rand(b, v, c, s, s, generator=g).to(device), b, v
    groups = plugin.crop_groups()
    views = [torch.rand(b, grp.count, c, grp.size, grp.size, generator=g).to(device) for grp in groups]
    return views, b, sum(grp.count for grp in groups)


def step_rate(cfg, objective: str, device: torch.device, steps: int) -> tuple[float, int, int]:
    """Images/s of the engine's optimizer step on a fixed batch (pretrain_step.py's harness)."""
    from pretrain_step import interleaved_images_per_second, tessera_step

    views, batch, v = fixed_views(cfg, objective, device)
    step, model = tessera_step(cfg, objective, views, device)
    ips = interleaved_images_per_second({"s": step}, batch, device, steps, rounds=2, warmup=3)["s"]
    del step, model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return ips, batch, v


def step_entry(cfg, objective: str, device: torch.device, steps: int, mask_ratio: float | None = None) -> dict:
    from tessera.models.presets import get_preset

    ips, batch, v = step_rate(cfg, objective, device, steps)
    entry = {"images_per_s": round(ips, 2), "batch": batch, "views_per_image": v,
             "attn_implementation": cfg.model.attn_implementation, "compile": cfg.train.compile}
    if objective in ("reconstruction", "contrastive"):
        flops = train_flops_per_image(get_preset(cfg.model.preset), cfg.model.in_channels, objective,
                                      mask_ratio if mask_ratio is not None else cfg.model.mask_ratio, v)
        peak = peak_flops(device)
        entry["train_flops_per_image"] = flops
        entry["mfu"] = round(flops * ips / peak, 4) if peak else None
    return entry


# ----------------------------------------------------------------------------------------------- sections


def section_env(args, device):
    info = {"torch": torch.__version__, "device": str(device), "smoke": args.smoke,
            "flops_formula": "3 x forward; forward = sum over stacks L*(2T(4d^2 + 2dm) + 4T^2 d) + embeddings "
                             "(MAE: encoder T = 1 + 25% patches, decoder T = 1 + all patches)"}
    try:
        import transformers

        info["transformers"] = transformers.__version__
    except ImportError:
        info["transformers"] = None
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["peak_bf16_tflops"] = (peak_flops(device) or 0) / 1e12 or None
    return info


def section_mae(args, device):
    out = {}
    for impl in ("eager", "sdpa"):
        cfg = suite_config(args.smoke, "reconstruction", [f"model.attn_implementation={impl}"])
        out[impl] = step_entry(cfg, "reconstruction", device, sizes(args.smoke)["steps"])
    out["sdpa_over_eager"] = round(out["sdpa"]["images_per_s"] / out["eager"]["images_per_s"], 3)
    out["images_per_s"] = out["sdpa"]["images_per_s"]
    out["mfu"] = out["sdpa"].get("mfu")
    return out


def section_contrastive(args, device):
    cfg = suite_config(args.smoke, "contrastive")
    return step_entry(cfg, "contrastive", device, sizes(args.smoke)["steps"])


def section_dino(args, device):
    cfg = suite_config(args.smoke, "dino")
    return step_entry(cfg, "dino", device, sizes(args.smoke)["steps"])


def section_compile(args, device):
    from tessera.models.pretrain_model import compile_unsupported

    if args.smoke:
        return {"skipped": "smoke run: Inductor's CPU code generation takes minutes (tests/models covers compile)"}
    cfg = suite_config(args.smoke, "reconstruction", ["train.compile=true"])
    reason = compile_unsupported(device)
    if reason is not None:
        return {"skipped": reason}
    t0 = time.perf_counter()
    entry = step_entry(cfg, "reconstruction", device, sizes(args.smoke)["steps"])
    entry["wall_s_including_compile"] = round(time.perf_counter() - t0, 1)
    sdpa = read_result(Path(args.out), "mae", "images_per_s")
    entry["compile_over_sdpa"] = round(entry["images_per_s"] / sdpa, 3) if sdpa else None
    return entry


def _median_rate(fn, images: int, device: torch.device, n: int) -> float:
    for _ in range(2):
        fn()
    times = []
    for _ in range(n):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return images / statistics.median(times)


def section_views(args, device):
    import numpy as np

    from tessera.objectives.registry import get_objective
    from tessera.train.loader import read_cutouts, spare_count
    from tessera.views.sampling import views_from_pool

    store = store_for(args)
    out = {}
    for objective, model_key in (("reconstruction", "mae"), ("contrastive", "contrastive")):
        cfg = suite_config(args.smoke, objective)
        plugin = get_objective(objective)(cfg)
        gen, batch = plugin.view_generator(), plugin.batch_size()
        n = batch + spare_count(batch, cfg.train.spare_fraction)
        images = read_cutouts(store, np.arange(n) % len(store)).to(device)
        g = torch.Generator(device=device)
        def make_views(gen=gen, images=images, batch=batch, g=g):
            return views_from_pool(gen, images, batch, g.manual_seed(0))

        ips = _median_rate(make_views, batch, device, sizes(args.smoke)["steps"])
        model = read_result(Path(args.out), model_key, "images_per_s")
        out[objective] = {"images_per_s": round(ips, 1), "batch": batch, "spares": n - batch,
                          "cutout_size": list(images.shape[1:]), "headroom_over_model": round(ips / model, 2)
                          if model else None}
    return out


def section_loader(args, device):
    from tessera.train.engine import StepSampler
    from tessera.train.loader import MicroBatchReads, MicroBatchStream, spare_count

    store = store_for(args)
    cfg = suite_config(args.smoke, "reconstruction")
    batch = cfg.train.batch_size_reconstruction
    model = read_result(Path(args.out), "mae", "images_per_s")
    out = {"batch": batch, "cutout_size": list(store.get_array(0).shape)}
    for workers in sizes(args.smoke)["workers"]:
        sampler = StepSampler(len(store), batch, 1, 0, 0)
        reads = MicroBatchReads(store, sampler.index_tensor, spare_count(batch, cfg.train.spare_fraction), 0, 0, 0)
        stream = MicroBatchStream(reads, device, stop=10**6, workers=workers, prefetch_factor=4,
                                  pin_memory=device.type == "cuda")
        for m in range(workers + 2):  # workers started, queues filled
            stream.get(m)
        n = max(8, 2 * workers)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for m in range(workers + 2, workers + 2 + n):
            stream.get(m)
        if device.type == "cuda":
            torch.cuda.synchronize()
        ips = n * batch / (time.perf_counter() - t0)
        stream.close()
        out[f"workers_{workers}"] = {"images_per_s": round(ips, 1),
                                     "headroom_over_model": round(ips / model, 2) if model else None}
    return out


def section_pretrain(args, device):
    """From-scratch MAE on the simulated store, the whole pipeline, for ``--seconds``; the loss every ~5%."""
    from tessera.train import distributed as D
    from tessera.train.engine import StageSpec, StageTrainer
    from tessera.train.logging import MetricsLogger

    s = sizes(args.smoke)
    seconds = args.seconds or s["seconds"]
    store = store_for(args)
    batch_guess = 8 if args.smoke else 256
    model_ips = read_result(Path(args.out), "mae", "images_per_s") or (50.0 if args.smoke else 1500.0)
    steps = max(20, int(seconds * model_ips / batch_guess))
    workers = s["workers"][-1]
    cfg = suite_config(args.smoke, "reconstruction", [f"train.max_steps={steps}", "train.warmup_fraction=0.05",
                                                       f"train.loader_workers={workers}", "train.lr=1.5e-4"])
    spec = StageSpec(0, "reconstruction", Path(args.store) / "run", step_offset=0, max_steps=steps)
    info = D.DistInfo(rank=0, world_size=1, local_rank=0, device=device)
    trainer = StageTrainer(cfg, spec, store, info, MetricsLogger([], enabled=False))
    curve, t0, step = [], time.perf_counter(), 0
    every = max(1, steps // 20)
    while step < steps and time.perf_counter() - t0 < seconds:
        metrics = trainer.train_step(step)
        step += 1
        if step % every == 0 or step == 1:
            curve.append({"step": step, "seconds": round(time.perf_counter() - t0, 1),
                          "loss": round(metrics["loss"], 5)})
    elapsed = time.perf_counter() - t0
    trainer.data_stream().close()
    first, last = curve[0]["loss"], curve[-1]["loss"]
    return {"steps": step, "planned_steps": steps, "seconds": round(elapsed, 1), "batch": trainer.batch,
            "loader_workers": workers, "images_per_s_end_to_end": round(step * trainer.batch / elapsed, 1),
            "resampled": int(trainer.resampled), "loss_first": first, "loss_last": last,
            "loss_fell": last < first, "curve": curve}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--section", choices=SECTIONS, required=True)
    parser.add_argument("--out", required=True, help="JSON file the section's result is merged into")
    parser.add_argument("--store", default=str(HERE / ".gpu_store"), help="directory of the simulated store")
    parser.add_argument("--smoke", action="store_true", help="micro model, tiny cutouts, CPU (tests)")
    parser.add_argument("--seconds", type=float, default=None, help="pretrain section length")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    device = torch.device("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    t0 = time.perf_counter()
    try:
        value = globals()[f"section_{args.section}"](args, device)
    except Exception as exc:  # a failed section is reported in the JSON; the suite goes on with the next
        value = {"error": f"{type(exc).__name__}: {exc}"[:500]}
        merge_result(Path(args.out), args.section, value)
        print(json.dumps({args.section: value}))
        return 1
    if isinstance(value, dict):
        value["section_wall_s"] = round(time.perf_counter() - t0, 1)
    merge_result(Path(args.out), args.section, value)
    print(json.dumps({args.section: value}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
