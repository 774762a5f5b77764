"""Real-encoder helper: a random-init tiny ViT through tessera.load, or the models package's Encoder directly
while ``tessera.models.load`` has not landed yet."""

from __future__ import annotations

import importlib.util


def tiny_random_encoder(in_channels: int = 1):
    import torch

    torch.manual_seed(0)
    if importlib.util.find_spec("tessera.models.load") is not None:
        import tessera

        return tessera.load("random:vit_tiny_patch8_64")
    from tessera.models import ModelConfig, build_pretrain_model
    from tessera.models.encoder import Encoder

    model = build_pretrain_model(ModelConfig(preset="vit_tiny_patch8_64", in_channels=in_channels))
    return Encoder(model.encoder, name="random:vit_tiny_patch8_64")
