"""Tiny configs and checkpoints shared by the model tests (image 32, patch 8, dim 32, 2 blocks)."""

from __future__ import annotations

from pathlib import Path

import torch

from tessera.models.config import ModelConfig

MICRO = "vit_micro_patch8_32"


def micro_cfg(**kw) -> ModelConfig:
    return ModelConfig(preset=MICRO, proj_hidden=64, proj_dim=16, **kw)


def save_tiny_hf_checkpoint(path: Path, num_channels: int = 3, seed: int = 0) -> Path:
    """A local ViTMAEForPreTraining checkpoint, as `from_pretrained` expects (no hub access in tests)."""
    from transformers import ViTMAEConfig, ViTMAEForPreTraining

    torch.manual_seed(seed)
    config = ViTMAEConfig(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, decoder_hidden_size=32, decoder_num_hidden_layers=1,
        decoder_num_attention_heads=2, decoder_intermediate_size=64, num_channels=num_channels,
    )
    model = ViTMAEForPreTraining(config)
    model.save_pretrained(path)
    return path
