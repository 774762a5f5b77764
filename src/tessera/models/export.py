"""Export the encoder as a Hugging Face directory (DESIGN §3.3).

Layout: ``config.json`` + ``model.safetensors`` (the HF backbone, saved by ``save_pretrained``),
``preprocessor_config.json``
(the input adapter's size/mean/std as an HF image processor), ``tessera.json`` (backbone kind, registers,
adapter, readout, model config), ``README.md`` (the Hugging Face model card, :mod:`tessera.models.card`) and,
with registers, ``tessera_registers.safetensors``. Registers live in
their own file so a plain ``AutoModel.from_pretrained`` never silently runs a register model without them;
with R = 0 the directory is a plain ViTMAEModel / Dinov2Model checkpoint. A conv encoder writes a ``ResNetModel``
directory (its stem recorded as ``tessera_stem`` in config.json; a small stem needs ``tessera.load``, see
:mod:`tessera.models.conv`). The decoder and projection head are
not exported (they belong to pretraining; the trainer's checkpoints keep them for resume).
"""

from __future__ import annotations

import json
from pathlib import Path

from torch import nn

from tessera.config import to_dict
from tessera.dist import unwrap
from tessera.models.conv import ConvEncoder
from tessera.models.encoder import ViTEncoder

TESSERA_JSON = "tessera.json"
REGISTERS_FILE = "tessera_registers.safetensors"
FORMAT_VERSION = 1


ENCODER_TYPES = (ViTEncoder, ConvEncoder)


def _encoder_of(model: nn.Module) -> tuple[ViTEncoder | ConvEncoder, object]:
    """The encoder (and ModelConfig if any) of a PretrainModel, a DDP-wrapped one, or a ViT/conv encoder."""
    inner = unwrap(model)  # DistributedDataParallel / torch.compile
    if isinstance(inner, ENCODER_TYPES):
        return inner, None
    encoder = getattr(inner, "encoder", None)
    if not isinstance(encoder, ENCODER_TYPES):
        raise TypeError(f"cannot export {type(model).__name__}: expected a PretrainModel, ViTEncoder or ConvEncoder")
    return encoder, getattr(inner, "cfg", None)


def _save_preprocessor(encoder: ViTEncoder | ConvEncoder, out: Path) -> None:
    """HF image-processor JSON matching the adapter: bicubic resize, uint8 rescale, adapter mean/std."""
    from transformers import ViTImageProcessor

    adapter = encoder.adapter.to_dict()
    ViTImageProcessor(
        do_resize=True,
        size={"height": encoder.image_size, "width": encoder.image_size},
        resample=3,  # PIL bicubic, as Encoder.embed resizes
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=adapter["mean"],
        image_std=adapter["std"],
    ).save_pretrained(out)


def export_model(model: nn.Module, out_dir: str | Path, readout: str = "mean_patch",
                 card_context: dict | None = None) -> Path:
    """Write the encoder of ``model`` to ``out_dir`` (created) as an HF directory with its model card; returns the
    path. ``card_context``: keyword arguments of :func:`tessera.models.card.build_card` (``run_dir``, ``store``...),
    so a run's export describes its corpus and recipe."""
    from safetensors.torch import save_file

    encoder, cfg = _encoder_of(model)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = encoder.backbone.config
    saved_ratio = getattr(config, "mask_ratio", None)
    if encoder.kind == "vit_mae":
        # A feature extractor must not mask: plain ViTMAEModel then keeps every patch (it still shuffles
        # them unless given noise = arange; mean pooling is order-free).
        config.mask_ratio = 0.0
    try:
        encoder.backbone.save_pretrained(out, safe_serialization=True)
    finally:
        if saved_ratio is not None:
            config.mask_ratio = saved_ratio
    if encoder.registers is not None:
        save_file({"registers": encoder.registers.detach().cpu().contiguous()}, str(out / REGISTERS_FILE))
    _save_preprocessor(encoder, out)
    info = {
        "format_version": FORMAT_VERSION,
        **encoder.settings(),
        "readout": readout,
        "train_mask_ratio": saved_ratio,
        "model_config": to_dict(cfg) if cfg is not None else None,
    }
    (out / TESSERA_JSON).write_text(json.dumps(info, indent=2))
    from tessera.models.card import write_card

    write_card(out, **(card_context or {}))
    return out
