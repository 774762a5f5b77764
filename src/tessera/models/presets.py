"""Named ViT-MAE architectures (DESIGN §5.10: configs name a preset, never repeat dimensions).

Each preset gives the encoder and the MAE decoder dimensions. ``vit_base_patch16_224`` is the
ViT-MAE base configuration used by seed 000 §5.1 (facebook/vit-mae-base: 768-dim, 12 blocks,
12 heads, decoder 512-dim / 8 blocks / 16 heads). The tiny presets are the CPU-sized ViT of
seed 001 (patch 8, dim 192, 6 blocks, 3 heads) with a small 128-dim, 2-block decoder.
``vit_micro_patch8_32`` is a test-only size (32 px, dim 32, 2 blocks) for fast unit tests.
"""

from __future__ import annotations

MODEL_PRESETS: dict[str, dict] = {
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


def get_preset(name: str) -> dict:
    """A copy of preset ``name``; unknown names raise ConfigError naming ``model.preset``."""
    from tessera.errors import ConfigError

    if name not in MODEL_PRESETS:
        raise ConfigError(f"config key 'model.preset': unknown preset {name!r} (known: {', '.join(MODEL_PRESETS)})")
    return dict(MODEL_PRESETS[name])
