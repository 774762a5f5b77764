"""Embedding throughput of ``tessera embed`` (images/s), against the bare encoder in the same run. JSON lines.

    python benchmarks/search_embed.py --model random:cpu --n 512 --batch 64            # CPU, the cpu preset
    python benchmarks/search_embed.py --model random:vit_base_patch16_224 --device cuda --bf16 --n 8192 --batch 256

``embed_source`` (shards written atomically, provenance table, resumability bookkeeping) is timed against a
plain loop of ``encoder.embed`` over the same images and batches: the ratio is the pipeline's overhead. On a
machine without CUDA a ``--device cuda`` run prints that the GPU is missing instead of a number.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import time

import numpy as np
import pandas as pd
import torch


def main() -> None:
    from tessera.models.load import load
    from tessera.search.embed import embed_source
    from tessera.search.source import EmbedSource

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="random:cpu")
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", type=int, default=None, help="cutout side (default: the model's input size)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--bf16", action="store_true", help="autocast to bfloat16 (GPU)")
    args = ap.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(json.dumps({"bench": "search_embed", "model": args.model, "device": args.device,
                          "missing": "no CUDA device on this machine"}))
        return
    encoder = load(args.model, device=args.device)
    size = args.size or encoder.image_size
    rng = np.random.default_rng(0)
    images = [rng.uniform(size=(1, size, size)).astype(np.float16) for _ in range(args.n)]
    table = pd.DataFrame({"cutout_id": [f"img{i}" for i in range(args.n)]})
    source = EmbedSource("data", "synthetic", table, _images=images)
    autocast = (torch.autocast(device_type="cuda", dtype=torch.bfloat16) if args.bf16
                else contextlib.nullcontext())
    device_name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu"
    with autocast, tempfile.TemporaryDirectory() as tmp:
        x = torch.from_numpy(np.stack(images[: args.batch]).astype(np.float32)).to(args.device)
        encoder.embed(x)  # warm-up
        start = time.perf_counter()
        for s in range(0, args.n, args.batch):
            batch = torch.from_numpy(np.stack(images[s : s + args.batch]).astype(np.float32)).to(args.device)
            encoder.embed(batch).float().cpu()
        bare_s = time.perf_counter() - start
        report = embed_source(encoder, source, tmp, model_ref=args.model, batch=args.batch, progress=False)
    print(json.dumps({"bench": "search_embed", "model": args.model, "device": device_name, "bf16": args.bf16,
                      "n": args.n, "batch": args.batch, "size": size, "threads": torch.get_num_threads(),
                      "images_per_s": report["images_per_s"], "bare_encoder_images_per_s": round(args.n / bare_s, 1),
                      "ratio_pipeline_over_bare": round(report["seconds"] / bare_s, 3)}))


if __name__ == "__main__":
    main()
