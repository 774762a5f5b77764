"""A convolutional encoder (Hugging Face ``ResNetModel``) behind the ViT's encoder interface (issue 12, DESIGN §3.3).

Why a CNN: below ~100k images, small ResNets trained with SimCLR or BYOL are the published winners on radio
morphology (``/work/shared/notes/small-scale-ssl.md`` finding 1: Slijepcevic et al. 2024, BYOL + ResNet-18 on
RGZ DR1; the Cecconello et al. benchmark, SimCLR 91.0 / BYOL 89.6 on MiraBest with ResNet-18), and issue 12
measured a random-init ResNet as a far stronger floor than a random-init ViT on FIRST (0.711 vs 0.595 converged
probe). A bake-off without this arm cannot tell a user whether a ViT pays at their scale.

How it fits the interface: stages play the role of blocks (``num_layers`` = number of stages, ``layer`` picks a
stage), the chosen stage's feature map is the token set (``patches`` (N, H'*W', C), row-major positions),
``cls`` is its global average pool (= the mean-patch readout, = HF's ``pooler_output``), and there are no
registers. Masking does not apply (MAE needs tokens it can drop).

Stem: HF's ``ResNetEmbeddings`` is fixed to a 7x7 stride-2 conv + 3x3 stride-2 max-pool; ``ResNetConfig`` has
no field for another stem (``downsample_in_first_stage`` only adds a stride to stage 1, ``embedding_size``
only sets the stem's width). At 64 px that stem leaves a 2x2 map after four stages, so for small sparse images
the stem's conv (``backbone.embedder.embedder``) and pool (``backbone.embedder.pooler``) are replaced
explicitly (see :data:`tessera.models.presets.STEM_STRIDES`): "small" = 3x3 stride-1 conv + BN + ReLU and no
pool (He et al. 2016 §4.2's CIFAR ResNet), "small_pool" = the same conv with the max-pool kept (what
``inigoval/byol``'s ``downscale: True`` does to torchvision's ResNet-18). Parameter names stay HF's; the stem is
recorded as ``tessera_stem`` in ``config.json``. A "standard"-stem export is a plain ``ResNetModel`` checkpoint;
a small-stem one is refused by plain ``AutoModel.from_pretrained`` (shape mismatch of the stem conv) and loads
with ``tessera.load``.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from tessera.errors import ConfigError
from tessera.models.adapter import InputAdapter
from tessera.models.encoder import EncoderOutput
from tessera.models.presets import STEM_STRIDES, get_preset

KIND = "resnet"
STEM_KEY = "tessera_stem"  # extra ResNetConfig attribute saved in config.json
_STAGE_RE = re.compile(r"(?:^|\.)encoder\.stages\.(\d+)\.")
_STEM_RE = re.compile(r"(?:^|\.)embedder\.")


def resnet_config(preset: dict, num_channels: int, image_size: int):
    """A ``transformers.ResNetConfig`` for a conv preset (see :data:`tessera.models.presets.CONV_PRESETS`).

    ``image_size`` and the stem are extra attributes (HF's ResNet is size-agnostic and has one stem).
    """
    from transformers import ResNetConfig

    if preset["stem"] not in STEM_STRIDES:
        raise ConfigError(f"config key 'model.preset': unknown stem {preset['stem']!r} (known: "
                          f"{', '.join(STEM_STRIDES)})")
    return ResNetConfig(
        num_channels=int(num_channels),
        embedding_size=int(preset["embedding_size"]),
        hidden_sizes=list(preset["hidden_sizes"]),
        depths=list(preset["depths"]),
        layer_type=preset.get("layer_type", "basic"),
        downsample_in_first_stage=bool(preset.get("downsample_in_first_stage", False)),
        image_size=int(image_size),
        **{STEM_KEY: preset["stem"]},
    )


def apply_stem(backbone: nn.Module, stem: str) -> None:
    """Replace HF's 7x7/2 conv + max-pool stem of ``backbone`` (a ResNetModel) in place; "standard" keeps it.

    The new conv is initialized as HF initializes convs (Kaiming normal, fan_out, ReLU gain); its BN starts at
    identity (weight 1, bias 0), as every BN of the backbone.
    """
    from transformers.models.resnet.modeling_resnet import ResNetConvLayer

    if stem not in STEM_STRIDES:
        raise ValueError(f"unknown ResNet stem {stem!r} (known: {', '.join(STEM_STRIDES)})")
    if stem == "standard":
        return
    config = backbone.config
    conv = ResNetConvLayer(config.num_channels, config.embedding_size, kernel_size=3, stride=1,
                           activation=config.hidden_act)
    nn.init.kaiming_normal_(conv.convolution.weight, mode="fan_out", nonlinearity="relu")
    backbone.embedder.embedder = conv
    if stem == "small":
        backbone.embedder.pooler = nn.Identity()


def stem_of(config) -> str:
    """The stem recorded in a ResNetConfig; a plain HF checkpoint has HF's standard stem."""
    return getattr(config, STEM_KEY, None) or "standard"


class ConvEncoder(nn.Module):
    """Input adapter + HF ResNet backbone, with the ViT encoder's contract.

    ``forward(images01 (N, C, S, S), layer=-1)`` -> EncoderOutput with ``patches`` (N, H'*W', C_l) the feature map
    of stage ``layer`` flattened row-major, ``cls`` (N, C_l) its global average pool, ``registers`` (N, 0, C_l).
    ``C_l`` = ``feature_dim(layer)`` = ``hidden_sizes[layer]``: the feature width differs between stages, so
    ``hidden_size`` (the last stage's) is the width of the default ``layer=-1`` features only. ``patch_size`` is
    the total stride of the last stage (S / patch_size = H' = W' when S is a multiple of it).
    """

    kind = KIND
    num_registers = 0
    num_added_registers = 0
    registers = None  # no register tokens (export checks this attribute)

    def __init__(self, backbone: nn.Module, adapter: InputAdapter, image_size: int):
        super().__init__()
        self.backbone = backbone
        self.adapter = adapter
        self._image_size = int(image_size)
        if adapter.out_channels != backbone.config.num_channels:
            raise ValueError(
                f"input adapter outputs {adapter.out_channels} channels, backbone expects "
                f"{backbone.config.num_channels}"
            )

    # -- architecture facts -------------------------------------------------------------------------------
    @property
    def config(self):
        return self.backbone.config

    @property
    def stem(self) -> str:
        return stem_of(self.config)

    @property
    def stages(self) -> nn.ModuleList:
        return self.backbone.encoder.stages

    @property
    def num_layers(self) -> int:
        return len(self.stages)

    @property
    def hidden_size(self) -> int:
        return self.feature_dim(-1)

    def feature_dim(self, layer: int = -1) -> int:
        """Channels of stage ``layer``'s feature map (the dimension of ``embed(..., layer=layer)``)."""
        return int(self.config.hidden_sizes[self._stage_index(layer)])

    @property
    def image_size(self) -> int:
        return self._image_size

    @property
    def patch_size(self) -> int:
        stride = STEM_STRIDES[self.stem] * 2 ** (self.num_layers - 1)
        return stride * (2 if self.config.downsample_in_first_stage else 1)

    def _stage_index(self, layer: int) -> int:
        depth = self.num_layers
        if not -depth <= layer < depth:
            raise ValueError(f"layer {layer} out of range for a {depth}-stage encoder")
        return layer % depth

    # -- forward ------------------------------------------------------------------------------------------
    def forward(
        self,
        images01: torch.Tensor,
        mask_ratio: float = 0.0,
        noise: torch.Tensor | None = None,
        layer: int = -1,
    ) -> EncoderOutput:
        """images01: (N, C, S, S) in [0, 1] at the model's input size -> EncoderOutput of stage ``layer``."""
        if mask_ratio > 0 or noise is not None:
            raise ValueError("masking (mask_ratio, noise) is defined for vit_mae backbones only: a convolutional "
                             "encoder sees whole images (masked reconstruction does not apply)")
        stop = self._stage_index(layer)
        size = self.image_size
        if images01.ndim != 4 or tuple(images01.shape[-2:]) != (size, size):
            raise ValueError(f"input must have shape (N, C, {size}, {size}), got {tuple(images01.shape)}")
        h = self.backbone.embedder(self.adapter(images01))
        for stage in self.stages[: stop + 1]:
            h = stage(h)
        patches = h.flatten(2).transpose(1, 2)  # (N, C, H', W') -> (N, H'*W', C), row-major positions
        registers = patches.new_zeros(patches.shape[0], 0, patches.shape[2])
        return EncoderOutput(cls=patches.mean(dim=1), registers=registers, patches=patches)

    def layer_id_of(self, param_name: str) -> int:
        """Depth for layer-wise lr decay: 0 = stem, i + 1 = stage i, ``num_layers + 1`` = anything else (a head)."""
        stage = _STAGE_RE.search(param_name)
        if stage:
            return int(stage.group(1)) + 1
        if _STEM_RE.search(param_name):
            return 0
        return self.num_layers + 1

    def settings(self) -> dict:
        """JSON-safe description saved in tessera.json."""
        return {
            "backbone": KIND,
            "registers": 0,
            "image_size": self.image_size,
            "stem": self.stem,
            "adapter": self.adapter.to_dict(),
        }


# -- building -------------------------------------------------------------------------------------------------

def scratch_backbone(preset_name: str, num_channels: int, image_size: int) -> nn.Module:
    """A randomly initialized ResNetModel for conv preset ``preset_name`` (stem replaced as the preset says)."""
    from transformers import ResNetModel

    preset = get_preset(preset_name)
    backbone = ResNetModel(resnet_config(preset, num_channels, image_size))
    apply_stem(backbone, preset["stem"])
    return backbone


def backbone_from_dir(path: str | Path) -> nn.Module:
    """The ResNetModel of a tessera export: rebuilt from config.json (stem included), weights loaded strictly."""
    from safetensors.torch import load_file
    from transformers import ResNetConfig, ResNetModel

    path = Path(path)
    config = ResNetConfig.from_pretrained(path)
    backbone = ResNetModel(config)
    apply_stem(backbone, stem_of(config))
    backbone.load_state_dict(load_file(str(path / "model.safetensors")), strict=True)
    return backbone


def pretrained_backbone(ref: str, tessera_export: bool) -> nn.Module:
    """A ResNetModel from a tessera export (any stem) or a plain HF ResNet checkpoint (local dir or Hub id; a
    ``ResNetForImageClassification`` checkpoint gives its trunk)."""
    from transformers import AutoConfig, ResNetModel

    config = AutoConfig.from_pretrained(ref)
    if config.model_type != "resnet":
        raise ConfigError(f"config key 'model.init': {ref} is a {config.model_type} checkpoint, not resnet "
                          "(set model.backbone accordingly)")
    return backbone_from_dir(ref) if tessera_export else ResNetModel.from_pretrained(ref)


def conv_adapter(cfg, saved_adapter: dict | None, from_checkpoint: bool, out_channels: int) -> InputAdapter:
    """Seed 000 §8.1 as for the ViT: "auto" keeps a tessera export's adapter, ImageNet stats for another
    checkpoint, identity from scratch."""
    if cfg.in_channels not in (1, out_channels):
        raise ConfigError(f"config key 'model.in_channels': {cfg.in_channels} channels cannot feed a "
                          f"{out_channels}-channel backbone (only 1 -> {out_channels} replication)")
    norm = cfg.input_norm
    if norm == "auto":
        if saved_adapter is not None:
            return InputAdapter.from_dict(saved_adapter)
        norm = "imagenet" if from_checkpoint else "identity"
    return InputAdapter.build(norm, out_channels)


def build_conv_encoder(cfg) -> ConvEncoder:
    """The ConvEncoder of ``cfg`` (a ModelConfig with ``backbone: resnet``), from scratch or ``cfg.init``.

    From scratch: preset dimensions, ``cfg.in_channels`` input channels (radio: 1, no replication needed).
    From ``init`` (a run dir, a tessera export or a HF ResNet checkpoint): its architecture and weights; the input
    size is ``cfg.image_size``, else the export's, else the preset's.
    """
    import json

    from tessera.models.export import TESSERA_JSON
    from tessera.models.pretrain_model import resolve_model_dir

    cfg.validate()
    if cfg.init is None:
        size = cfg.resolved_image_size()
        backbone = scratch_backbone(cfg.preset, cfg.in_channels, size)
        return ConvEncoder(backbone, conv_adapter(cfg, None, False, cfg.in_channels), size)
    local = resolve_model_dir(cfg.init)
    saved = None
    if local is not None and (local / TESSERA_JSON).exists():
        saved = json.loads((local / TESSERA_JSON).read_text())
        if saved["backbone"] != KIND:
            raise ConfigError(f"config key 'model.backbone': 'resnet' but {local} was exported with "
                              f"{saved['backbone']!r}")
    backbone = pretrained_backbone(str(local) if local is not None else cfg.init, tessera_export=saved is not None)
    size = cfg.image_size or (saved or {}).get("image_size") or getattr(backbone.config, "image_size", None)
    size = int(size or cfg.resolved_image_size())
    adapter = conv_adapter(cfg, (saved or {}).get("adapter"), True, int(backbone.config.num_channels))
    return ConvEncoder(backbone, adapter, size)
