"""The conv encoder: HF ResNet equivalence, stems, the encoder contract, config checks, contrastive training,
export/load round trips, random: baselines, and `tessera pretrain` with model.backbone=resnet."""

from __future__ import annotations

import dataclasses
import json

import numpy as np

import pytest
import torch

from tessera.errors import ConfigError, TesseraError
from tessera.models import ModelConfig, build_pretrain_model
from tessera.models.adapter import InputAdapter
from tessera.models.conv import ConvEncoder, apply_stem, resnet_config
from tessera.models.encoder import Encoder
from tessera.models.export import export_model
from tessera.models.load import load, looks_like_path
from tessera.models.presets import CONV_PRESETS

CONV_MICRO = "resnet_micro_32"

# Four stages of width 4-8 at 64 px: cheap, and deep enough to see what each stem does to the last map.
FOUR_STAGES = dict(embedding_size=4, hidden_sizes=[4, 8, 8, 8], depths=[1, 1, 1, 1], layer_type="basic")


def conv_cfg(**kw) -> ModelConfig:
    return ModelConfig(preset=CONV_MICRO, backbone="resnet", proj_hidden=32, proj_dim=8, **kw)


def _encoder(stem: str, size: int = 64, seed: int = 0) -> ConvEncoder:
    from transformers import ResNetModel

    torch.manual_seed(seed)
    backbone = ResNetModel(resnet_config({**FOUR_STAGES, "stem": stem}, 1, size))
    apply_stem(backbone, stem)
    return ConvEncoder(backbone, InputAdapter.build("identity", 1), size).eval()


@pytest.mark.parametrize("stem,side", [("standard", 2), ("small_pool", 4), ("small", 8)])
def test_stems_set_the_last_feature_map_and_total_stride(stem, side):
    enc = _encoder(stem)
    out = enc(torch.rand(2, 1, 64, 64))
    assert out.patches.shape == (2, side * side, 8)
    assert enc.patch_size == 64 // side
    assert out.registers.shape == (2, 0, 8)
    torch.testing.assert_close(out.cls, out.patches.mean(1))  # global average pool
    conv = enc.backbone.embedder.embedder.convolution
    assert conv.kernel_size == ((7, 7) if stem == "standard" else (3, 3))
    assert conv.stride == ((2, 2) if stem == "standard" else (1, 1))
    assert isinstance(enc.backbone.embedder.pooler, torch.nn.MaxPool2d) == (stem != "small")


def test_standard_stem_equals_plain_transformers_resnet_at_every_stage():
    from transformers import ResNetModel

    enc = _encoder("standard")
    plain = ResNetModel(enc.config).eval()
    plain.load_state_dict(enc.backbone.state_dict(), strict=True)  # same parameter names as plain HF
    x = torch.rand(3, 1, 64, 64)
    with torch.no_grad():
        ref = plain(pixel_values=x, output_hidden_states=True)
        out = enc(x)
        torch.testing.assert_close(out.cls, ref.pooler_output.flatten(1))
        torch.testing.assert_close(out.patches, ref.last_hidden_state.flatten(2).transpose(1, 2))
        for stage in range(enc.num_layers):  # hidden_states[0] is the stem output
            expected = ref.hidden_states[stage + 1].flatten(2).transpose(1, 2)
            torch.testing.assert_close(enc(x, layer=stage).patches, expected)


@pytest.mark.parametrize("preset", list(CONV_PRESETS))
def test_no_nan_contrastive_forward_every_conv_preset(preset):
    torch.manual_seed(0)
    model = build_pretrain_model(ModelConfig(preset=preset, backbone="resnet", proj_hidden=64, proj_dim=16))
    s = model.image_size
    assert s == CONV_PRESETS[preset]["image_size"] and model.encoder.stem == CONV_PRESETS[preset]["stem"]
    out = model(torch.rand(2, 1, s, s), "contrastive")
    assert out["features"].shape == (2, CONV_PRESETS[preset]["hidden_sizes"][-1])
    assert all(torch.isfinite(t).all() for t in out.values())


def test_encoder_interface_stages_widths_and_errors():
    enc = load(f"random:{CONV_MICRO}")
    assert isinstance(enc.module, ConvEncoder) and enc.readout == "mean_patch"
    assert (enc.image_size, enc.num_layers, enc.hidden_size, enc.num_registers) == (32, 2, 16, 0)
    x = torch.rand(2, 1, 40, 36)  # any size: bicubic resize to 32
    assert enc.embed(x).shape == (2, 16)
    assert enc.embed(x, layer=0).shape == (2, enc.module.feature_dim(0)) == (2, 8)
    torch.testing.assert_close(enc.embed(x, layer=1), enc.embed(x))
    tokens = enc.tokens(x)
    assert tokens["patches"].shape == (2, (32 // enc.module.patch_size) ** 2, 16)
    torch.testing.assert_close(enc.embed(x, readout="cls"), tokens["patches"].mean(1))
    with pytest.raises(ValueError, match="layer"):
        enc.embed(x, layer=2)
    with pytest.raises(ValueError, match="masking"):
        enc.module(torch.rand(2, 1, 32, 32), mask_ratio=0.75)
    with pytest.raises(ValueError, match="shape"):
        enc.module(torch.rand(2, 1, 30, 30))


def test_layer_ids_stem_stages_and_heads():
    enc = load(f"random:{CONV_MICRO}")
    ids = {n: enc.layer_id_of(n) for n, _ in enc.module.named_parameters()}
    assert ids["backbone.embedder.embedder.convolution.weight"] == 0
    assert ids["backbone.encoder.stages.0.layers.0.layer.1.normalization.bias"] == 1
    assert ids["backbone.encoder.stages.1.layers.0.shortcut.convolution.weight"] == 2
    assert set(ids.values()) == {0, 1, 2}
    assert enc.layer_id_of("head.weight") == enc.num_layers + 1


@pytest.mark.parametrize(
    "kw,key",
    [
        (dict(backbone="resnet", preset="vit_micro_patch8_32"), "model.preset"),
        (dict(backbone="vit_mae", preset=CONV_MICRO), "model.backbone"),
        (dict(backbone="resnet", preset=CONV_MICRO, registers=2), "model.registers"),
        (dict(backbone="resnet", preset="resnet18_64", image_size=60), "model.image_size"),
    ],
)
def test_invalid_conv_configs_rejected_naming_key(kw, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        ModelConfig(**kw).validate()


def test_resolve_config_accepts_resnet_overrides():
    from tessera.config import resolve_config

    cfg = resolve_config(ModelConfig, None, ["backbone=resnet", "preset=resnet18_64", "image_size=96"])
    cfg.validate()
    assert cfg.backbone == "resnet" and cfg.resolved_image_size() == 96


def test_reconstruction_branch_refused_and_contrastive_is_the_default():
    with pytest.raises(ConfigError, match="model.backbone"):
        build_pretrain_model(conv_cfg(), branches=("reconstruction",))
    assert build_pretrain_model(conv_cfg()).branches == ("contrastive",)


def test_one_contrastive_step_trains_every_parameter():
    from tessera.objectives.contrastive import ContrastiveLoss

    torch.manual_seed(0)
    model = build_pretrain_model(conv_cfg(), branches=("contrastive",)).train()
    assert model.projection.fc1.in_features == model.encoder.hidden_size == 16
    views = torch.rand(4, 2, 1, 32, 32)  # (B, V, C, S, S)
    out = model(views.flatten(0, 1), "contrastive")
    assert out["features"].shape == (8, 16) and out["z"].shape == (8, 8)
    z = out["z"].view(4, 2, -1)
    loss = ContrastiveLoss("infonce")(z, z)
    assert torch.isfinite(loss)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []
    before = model.encoder.backbone.embedder.embedder.convolution.weight.detach().clone()
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    assert not torch.equal(before, model.encoder.backbone.embedder.embedder.convolution.weight)


def _trained_encoder(stem: str = "small") -> ConvEncoder:
    """A conv encoder whose BN running statistics moved away from their init (so buffers matter)."""
    enc = _encoder(stem, size=32, seed=3).train()
    with torch.no_grad():
        for _ in range(3):
            enc(torch.rand(8, 1, 32, 32) ** 2)
    return enc.eval()


def test_export_load_round_trip_is_exact(tmp_path):
    enc = _trained_encoder("small")
    out = export_model(enc, tmp_path / "model")
    for name in ("config.json", "model.safetensors", "preprocessor_config.json", "tessera.json"):
        assert (out / name).exists(), name
    info = json.loads((out / "tessera.json").read_text())
    assert (info["backbone"], info["stem"], info["image_size"], info["registers"]) == ("resnet", "small", 32, 0)
    assert json.loads((out / "config.json").read_text())["model_type"] == "resnet"
    loaded = load(out)
    assert isinstance(loaded.module, ConvEncoder) and loaded.module.stem == "small"
    x = torch.rand(3, 1, 32, 32)
    original = Encoder(enc)
    assert torch.equal(loaded.embed(x), original.embed(x))
    assert torch.equal(loaded.embed(x, layer=1), original.embed(x, layer=1))
    assert loaded.fingerprint == original.fingerprint


def test_standard_stem_export_is_a_plain_resnet_checkpoint_small_stem_is_not(tmp_path):
    from transformers import AutoModel, ResNetModel

    enc = _trained_encoder("standard")
    plain = AutoModel.from_pretrained(export_model(enc, tmp_path / "std")).eval()
    assert isinstance(plain, ResNetModel)
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(plain(pixel_values=x).pooler_output.flatten(1), enc(x).cls)
    # A small stem must not load silently as HF's 7x7 stem: plain transformers refuses the shape mismatch.
    with pytest.raises(Exception, match="mismatch"):
        AutoModel.from_pretrained(export_model(_trained_encoder("small"), tmp_path / "small"))


def test_run_dir_and_init_from_conv_export(tmp_path):
    torch.manual_seed(0)
    model = build_pretrain_model(conv_cfg()).eval()
    export_model(model, tmp_path / "run" / "model")
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        ref = model(x, "contrastive")["features"]
    torch.testing.assert_close(load(tmp_path / "run").embed(x), ref)
    # A later stage continues from the export: same weights, the export's identity adapter kept.
    stage2 = build_pretrain_model(conv_cfg(init=str(tmp_path / "run")), branches=("contrastive",)).eval()
    assert stage2.encoder.adapter.norm == "identity" and stage2.image_size == 32
    with torch.no_grad():
        torch.testing.assert_close(stage2(x, "contrastive")["features"], ref)
    with pytest.raises(ConfigError, match="model.backbone"):
        build_pretrain_model(ModelConfig(preset="vit_micro_patch8_32", init=str(tmp_path / "run")))


def test_random_conv_presets_and_config_files(tmp_path):
    a, b = load(f"random:{CONV_MICRO}"), load(f"random:{CONV_MICRO}")
    assert a.fingerprint == b.fingerprint
    r18 = load("random:resnet18_64")
    assert r18.hidden_size == 512 and r18.num_layers == 4 and r18.module.patch_size == 8
    assert sum(p.numel() for p in r18.module.parameters()) == pytest.approx(11.17e6, rel=0.01)  # ResNet-18 trunk
    recipe = tmp_path / "conv_recipe.yaml"
    recipe.write_text(f"model:\n  backbone: resnet\n  preset: {CONV_MICRO}\n  init: some/checkpoint\n")
    from_file = load(f"random:{recipe}")
    assert isinstance(from_file.module, ConvEncoder) and from_file.hidden_size == 16


def test_plain_hf_resnet_dir_loads_with_imagenet_adapter(tmp_path):
    from transformers import ResNetConfig, ResNetModel

    torch.manual_seed(0)
    config = ResNetConfig(num_channels=3, embedding_size=4, hidden_sizes=[4, 8], depths=[1, 1], layer_type="basic")
    ResNetModel(config).save_pretrained(tmp_path / "hf")
    (tmp_path / "hf" / "preprocessor_config.json").write_text(json.dumps({"crop_size": {"height": 32, "width": 32}}))
    plain = ResNetModel.from_pretrained(tmp_path / "hf").eval()
    enc = load(tmp_path / "hf")
    assert enc.image_size == 32 and enc.module.adapter.norm == "imagenet" and enc.module.stem == "standard"
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        pooled = plain(pixel_values=enc.module.adapter(x)).pooler_output.flatten(1)
    torch.testing.assert_close(enc.embed(x), pooled)


def test_mistyped_run_path_fails_at_once_without_the_hub(tmp_path, monkeypatch):
    import transformers

    def no_hub(*args, **kwargs):
        raise AssertionError("the Hub was asked about a local path")

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", no_hub)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    for ref in ("runs/cpu_ful", "./cpu_full", "~/no_such_tessera_run_dir", str(tmp_path / "nope"), "a/b/c"):
        with pytest.raises(TesseraError, match="no such run directory"):
            load(ref)
    assert looks_like_path("runs/cpu_ful") and not looks_like_path("facebook/vit-mae-base")
    assert not looks_like_path("cpu_full")  # a bare name may be a Hub id


@pytest.fixture(scope="module")
def blob_store(tmp_path_factory):
    from tests.train.conftest import build_store, make_blob_arrays

    root = tmp_path_factory.mktemp("conv_blob_store")
    return build_store(make_blob_arrays(root, 4), root / "store", tile=64)


def test_pretrain_command_with_a_conv_backbone(blob_store, tmp_path):
    from tessera.cli import main
    from tessera.train.logging import read_metrics

    run = tmp_path / "run"
    overrides = [
        "model.backbone=resnet", f"model.preset={CONV_MICRO}", "model.proj_hidden=32", "model.proj_dim=16",
        "train.branch=contrastive", "train.max_steps=3", "train.batch_size_contrastive=4", "train.log_every=1",
        "train.progress=false",
    ]
    assert main(["pretrain", "--config", "cpu", "--corpus", str(blob_store), "--out", str(run), *overrides]) == 0
    records = read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2, 3] and all(torch.isfinite(torch.tensor(r["loss"])) for r in records)
    encoder = load(str(run))
    assert isinstance(encoder.module, ConvEncoder) and encoder.image_size == 32
    feats = encoder.embed(torch.rand(3, 1, 48, 48))
    assert feats.shape == (3, 16) and torch.isfinite(feats).all()
    # The export is the trained encoder: its BatchNorm statistics saw exactly the 3 training forwards.
    assert int(encoder.module.backbone.embedder.embedder.normalization.num_batches_tracked) == 3


def test_evaluation_runs_unchanged_on_a_conv_encoder(tmp_path):
    """k-NN, the linear probe, fine-tuning and the stage sweep see a conv encoder only through the interface."""
    from tessera.evaluate.config import EvalConfig, FinetuneConfig, LinearConfig
    from tessera.evaluate.protocol import run_evaluation
    from tests.evaluate.doubles import write_synthetic_csv

    csv = write_synthetic_csv(tmp_path / "data", n_per_class=6)
    cfg = EvalConfig(progress=False, sweep_layers=True, linear=LinearConfig(epochs=3, batch_size=8),
                     finetune=FinetuneConfig(epochs=1, batch_size=8))
    enc = load(f"random:{CONV_MICRO}")
    results = run_evaluation([enc], str(csv), ["knn", "linear"], tmp_path / "out", cfg)
    results += run_evaluation([enc], str(csv), ["finetune"], tmp_path / "ft", dataclasses.replace(cfg,
        sweep_layers=False))
    assert [r["protocol"] for r in results] == ["knn", "linear", "finetune"]
    for r in results:
        assert r["n_samples"] == 18 and np.sum(r["confusion"]) == 18 and 0.0 <= r["macro_f1"]["mean"] <= 1.0
    linear = next(r for r in results if r["protocol"] == "linear")
    assert [row["layer"] for row in linear["layer_sweep"]] == [0, 1]  # one row per stage


def _conv_pretrain_worker(rank: int, world: int, port: int, store: str, out: str) -> None:
    """The real engine under 2 gloo processes with a conv encoder (BatchNorm2d in the trunk, DDP)."""
    import os

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from tessera.train.config import resolve_pretrain_config
    from tessera.train.engine import pretrain

    cfg = resolve_pretrain_config("cpu", [
        "model.backbone=resnet", f"model.preset={CONV_MICRO}", "model.proj_hidden=32", "model.proj_dim=16",
        "train.branch=contrastive", "train.max_steps=2", "train.batch_size_contrastive=4", "train.log_every=1",
        "train.progress=false",
    ])
    pretrain(cfg, store, out)


@pytest.mark.slow
def test_conv_pretraining_under_ddp(blob_store, tmp_path):
    import socket

    import torch.multiprocessing as mp

    from tessera.train.logging import read_metrics

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = tmp_path / "run"
    mp.spawn(_conv_pretrain_worker, args=(2, port, str(blob_store), str(run)), nprocs=2, join=True)
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl")] == [1, 2]
    encoder = load(str(run))
    assert isinstance(encoder.module, ConvEncoder) and torch.isfinite(encoder.embed(torch.rand(2, 1, 32, 32))).all()


def test_init_from_a_plain_hf_resnet_classifier_checkpoint(tmp_path):
    from transformers import ResNetConfig, ResNetForImageClassification

    torch.manual_seed(0)
    config = ResNetConfig(num_channels=3, embedding_size=4, hidden_sizes=[4, 8], depths=[1, 1], layer_type="basic",
                          num_labels=3)
    classifier = ResNetForImageClassification(config).eval()
    classifier.save_pretrained(tmp_path / "clf")
    model = build_pretrain_model(conv_cfg(init=str(tmp_path / "clf"), image_size=32)).eval()
    assert model.encoder.adapter.norm == "imagenet" and model.encoder.stem == "standard"  # seed 000 §8.1
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        trunk = classifier.resnet(pixel_values=model.encoder.adapter(x)).pooler_output.flatten(1)
        torch.testing.assert_close(model(x, "contrastive")["features"], trunk)
