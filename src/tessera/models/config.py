"""The model section of a pretraining config (seed 000 §5, §8.1)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from tessera.errors import ConfigError
from tessera.models.presets import MODEL_PRESETS, get_preset, preset_backbone, preset_patch_size
from tessera.models.spectrum_config import SpectrumModelConfig

BACKBONES = ("vit_mae", "dinov2", "dinov2_registers", "resnet")
ATTN_IMPLEMENTATIONS = ("sdpa", "eager")


@dataclass
class ModelConfig:
    """Encoder, registers, input adapter and projection head.

    ``init``: a Hugging Face Hub id or local directory (HF checkpoint, tessera export, or run dir);
    None trains from scratch with ``preset``. ``image_size`` None = the preset's (or the checkpoint's).
    ``input_norm`` "auto" = ImageNet mean/std when continuing from a checkpoint (or the checkpoint's own
    saved adapter), identity from scratch (seed 000 §8.1). ``backbone: resnet`` takes a convolutional preset
    (``resnet18_64``, ...; contrastive branch only, no registers, ``mask_ratio`` unused).
    """

    preset: str = "vit_tiny_patch8_64"
    init: str | None = None
    backbone: Literal["vit_mae", "dinov2", "dinov2_registers", "resnet"] = "vit_mae"
    registers: int = 0
    image_size: int | None = None
    in_channels: int = 1
    mask_ratio: float = 0.75
    input_norm: Literal["auto", "imagenet", "identity"] = "auto"
    proj_hidden: int = 2048
    proj_dim: int = 128
    proj_batchnorm: bool = True  # seed 000's output BatchNorm of the projection head (§5.2)
    # Attention kernel of the transformers backbone and MAE decoder: "sdpa" (torch scaled_dot_product_attention,
    # flash/memory-efficient kernels on GPUs) or "eager" (the explicit softmax(QK^T)V; same outputs to rounding).
    attn_implementation: Literal["sdpa", "eager"] = "sdpa"
    # The 1-D spectrum tower that the spectrum objective trains (models/spectrum_config.py); image keys unused then.
    spectrum: SpectrumModelConfig = field(default_factory=SpectrumModelConfig)

    def validate(self) -> None:
        """Reject configs that cannot work, naming the key."""
        if self.preset not in MODEL_PRESETS:
            get_preset(self.preset)  # raises with the list of known presets
        if self.backbone not in BACKBONES:
            raise ConfigError(f"config key 'model.backbone': {self.backbone!r} is not one of {BACKBONES}")
        self._validate_preset_family()
        if self.attn_implementation not in ATTN_IMPLEMENTATIONS:
            raise ConfigError(f"config key 'model.attn_implementation': {self.attn_implementation!r} is not one of "
                              f"{', '.join(ATTN_IMPLEMENTATIONS)}")
        if self.registers < 0:
            raise ConfigError(f"config key 'model.registers': must be >= 0, got {self.registers}")
        if self.registers > 0 and self.backbone != "vit_mae":
            raise ConfigError(
                "config key 'model.registers': added register tokens are supported for backbone vit_mae only "
                "(use backbone dinov2_registers for DINOv2's own registers)"
            )
        if not 0.0 < self.mask_ratio < 1.0:
            raise ConfigError(f"config key 'model.mask_ratio': must be in (0, 1), got {self.mask_ratio}")
        if self.in_channels < 1:
            raise ConfigError(f"config key 'model.in_channels': must be >= 1, got {self.in_channels}")
        if self.proj_hidden < 1 or self.proj_dim < 1:
            raise ConfigError("config keys 'model.proj_hidden' and 'model.proj_dim' must be >= 1")
        if self.image_size is not None:
            if self.image_size < 1:
                raise ConfigError(f"config key 'model.image_size': must be positive, got {self.image_size}")
            if self.init is None:
                patch = preset_patch_size(self.preset)
                what = "total stride" if self.backbone == "resnet" else "patch size"
                if self.image_size % patch:
                    raise ConfigError(
                        f"config key 'model.image_size': {self.image_size} is not divisible by the {what} "
                        f"{patch} of preset {self.preset}"
                    )

    def _validate_preset_family(self) -> None:
        """From scratch, a ResNet preset needs ``backbone: resnet`` and vice versa (with ``init`` the checkpoint
        defines the architecture and the preset is unused)."""
        if self.init is not None:
            return
        conv_preset = preset_backbone(self.preset) == "resnet"
        if self.backbone == "resnet" and not conv_preset:
            conv = ", ".join(p for p in MODEL_PRESETS if preset_backbone(p) == "resnet")
            raise ConfigError(f"config key 'model.preset': {self.preset!r} is not a convolutional preset, "
                              f"as model.backbone=resnet needs (known: {conv})")
        if conv_preset and self.backbone != "resnet":
            raise ConfigError(f"config key 'model.backbone': preset {self.preset!r} is a ResNet, set "
                              f"model.backbone=resnet (got {self.backbone!r})")

    def resolved_image_size(self) -> int:
        """The input size from scratch: ``image_size`` or the preset's."""
        if self.image_size is not None:
            return int(self.image_size)
        if "image_size" not in MODEL_PRESETS.get(self.preset, {}):
            raise ConfigError(f"config key 'model.preset': preset '{self.preset}' has no image_size")
        return int(MODEL_PRESETS[self.preset]["image_size"])
