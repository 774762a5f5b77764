"""Named architectures (DESIGN §5.10: configs name a preset, never repeat dimensions).

``VIT_PRESETS`` are ViT-MAE architectures (also used for DINOv2 backbones); ``CONV_PRESETS`` are ResNets for
``model.backbone=resnet`` (see :mod:`tessera.models.conv`). ``MODEL_PRESETS`` is the one registry of both.

Each preset gives the encoder and the MAE decoder dimensions. ``vit_base_patch16_224`` is the
ViT-MAE base configuration used by seed 000 §5.1 (facebook/vit-mae-base: 768-dim, 12 blocks,
12 heads, decoder 512-dim / 8 blocks / 16 heads). The tiny presets are the CPU-sized ViT of
seed 001 (dim 192, 6 blocks, 3 heads; patch 4 as in seed 001, or 8) with a small 128-dim, 2-block decoder.
``vit_micro_patch8_32`` is a test-only size (32 px, dim 32, 2 blocks) for fast unit tests.
"""

from __future__ import annotations

VIT_PRESETS: dict[str, dict] = {
    "vit_micro_patch8_32": dict(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, decoder_hidden_size=32, decoder_num_hidden_layers=1,
        decoder_num_attention_heads=2, decoder_intermediate_size=64,
    ),
    "vit_tiny_patch8_64": dict(
        image_size=64, patch_size=8, hidden_size=192, num_hidden_layers=6, num_attention_heads=3,
        intermediate_size=768, decoder_hidden_size=128, decoder_num_hidden_layers=2,
        decoder_num_attention_heads=4, decoder_intermediate_size=512,
    ),
    # seed 001's small ViT exactly (patch 4 at 64 px: 256 tokens, notes/small-scale-ssl.md lesson 3: small ViTs
    # need many tokens per source).
    "vit_tiny_patch4_64": dict(
        image_size=64, patch_size=4, hidden_size=192, num_hidden_layers=6, num_attention_heads=3,
        intermediate_size=768, decoder_hidden_size=128, decoder_num_hidden_layers=2,
        decoder_num_attention_heads=4, decoder_intermediate_size=512,
    ),
    "vit_tiny_patch8_96": dict(
        image_size=96, patch_size=8, hidden_size=192, num_hidden_layers=6, num_attention_heads=3,
        intermediate_size=768, decoder_hidden_size=128, decoder_num_hidden_layers=2,
        decoder_num_attention_heads=4, decoder_intermediate_size=512,
    ),
    "vit_small_patch16_224": dict(
        image_size=224, patch_size=16, hidden_size=384, num_hidden_layers=12, num_attention_heads=6,
        intermediate_size=1536, decoder_hidden_size=256, decoder_num_hidden_layers=4,
        decoder_num_attention_heads=8, decoder_intermediate_size=1024,
    ),
    "vit_base_patch16_224": dict(
        image_size=224, patch_size=16, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
        intermediate_size=3072, decoder_hidden_size=512, decoder_num_hidden_layers=8,
        decoder_num_attention_heads=16, decoder_intermediate_size=2048,
    ),
}

# ResNets (He et al. 2016) behind the same encoder interface (issue 12's convolutional arm). Stages play the role of
# blocks. ``stem``: "small" = 3x3 stride-1 conv without max-pool (the CIFAR ResNet stem of He et al. 2016 §4.2),
# so 64 px inputs keep an 8x8 map after four stages; "standard" = HF/torchvision's 7x7 stride-2 conv + max-pool
# (a 2x2 map at 64 px); "small_pool" = 3x3 stride-1 conv + max-pool, as ``inigoval/byol``'s ``downscale: True``
# (Slijepcevic et al. 2024's radio BYOL, a 4x4 map at 64 px). ``resnet18_64`` is ResNet-18 (basic blocks
# 2-2-2-2, widths 64-512); ``resnet18_pool_64`` is the same net with the radio BYOL stem (a 4x4 last map, about
# 2.5x the CPU throughput of ``resnet18_64``: benchmarks/conv_forward.py); ``resnet_small_64`` is the "4 stages,
# 32-256 channels" net measured in issue 12 (ResNet-18's layout at half width); ``resnet_tiny_64`` (one basic
# block per stage, 16-128 channels, the radio BYOL stem: ~10x the CPU throughput of ``resnet_small_64``) is the
# from-scratch classifier that calibrates the lensing population on a CPU (issue 16, benchmarks/lensing_calibration.py);
# ``resnet_micro_32`` is test-only.
CONV_PRESETS: dict[str, dict] = {
    "resnet_micro_32": dict(
        backbone="resnet", image_size=32, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1],
        layer_type="basic", stem="small",
    ),
    "resnet_small_64": dict(
        backbone="resnet", image_size=64, embedding_size=32, hidden_sizes=[32, 64, 128, 256], depths=[2, 2, 2, 2],
        layer_type="basic", stem="small",
    ),
    "resnet_tiny_64": dict(
        backbone="resnet", image_size=64, embedding_size=16, hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1],
        layer_type="basic", stem="small_pool",
    ),
    "resnet18_64": dict(
        backbone="resnet", image_size=64, embedding_size=64, hidden_sizes=[64, 128, 256, 512], depths=[2, 2, 2, 2],
        layer_type="basic", stem="small",
    ),
    "resnet18_pool_64": dict(
        backbone="resnet", image_size=64, embedding_size=64, hidden_sizes=[64, 128, 256, 512], depths=[2, 2, 2, 2],
        layer_type="basic", stem="small_pool",
    ),
}

# Stride of each stem (conv stride x max-pool stride).
STEM_STRIDES = {"standard": 4, "small": 1, "small_pool": 2}

MODEL_PRESETS: dict[str, dict] = {**VIT_PRESETS, **CONV_PRESETS}


def preset_backbone(name: str) -> str | None:
    """"resnet" for a convolutional preset, None for a ViT preset (vit_mae, dinov2 and dinov2_registers all fit)."""
    return MODEL_PRESETS[name].get("backbone")


def conv_total_stride(preset: dict) -> int:
    """Input pixels per feature-map position of the last stage: the stem's stride x 2 per later stage
    (stage 1 keeps the resolution, as HF's ``downsample_in_first_stage=False`` and torchvision)."""
    stride = STEM_STRIDES[preset["stem"]] * 2 ** (len(preset["depths"]) - 1)
    return stride * (2 if preset.get("downsample_in_first_stage", False) else 1)


def preset_patch_size(name: str) -> int:
    """The patch size of a ViT preset, the total stride of a conv preset (what a token grid is made of)."""
    preset = MODEL_PRESETS[name]
    return conv_total_stride(preset) if preset.get("backbone") == "resnet" else int(preset["patch_size"])


def get_preset(name: str) -> dict:
    """A copy of preset ``name``; unknown names raise ConfigError naming ``model.preset``."""
    from tessera.errors import ConfigError

    if name not in MODEL_PRESETS:
        raise ConfigError(f"config key 'model.preset': unknown preset {name!r} (known: {', '.join(MODEL_PRESETS)})")
    return {k: (list(v) if isinstance(v, list) else v) for k, v in MODEL_PRESETS[name].items()}
