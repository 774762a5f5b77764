"""benchmarks/gpu_suite.py on its CPU path (``--smoke``; no GPU is needed to check it): the FLOPs formula behind
the MFU figure equals PyTorch's own FLOP count, and the sections write their JSON one by one."""

from __future__ import annotations

import json

import pytest
import torch

from tests._benchmarks import benchmark_module


@pytest.fixture(scope="module")
def suite():
    with benchmark_module("gpu_suite") as module:
        yield module


@pytest.mark.parametrize("preset", ["vit_micro_patch8_32", "vit_tiny_patch8_64"])
def test_flops_formula_equals_torch_flop_counter(suite, preset):
    from torch.utils.flop_counter import FlopCounterMode

    from tessera.models.config import ModelConfig
    from tessera.models.presets import get_preset
    from tessera.models.pretrain_model import build_pretrain_model

    # eager attention: its matmuls are visible to the counter (the fused SDPA CPU kernel is not counted)
    model = build_pretrain_model(ModelConfig(preset=preset, proj_hidden=32, proj_dim=16, attn_implementation="eager"))
    p = get_preset(preset)
    x = torch.rand(2, 1, p["image_size"], p["image_size"])
    with torch.no_grad():
        with FlopCounterMode(display=False) as unmasked:
            model.encoder(x)
        with FlopCounterMode(display=False) as masked:
            model.reconstruct(x)
    # the formula counts training (3 x forward) per image; the counter one forward of 2 images
    assert suite.train_flops_per_image(p, 1, "contrastive", 0.75, views=1) == 3 * unmasked.get_total_flops() / 2
    assert suite.train_flops_per_image(p, 1, "reconstruction", 0.75) == 3 * masked.get_total_flops() / 2


@pytest.mark.slow
def test_smoke_sections_write_their_json_one_by_one(suite, tmp_path):
    out, store = tmp_path / "results_gpu.json", tmp_path / "store"
    for section in ("env", "views", "loader", "pretrain", "compile"):
        assert suite.main(["--section", section, "--out", str(out), "--store", str(store), "--smoke",
                           "--seconds", "3"]) == 0
        assert section in json.loads(out.read_text())  # merged as soon as it is measured
    data = json.loads(out.read_text())
    assert data["env"]["device"] == "cpu" and data["env"]["smoke"] is True
    assert data["views"]["reconstruction"]["images_per_s"] > 0 and data["views"]["contrastive"]["batch"] == 4
    assert data["loader"]["workers_1"]["images_per_s"] > 0
    assert data["pretrain"]["steps"] >= 1 and len(data["pretrain"]["curve"]) >= 1
    assert "skipped" in data["compile"]
    assert (store / "cutouts_f16.npy").exists()  # the store made with NumPy only
