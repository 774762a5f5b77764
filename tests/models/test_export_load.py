"""Export to HF directories and the Encoder interface of load(): random:, exported, run dirs, HF dirs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tessera.errors import TesseraError
from tessera.models import build_pretrain_model
from tessera.models.export import export_model
from tessera.models.load import load

from ._helpers import MICRO, micro_cfg, save_tiny_hf_checkpoint


def _model(registers=0, seed=0):
    torch.manual_seed(seed)
    return build_pretrain_model(micro_cfg(registers=registers)).eval()


def test_export_r0_loads_with_plain_automodel_and_same_features(tmp_path):
    from transformers import AutoModel, ViTMAEModel

    model = _model()
    out = export_model(model, tmp_path / "model")
    for name in ("config.json", "model.safetensors", "preprocessor_config.json", "tessera.json"):
        assert (out / name).exists(), name
    plain = AutoModel.from_pretrained(out).eval()
    assert isinstance(plain, ViTMAEModel)
    x = torch.rand(3, 1, 32, 32)
    with torch.no_grad():
        hidden = plain(pixel_values=x, noise=torch.arange(16.0).expand(3, 16)).last_hidden_state
    enc = load(out)
    torch.testing.assert_close(enc.embed(x), hidden[:, 1:].mean(1), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(enc.tokens(x)["patches"], hidden[:, 1:], rtol=1e-5, atol=1e-5)
    assert model.encoder.backbone.config.mask_ratio == 0.75  # export did not change the training model


def test_export_with_registers_round_trips(tmp_path):
    model = _model(registers=4)
    enc = load(export_model(model, tmp_path / "m"))
    assert enc.num_registers == 4
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        ref = model.encoder(x).patches.mean(1)
    torch.testing.assert_close(enc.embed(x), ref)
    assert enc.tokens(x)["registers"].shape == (2, 4, 32)


def test_run_dir_equals_exported_dir_and_init_from_export(tmp_path):
    model = _model(registers=2)
    export_model(model, tmp_path / "run" / "model")
    x = torch.rand(2, 1, 32, 32)
    torch.testing.assert_close(load(tmp_path / "run").embed(x), load(tmp_path / "run" / "model").embed(x))
    # Two-stage: stage 2 initializes from stage 1's export, registers and identity adapter included.
    stage2 = build_pretrain_model(micro_cfg(registers=2, init=str(tmp_path / "run")), branches=("contrastive",)).eval()
    assert stage2.encoder.adapter.norm == "identity"
    with torch.no_grad():
        torch.testing.assert_close(stage2(x, "contrastive")["features"], model(x, "contrastive")["features"])


def test_random_preset_is_deterministic_and_resizes(tmp_path):
    a, b = load(f"random:{MICRO}"), load(f"random:{MICRO}")
    assert a.fingerprint == b.fingerprint and a.image_size == 32 and a.hidden_size == 32 and a.num_layers == 2
    x = torch.rand(2, 1, 48, 40)  # any input size: bicubic resize to 32
    y = torch.nn.functional.interpolate(x, size=(32, 32), mode="bicubic", align_corners=False).clamp(0, 1)
    torch.testing.assert_close(a.embed(x), a.embed(y))
    assert a.embed(x).shape == (2, 32)
    with pytest.raises(TesseraError, match="unknown preset"):
        load("random:no_such_preset")


def test_random_pretraining_preset_uses_model_section():
    from tessera.config import available_presets, resolve_config
    from tessera.models.config import ModelConfig

    if "cpu" not in available_presets():
        pytest.skip("configs/cpu.yaml not written yet (TRAIN engineer)")
    cfg = resolve_config(ModelConfig, "cpu", section="model")
    enc = load("random:cpu")
    assert enc.image_size == cfg.resolved_image_size() and enc.num_registers == cfg.registers


def test_fingerprint_changes_with_weights():
    enc = load(f"random:{MICRO}")
    before = enc.fingerprint
    with torch.no_grad():
        enc.module.backbone.layernorm.weight[0] += 1e-3
    assert enc.fingerprint != before


def test_embed_no_grad_eval_features_differentiable_and_layers():
    enc = load(f"random:{MICRO}")
    enc.module.train()
    x = torch.rand(2, 1, 32, 32)
    e = enc.embed(x)
    assert not e.requires_grad and enc.module.training  # mode restored
    f = enc.features(x)
    assert f.requires_grad
    f.sum().backward()
    assert enc.module.backbone.embeddings.patch_embeddings.projection.weight.grad is not None
    assert not torch.allclose(enc.embed(x, layer=0), enc.embed(x, layer=-1))
    torch.testing.assert_close(enc.embed(x, layer=1), enc.embed(x, layer=-1))
    torch.testing.assert_close(enc.embed(x, readout="cls"), enc.tokens(x)["cls"])
    with pytest.raises(ValueError, match="layer"):
        enc.embed(x, layer=2)


def test_layer_id_of():
    enc = load(f"random:{MICRO}")
    ids = {n: enc.layer_id_of(n) for n, _ in enc.module.named_parameters()}
    assert ids["backbone.embeddings.cls_token"] == 0
    assert ids["backbone.embeddings.patch_embeddings.projection.weight"] == 0
    assert ids["backbone.layers.0.attention.q_proj.weight"] == 1
    assert ids["backbone.layers.1.layernorm_after.bias"] == 2
    assert ids["backbone.layernorm.weight"] == enc.num_layers  # final norm -> last block
    assert enc.layer_id_of("encoder.registers") == 0
    assert enc.layer_id_of("head.weight") == enc.num_layers + 1


def test_plain_hf_vitmae_dir_gets_imagenet_adapter_and_accepts_one_channel(tmp_path):
    ckpt = save_tiny_hf_checkpoint(tmp_path / "hf", num_channels=3)
    enc = load(ckpt)
    assert enc.readout == "mean_patch" and enc.module.adapter.norm == "imagenet"
    assert enc.embed(torch.rand(2, 1, 32, 32)).shape == (2, 32)


def test_dinov2_dir_uses_pooler_readout(tmp_path):
    from transformers import Dinov2Config, Dinov2Model

    torch.manual_seed(0)
    cfg = Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, mlp_ratio=2, patch_size=14,
                       image_size=28)
    Dinov2Model(cfg).save_pretrained(tmp_path / "dino")
    plain = Dinov2Model.from_pretrained(tmp_path / "dino").eval()
    enc = load(tmp_path / "dino")
    assert enc.readout == "cls" and enc.image_size == 28
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        pooled = plain(pixel_values=enc.module.adapter(x)).pooler_output
    torch.testing.assert_close(enc.embed(x), pooled, rtol=1e-5, atol=1e-5)


def test_missing_reference_is_a_readable_error(tmp_path):
    with pytest.raises(TesseraError, match="neither a model directory"):
        (tmp_path / "empty").mkdir()
        load(tmp_path / "empty")


def test_embed_real_first_images(shared_data):
    from PIL import Image

    paths = sorted((shared_data / "first_radio_galaxies").rglob("*.png"))[:6]
    x = np.stack([np.asarray(Image.open(p).convert("L"), dtype=np.float32)[None] / 255 for p in paths])
    enc = load(f"random:{MICRO}")
    feats = enc.embed(x)  # (6, 1, 300, 300) numpy -> resized to 32
    assert feats.shape == (6, 32) and torch.isfinite(feats).all()
    assert torch.cdist(feats, feats).triu(1).sum() > 0
