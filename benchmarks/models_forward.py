"""Encoder overhead vs plain transformers, and pretraining throughput per branch. Prints one JSON object per result.

    python benchmarks/models_forward.py --preset vit_tiny_patch8_64 --batch 32 --device cpu

The composed register-aware encoder (tessera.models.encoder.ViTEncoder) is timed against plain
``transformers.ViTMAEModel`` with the same weights in the same run (a ratio, robust on noisy machines);
images/s of the reconstruction and contrastive forward+backward are reported for the named device.
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def _time(fn, device, repeats: int) -> float:
    fn()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    from transformers import ViTMAEModel

    from tessera.models import ModelConfig, build_pretrain_model

    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="vit_tiny_patch8_64")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    torch.manual_seed(0)
    model = build_pretrain_model(ModelConfig(preset=args.preset)).to(device)
    plain = ViTMAEModel(model.encoder.backbone.config).to(device).eval()
    plain.load_state_dict(model.encoder.backbone.state_dict())
    s = model.image_size
    x = torch.rand(args.batch, 1, s, s, device=device)
    length = (s // model.patch_size) ** 2
    keep_order = torch.arange(length, device=device, dtype=torch.float32).expand(args.batch, length)
    model.eval()
    with torch.no_grad():
        t_ours = _time(lambda: model.encoder(x), device, args.repeats)
        plain.config.mask_ratio = 0.0
        t_plain = _time(lambda: plain(pixel_values=x, noise=keep_order), device, args.repeats)
    print(json.dumps({"bench": "encoder_overhead", "preset": args.preset, "batch": args.batch, "device": name,
                      "ours_s": round(t_ours, 5), "plain_hf_s": round(t_plain, 5),
                      "ratio_ours_over_plain": round(t_ours / t_plain, 3)}))
    model.train()
    for branch in ("reconstruction", "contrastive"):
        def step(branch=branch):
            out = model(x, branch)
            (out["pred"].square().mean() if branch == "reconstruction" else out["z"].sum()).backward()
        t = _time(step, device, args.repeats)
        print(json.dumps({"bench": "train_forward_backward", "branch": branch, "preset": args.preset,
                          "batch": args.batch, "device": name, "images_per_s": round(args.batch / t, 1)}))


if __name__ == "__main__":
    main()
