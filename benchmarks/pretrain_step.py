"""Images/s of one tessera pretraining step of every registered objective; reconstruction and contrastive also
against the obvious implementation.

For each objective, the tessera step (``StageTrainer.train_step``: DDP-ready forward through the single model entry
point, loss module, gradient clipping, non-finite guard, AdamW with parameter groups, cosine schedule) runs on a
fixed batch, next to a reference written with plain ``transformers`` and a plain PyTorch loop (AdamW, same batch,
same architecture): ``ViTMAEForPreTraining(...).loss`` for reconstruction, ``ViTMAEModel`` (no masking) + mean-patch
+ MLP/BN head + InfoNCE for contrastive. The self-distillation objectives (dino = DINO + iBOT + KoLeo on 2 global
+ N local crops, byol) have no plain reference here: their rows give tessera images/s only (reference null).
View generation and data loading are excluded.

Prints one JSON object: images/s of both, the ratio tessera/reference (>= 1 expected), and on CUDA the model
FLOPs utilization (6 * params * tokens per image * images/s against the GPU's dense bf16 peak).

    python benchmarks/pretrain_step.py --preset cpu [--batch 32] [--steps 10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

H100_BF16_DENSE_TFLOPS = 989.0  # H100 SXM, dense bf16 (NVIDIA datasheet)


class _FixedViews:
    """Stands in for a CutoutStore: the benchmark feeds a fixed view batch, so only its length is read."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n


def tessera_step(cfg, objective: str, views: torch.Tensor, device: torch.device):
    """A ready-to-call tessera optimizer step on ``views`` (B, V, C, S, S), or a list of crop-group tensors."""
    from tessera.train import distributed as D
    from tessera.train.engine import StageSpec, StageTrainer
    from tessera.train.logging import MetricsLogger

    spec = StageSpec(0, objective, directory=None, step_offset=0, max_steps=10_000)
    info = D.DistInfo(rank=0, world_size=1, local_rank=0, device=device)
    batch = views[0].shape[0] if isinstance(views, list) else views.shape[0]
    trainer = StageTrainer(cfg, spec, _FixedViews(10 * batch), info, MetricsLogger([], enabled=False))
    trainer.micro_batch = lambda step, micro: views
    counter = iter(range(10**9))
    return lambda: trainer.train_step(next(counter)), trainer.model


def reference_step(cfg, objective: str, views: torch.Tensor, device: torch.device, amp_dtype):
    """The obvious implementation with plain transformers + AdamW on the same batch."""
    from transformers import ViTMAEConfig, ViTMAEForPreTraining, ViTMAEModel

    from tessera.models.presets import get_preset

    preset = get_preset(cfg.model.preset)
    c = views.shape[2]
    if objective == "reconstruction":
        config = ViTMAEConfig(**preset, num_channels=c, mask_ratio=cfg.model.mask_ratio)
        model = ViTMAEForPreTraining(config).to(device)
        x = views[:, 0]

        def loss_fn():
            return model(pixel_values=x).loss
    else:
        config = ViTMAEConfig(**preset, num_channels=c, mask_ratio=0.0)
        backbone = ViTMAEModel(config)
        head = nn.Sequential(
            nn.Linear(config.hidden_size, cfg.model.proj_hidden), nn.LayerNorm(cfg.model.proj_hidden), nn.ReLU(),
            nn.Linear(cfg.model.proj_hidden, cfg.model.proj_dim), nn.BatchNorm1d(cfg.model.proj_dim),
        )
        model = nn.ModuleDict({"backbone": backbone, "head": head}).to(device)
        b, v = views.shape[:2]
        x = views.flatten(0, 1)
        labels = torch.arange(b * v, device=device).reshape(b, v).flip(1).flatten()  # the other view of each image

        def loss_fn():
            tokens = model["backbone"](pixel_values=x).last_hidden_state[:, 1:]
            z = F.normalize(model["head"](tokens.mean(1)).float(), dim=-1)
            logits = z @ z.T / 0.1
            logits = logits.masked_fill(torch.eye(b * v, dtype=torch.bool, device=device), float("-inf"))
            return F.cross_entropy(logits, labels)

    opt = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr, weight_decay=0.05, fused=device.type == "cuda")

    def step():
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            loss = loss_fn()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step, model


def interleaved_images_per_second(
    steps: dict[str, callable], images: int, device: torch.device, total: int, rounds: int = 5, warmup: int = 2
) -> dict[str, float]:
    """Median images/s of each step function, timed in alternating rounds so that load from other processes on
    a shared machine hits every contender alike (ratios, not absolute numbers, are the point on CPU)."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    per_round = max(1, total // rounds)
    for _ in range(rounds):
        for name, step in steps.items():
            for _ in range(per_round):
                if device.type == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                step()
                if device.type == "cuda":
                    torch.cuda.synchronize()
                times[name].append(time.perf_counter() - t0)
    return {name: images / statistics.median(t) for name, t in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu", help="pretraining preset (cpu, paper) or YAML")
    parser.add_argument("--batch", type=int, default=None,
                        help="images per step (default: the preset's per-device batch)")
    parser.add_argument("--steps", type=int, default=15, help="timed steps per contender (in 5 alternating rounds)")
    parser.add_argument("--objectives", default="reconstruction,contrastive,dino,byol")
    args = parser.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from tessera.train.config import resolve_pretrain_config
    from tessera.train.engine import resolve_precision

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    overrides = ["model.init=null", "train.effective_batch=null", "train.progress=false"]
    if device.type == "cuda" and args.preset == "cpu":
        print("note: CUDA available; the GPU figure is quoted for --preset paper (ViT-B/16 at 224, bf16)",
              file=sys.stderr)
    cfg = resolve_pretrain_config(args.preset, overrides)
    amp_dtype = resolve_precision(cfg.train.precision, device)
    size = cfg.views.output_size
    result = {
        "benchmark": "pretrain_step", "preset": args.preset, "model": cfg.model.preset, "image_size": size,
        "device": torch.cuda.get_device_name() if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "precision": str(amp_dtype).replace("torch.", "") if amp_dtype else "fp32", "steps": args.steps,
    }
    from tessera.objectives.registry import get_objective
    from tessera.train.config import stage_configs

    for objective in args.objectives.split(","):
        ocfg = stage_configs(resolve_pretrain_config(args.preset, overrides + [f"train.branch={objective}"]))[0]
        plugin = get_objective(objective)(ocfg)
        batch = args.batch or plugin.batch_size()
        g = torch.Generator().manual_seed(0)
        c = ocfg.model.in_channels
        if objective in ("reconstruction", "contrastive"):
            v = 1 if objective == "reconstruction" else 2
            views = torch.rand(batch, v, c, size, size, generator=g).to(device)
        else:
            views = [torch.rand(batch, grp.count, c, grp.size, grp.size,
                                generator=g).to(device) for grp in plugin.crop_groups()]
            v = sum(grp.count for grp in plugin.crop_groups())
        ours, model = tessera_step(ocfg, objective, views, device)
        n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        steps = {"tessera": ours}
        if objective in ("reconstruction", "contrastive"):
            steps["reference"] = reference_step(ocfg, objective, views, device, amp_dtype)[0]
        ips = interleaved_images_per_second(steps, batch, device, args.steps)
        ours_ips, ref_ips = ips["tessera"], ips.get("reference")
        del ours, model, steps
        entry = {"batch": batch, "views_per_image": v, "tessera_images_per_s": round(ours_ips, 2),
                 "reference_images_per_s": round(ref_ips, 2) if ref_ips else None,
                 "ratio": round(ours_ips / ref_ips, 3) if ref_ips else None,
                 "trainable_params": n_params}
        if device.type == "cuda":
            tokens = (size // 16) ** 2 + 1
            # 6 * params * tokens per image processed (fwd + bwd); masked reconstruction runs the encoder on 25%
            # of the tokens, so this is an upper-bound style approximation, as is customary for MFU.
            flops = 6 * n_params * tokens * v * ours_ips
            entry["mfu"] = round(flops / (H100_BF16_DENSE_TFLOPS * 1e12), 4)
        else:
            entry["mfu"] = None
        result[objective] = entry
    if device.type != "cuda":
        result["gpu"] = "missing: no CUDA device here; ViT-B/16 images/s and MFU need a GPU run (--preset paper)"
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
