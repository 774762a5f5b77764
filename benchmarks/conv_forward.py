"""Contrastive forward+backward images/s of the conv encoders against the ViT of the same input size, in one run.
Prints one JSON object per preset, plus one with the ratios to the ViT (ratios are what to compare on a noisy
machine; DESIGN §6).

    python benchmarks/conv_forward.py --batch 32 --threads 1
    python benchmarks/conv_forward.py --presets resnet18_64 resnet_small_64 vit_tiny_patch8_64 --device cuda

Each step is what a contrastive training step costs the model: encoder + projection head on (batch, 1, S, S),
a scalar of z, backward, zeroed gradients (no optimizer, no views).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

DEFAULT_PRESETS = ("resnet18_64", "resnet_small_64", "vit_tiny_patch8_64")
REFERENCE = "vit_tiny_patch8_64"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def images_per_s(preset: str, batch: int, repeats: int, device: torch.device) -> dict:
    """Time ``repeats`` contrastive forward+backward steps of ``preset`` after one warm-up step."""
    from tessera.models import ModelConfig, build_pretrain_model
    from tessera.models.presets import preset_backbone

    torch.manual_seed(0)
    cfg = ModelConfig(preset=preset, backbone=preset_backbone(preset) or "vit_mae")
    model = build_pretrain_model(cfg, branches=("contrastive",)).to(device).train()
    s = model.image_size
    x = torch.rand(batch, 1, s, s, device=device)

    def step():
        model(x, "contrastive")["z"].sum().backward()
        model.zero_grad(set_to_none=True)

    step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    _sync(device)
    seconds = (time.perf_counter() - start) / repeats
    return {
        "bench": "contrastive_forward_backward", "preset": preset, "backbone": cfg.backbone, "image_size": s,
        "batch": batch, "encoder_params_m": round(sum(p.numel() for p in model.encoder.parameters()) / 1e6, 2),
        "tokens": (s // model.patch_size) ** 2, "step_s": round(seconds, 4), "images_per_s": round(batch / seconds, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=list(DEFAULT_PRESETS))
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({args.threads} thread(s))"
    results = {}
    for preset in args.presets:
        results[preset] = images_per_s(preset, args.batch, args.repeats, device)
        print(json.dumps({**results[preset], "device": name}), flush=True)
    if REFERENCE in results:
        ref = results[REFERENCE]["images_per_s"]
        ratios = {p: round(r["images_per_s"] / ref, 3) for p, r in results.items() if p != REFERENCE}
        print(json.dumps({"bench": "images_per_s_ratio_to_vit", "reference": REFERENCE, "device": name, **ratios}))


if __name__ == "__main__":
    main()
