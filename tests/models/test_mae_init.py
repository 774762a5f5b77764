"""From-scratch ViT-MAE models get MAE's initialization (He et al. 2022): transformers 5.x leaves the sin-cos
positions, the CLS token and the decoder mask token at zero when a model is built from a config."""

from __future__ import annotations

import torch

import tessera
from tessera.models.config import ModelConfig
from tessera.models.pretrain_model import _sincos, build_encoder


def _scratch(preset="vit_micro_patch8_32"):
    torch.manual_seed(0)
    return build_encoder(ModelConfig(preset=preset), with_decoder=True)


def test_scratch_encoder_and_decoder_have_the_fixed_sincos_positions():
    encoder, decoder = _scratch()
    emb = encoder.backbone.embeddings
    grid = 32 // 8
    assert torch.equal(emb.position_embeddings, _sincos(grid, emb.position_embeddings.shape[-1]))
    assert torch.equal(decoder.decoder_pos_embed, _sincos(grid, decoder.decoder_pos_embed.shape[-1]))
    # Every patch has its own position (no two rows equal), and positions stay fixed (seed 000 §5.1 / MAE).
    patches = emb.position_embeddings[0, 1:]
    assert torch.cdist(patches, patches).add(torch.eye(len(patches)) * 1e3).min() > 1e-3
    assert not emb.position_embeddings.requires_grad


def test_scratch_cls_and_mask_token_are_not_zero():
    encoder, decoder = _scratch()
    assert 0.005 < float(encoder.backbone.embeddings.cls_token.std()) < 0.05
    assert 0.005 < float(decoder.mask_token.std()) < 0.05


def test_random_init_encoder_sees_where_the_patches_are():
    """Without positions a ViT is permutation-equivariant over patches, so the mean-pooled feature of an image
    equals that of the image with its patches shuffled: a bag of patches, blind to morphology."""
    encoder = tessera.load("random:vit_micro_patch8_32")
    g = torch.Generator().manual_seed(0)
    image = torch.rand(1, 1, 32, 32, generator=g)
    blocks = image.unfold(2, 8, 8).unfold(3, 8, 8).reshape(1, 1, 16, 8, 8)
    shuffled = blocks[:, :, torch.randperm(16, generator=g)].reshape(1, 1, 4, 4, 8, 8)
    shuffled = shuffled.permute(0, 1, 2, 4, 3, 5).reshape(1, 1, 32, 32)
    a, b = encoder.embed(image), encoder.embed(shuffled)
    assert (a - b).abs().max() > 1e-3 * a.abs().max()
