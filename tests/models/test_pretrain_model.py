"""PretrainModel: HF equivalence at R = 0, final norm for every R, registers, masking, heads, adapter."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tessera.errors import ConfigError
from tessera.models import MODEL_PRESETS, ModelConfig, build_pretrain_model
from tessera.models.adapter import IMAGENET_MEAN, IMAGENET_STD
from tessera.models.presets import VIT_PRESETS

from ._helpers import micro_cfg, save_tiny_hf_checkpoint


def _noise(n, length, seed=1):
    return torch.rand(n, length, generator=torch.Generator().manual_seed(seed))


def test_r0_encoder_equals_plain_transformers_vitmae():
    from transformers import ViTMAEModel

    torch.manual_seed(0)
    model = build_pretrain_model(micro_cfg(registers=0)).eval()
    plain = ViTMAEModel(model.encoder.backbone.config).eval()
    # Same parameter names as plain transformers: strict load must succeed.
    plain.load_state_dict(model.encoder.backbone.state_dict(), strict=True)
    x = torch.rand(2, 1, 32, 32)
    noise = _noise(2, 16)
    with torch.no_grad():
        ref = plain(pixel_values=x, noise=noise).last_hidden_state
        out = model.encoder(x, mask_ratio=model.mask_ratio, noise=noise)
    ours = torch.cat([out.cls[:, None], out.patches], dim=1)
    assert ours.shape == ref.shape == (2, 1 + 4, 32)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.mask, plain(pixel_values=x, noise=noise).mask)


@pytest.mark.parametrize("registers", [0, 4])
def test_final_layernorm_applied_for_every_r(registers):
    torch.manual_seed(0)
    model = build_pretrain_model(micro_cfg(registers=registers)).eval()
    norm = model.encoder.backbone.layernorm
    with torch.no_grad():  # a recognisable affine: tokens must be (unit-normal) * 2 + 0.5
        norm.weight.fill_(2.0)
        norm.bias.fill_(0.5)
    out = model.encoder(torch.rand(2, 1, 32, 32))
    tokens = torch.cat([out.cls[:, None], out.registers, out.patches], dim=1)
    assert tokens.shape == (2, 1 + registers + 16, 32)
    pre_affine = (tokens - 0.5) / 2.0
    torch.testing.assert_close(pre_affine.mean(-1), torch.zeros(tokens.shape[:2]), atol=1e-4, rtol=0)
    torch.testing.assert_close(pre_affine.var(-1, unbiased=False), torch.ones(tokens.shape[:2]), atol=1e-2, rtol=0)


def test_registers_are_used_but_excluded_from_readout():
    torch.manual_seed(0)
    model = build_pretrain_model(micro_cfg(registers=4)).eval()
    x = torch.rand(3, 1, 32, 32)
    with torch.no_grad():
        out = model.encoder(x)
        feats = model(x, "contrastive")["features"]
        torch.testing.assert_close(feats, out.patches.mean(1))
        with_regs = torch.cat([out.registers, out.patches], 1).mean(1)
        assert not torch.allclose(feats, with_regs, atol=1e-4)
        # registers take part in attention: patch outputs must move (a random, not constant, change: the
        # pre-norm of each block would cancel a constant shift)
        model.encoder.registers.add_(torch.randn_like(model.encoder.registers))
        moved = model(x, "contrastive")["features"]
    assert out.registers.shape == (3, 4, 32) and out.patches.shape == (3, 16, 32)
    assert not torch.allclose(feats, moved, atol=1e-5)


@pytest.mark.parametrize("ratio,visible", [(0.75, 4), (0.5, 8), (0.9, 1)])
def test_mask_ratio_gives_visible_tokens(ratio, visible):
    model = build_pretrain_model(micro_cfg(mask_ratio=ratio, registers=2))
    out = model.encoder(torch.rand(2, 1, 32, 32), mask_ratio=ratio)
    assert out.patches.shape[1] == visible
    assert out.registers.shape[1] == 2
    assert torch.equal(out.mask.sum(1), torch.full((2,), 16.0 - visible))
    rec = model(torch.rand(2, 1, 32, 32), "reconstruction")
    assert rec["pred"].shape == rec["target"].shape == rec["target01"].shape == (2, 16, 64)
    assert torch.equal(rec["mask"].sum(1), torch.full((2,), 16.0 - visible))


def test_noise_makes_reconstruction_deterministic_and_targets_are_patches():
    torch.manual_seed(0)
    model = build_pretrain_model(micro_cfg()).eval()
    x = torch.rand(2, 1, 32, 32)
    a = model(x, "reconstruction", noise=_noise(2, 16))
    b = model(x, "reconstruction", noise=_noise(2, 16))
    torch.testing.assert_close(a["pred"], b["pred"])
    # Patch 0 is the top-left 8x8 block (HF patchify order); identity adapter => target == target01.
    torch.testing.assert_close(a["target01"][:, 0], x[:, 0, :8, :8].reshape(2, 64))
    torch.testing.assert_close(a["target"], a["target01"])


def test_projection_output_is_unit_norm():
    model = build_pretrain_model(micro_cfg())
    out = model(torch.rand(4, 1, 32, 32), "contrastive")
    assert out["z"].shape == (4, 16) and out["features"].shape == (4, 32)
    torch.testing.assert_close(out["z"].norm(dim=-1), torch.ones(4))


def test_projection_batchnorm_is_the_default_and_can_be_ablated():
    assert isinstance(build_pretrain_model(micro_cfg()).projection.bn, torch.nn.BatchNorm1d)
    model = build_pretrain_model(micro_cfg(proj_batchnorm=False))
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in model.modules())
    z = model(torch.rand(4, 1, 32, 32), "contrastive")["z"]
    torch.testing.assert_close(z.norm(dim=-1), torch.ones(4))


def test_adapter_replicates_channels_and_uses_imagenet_stats_from_checkpoint(tmp_path):
    ckpt = save_tiny_hf_checkpoint(tmp_path / "ckpt", num_channels=3)
    model = build_pretrain_model(micro_cfg(init=str(ckpt)))
    adapter = model.encoder.adapter
    assert adapter.norm == "imagenet" and adapter.out_channels == 3
    x = torch.rand(2, 1, 32, 32)
    y = adapter(x)
    for c in range(3):
        torch.testing.assert_close(y[:, c], (x[:, 0] - IMAGENET_MEAN[c]) / IMAGENET_STD[c])
    rec = model(x, "reconstruction")
    assert rec["pred"].shape == (2, 16, 8 * 8 * 3)
    torch.testing.assert_close(rec["target01"][:, 0, :3], x[:, 0, 0, 0:1].expand(2, 3))  # replicated, not normalized
    scratch = build_pretrain_model(micro_cfg()).encoder.adapter
    assert scratch.norm == "identity" and scratch.out_channels == 1
    torch.testing.assert_close(scratch(x), x)


def test_local_checkpoint_init_loads_the_same_weights(tmp_path):
    from transformers import ViTMAEForPreTraining

    ckpt = save_tiny_hf_checkpoint(tmp_path / "ckpt", num_channels=1, seed=3)
    ref = ViTMAEForPreTraining.from_pretrained(ckpt)
    model = build_pretrain_model(micro_cfg(init=str(ckpt), mask_ratio=0.5))
    for name, tensor in ref.vit.state_dict().items():
        torch.testing.assert_close(model.encoder.backbone.state_dict()[name], tensor)
    for name, tensor in ref.decoder.state_dict().items():
        torch.testing.assert_close(model.decoder.state_dict()[name], tensor)
    assert model.mask_ratio == 0.5 and model.encoder.adapter.norm == "imagenet"


def test_init_with_other_image_size_regenerates_positions(tmp_path):
    ckpt = save_tiny_hf_checkpoint(tmp_path / "ckpt", num_channels=3)
    model = build_pretrain_model(micro_cfg(init=str(ckpt), image_size=48))
    assert model.image_size == 48
    out = model(torch.rand(1, 1, 48, 48), "reconstruction")
    assert out["pred"].shape == (1, 36, 192) and torch.isfinite(out["pred"]).all()


@pytest.mark.parametrize("preset", [p for p in VIT_PRESETS if p != "vit_base_patch16_224"])  # conv: test_conv.py
def test_no_nan_forward_every_preset(preset):
    torch.manual_seed(0)
    model = build_pretrain_model(ModelConfig(preset=preset, registers=4))
    s = model.image_size
    assert s == MODEL_PRESETS[preset]["image_size"]
    x = torch.rand(2, 1, s, s)
    rec = model(x, "reconstruction")
    con = model(x, "contrastive")
    for t in (*rec.values(), *con.values()):
        assert torch.isfinite(t).all()


@pytest.mark.slow
def test_no_nan_forward_vit_base():
    model = build_pretrain_model(ModelConfig(preset="vit_base_patch16_224", proj_hidden=64, proj_dim=16))
    assert sum(p.numel() for p in model.encoder.parameters()) > 85e6  # ViT-B/16 encoder (~86M)
    model.eval()
    with torch.no_grad():
        rec = model(torch.rand(1, 1, 224, 224), "reconstruction")
    assert rec["pred"].shape == (1, 196, 256) and torch.isfinite(rec["pred"]).all()


@pytest.mark.parametrize(
    "kw,key",
    [
        (dict(mask_ratio=1.0), "mask_ratio"),
        (dict(mask_ratio=0.0), "mask_ratio"),
        (dict(image_size=30), "image_size"),
        (dict(preset="vit_huge"), "preset"),
        (dict(registers=-1), "registers"),
        (dict(backbone="dinov2", registers=4), "registers"),
        (dict(in_channels=0), "in_channels"),
    ],
)
def test_invalid_configs_rejected_naming_key(kw, key):
    base = dict(preset="vit_micro_patch8_32")
    base.update(kw)
    with pytest.raises(ConfigError, match=key):
        ModelConfig(**base).validate()


def test_resolve_config_validates_model_section():
    from tessera.config import resolve_config

    cfg = resolve_config(ModelConfig, None, ["preset=vit_tiny_patch8_96", "registers=4"])
    assert cfg.registers == 4 and cfg.resolved_image_size() == 96
    with pytest.raises(ConfigError, match="mask_ratio"):
        resolve_config(ModelConfig, None, ["mask_ratio=1.5"])


def test_dinov2_scratch_contrastive_only():
    for backbone, regs in (("dinov2", 0), ("dinov2_registers", 4)):
        model = build_pretrain_model(micro_cfg(backbone=backbone))
        assert model.branches == ("contrastive",)
        assert model.encoder.num_registers == regs
        out = model(torch.rand(2, 1, 32, 32), "contrastive")
        assert out["features"].shape == (2, 32) and torch.isfinite(out["z"]).all()
    with pytest.raises(ConfigError, match="model.backbone"):
        build_pretrain_model(micro_cfg(backbone="dinov2"), branches=("reconstruction",))
    with pytest.raises(ConfigError, match="model.backbone"):
        model(torch.rand(2, 1, 32, 32), "reconstruction")


def test_branches_subset_and_shape_errors():
    model = build_pretrain_model(micro_cfg(), branches=("contrastive",))
    assert model.decoder is None and model.projection is not None
    with pytest.raises(ValueError, match=r"\(N, C, 32, 32\)"):
        model(torch.rand(2, 1, 16, 16), "contrastive")
    with pytest.raises(ValueError, match="branch"):
        model(torch.rand(2, 1, 32, 32), "jigsaw")


def test_real_first_galaxies_forward(shared_data):
    from PIL import Image

    paths = sorted((shared_data / "first_radio_galaxies").rglob("*.png"))[:4]
    arrays = [np.asarray(Image.open(p).convert("L"), dtype=np.float32) / 255.0 for p in paths]
    x = torch.from_numpy(np.stack(arrays))[:, None]
    x = torch.nn.functional.interpolate(x, size=(32, 32), mode="bicubic", align_corners=False).clamp(0, 1)
    torch.manual_seed(0)
    model = build_pretrain_model(micro_cfg(registers=4))
    rec = model(x, "reconstruction")
    con = model(x, "contrastive")
    assert rec["target01"].max() > 0.5  # real bright emission reaches the brightness target
    assert torch.isfinite(rec["pred"]).all() and torch.isfinite(con["z"]).all()
    assert con["features"].std(0).mean() > 0  # different galaxies -> different features


def test_dinov2_init_from_local_dir_every_trainable_param_gets_grad(tmp_path):
    from transformers import Dinov2WithRegistersConfig, Dinov2WithRegistersModel

    torch.manual_seed(0)
    cfg = Dinov2WithRegistersConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, mlp_ratio=2,
                                    patch_size=14, image_size=28, num_register_tokens=2)
    Dinov2WithRegistersModel(cfg).save_pretrained(tmp_path / "dino")
    model = build_pretrain_model(micro_cfg(backbone="dinov2_registers", init=str(tmp_path / "dino"), image_size=42))
    assert model.image_size == 42 and model.encoder.num_registers == 2
    assert model.encoder.adapter.norm == "imagenet" and model.encoder.adapter.out_channels == 3
    out = model(torch.rand(3, 1, 42, 42), "contrastive")
    out["z"].sum().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []  # DDP without find_unused_parameters needs every trainable parameter used
    with pytest.raises(ConfigError, match="model.init"):
        build_pretrain_model(micro_cfg(backbone="dinov2", init=str(tmp_path / "dino")))


@pytest.mark.parametrize("branch", ["reconstruction", "contrastive"])
def test_vit_mae_every_trainable_param_gets_grad(branch):
    model = build_pretrain_model(micro_cfg(registers=2), branches=(branch,))
    out = model(torch.rand(2, 1, 32, 32), branch)
    (out["pred"].sum() if branch == "reconstruction" else out["z"].sum()).backward()
    assert [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None] == []
