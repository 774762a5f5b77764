"""The pretraining model: input adapter + ViT encoder (+ registers) + MAE decoder and/or projection head.

One entry point, ``forward(views01, branch, noise=None)``, so the trainer always calls the DDP-wrapped
module (DESIGN §7 pitfall). Losses live in ``tessera.objectives``; this module only returns tensors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import torch
from torch import nn

from tessera.errors import ConfigError, TesseraError
from tessera.models.adapter import InputAdapter
from tessera.models.config import ModelConfig
from tessera.models.encoder import ViTEncoder
from tessera.models.export import REGISTERS_FILE, TESSERA_JSON
from tessera.models.heads import ProjectionHead
from tessera.models.presets import get_preset

BRANCHES = ("reconstruction", "contrastive")


def patchify(x: torch.Tensor, patch: int) -> torch.Tensor:
    """x: (N, C, S, S) -> (N, L, patch * patch * C), patch order and pixel layout as HF ViTMAE ``patchify``."""
    n, c, h, w = x.shape
    if h % patch or w % patch:
        raise ValueError(f"image size {(h, w)} is not divisible by the patch size {patch}")
    x = x.reshape(n, c, h // patch, patch, w // patch, patch).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(n, (h // patch) * (w // patch), patch * patch * c)


class PretrainModel(nn.Module):
    """``encoder`` (ViTEncoder, or any module with ``forward(images01) -> EncoderOutput``), ``decoder`` (HF
    ViTMAEDecoder or None), ``projection`` (ProjectionHead or None), ``heads`` (an objective's own heads, each a
    module ``forward(encoder, inputs, **kw)`` run by :meth:`forward` as branch ``name``) and ``teacher`` (an EMA
    copy of the encoder and some heads, models/teacher.py, or None; it never receives gradients).
    """

    def __init__(self, cfg: ModelConfig, encoder: ViTEncoder, decoder: nn.Module | None, projection: nn.Module | None,
                 heads: dict[str, nn.Module] | None = None, teacher: nn.Module | None = None):
        super().__init__()
        self.cfg = cfg
        self.encoder = encoder
        self.decoder = decoder
        self.projection = projection
        self.heads = nn.ModuleDict(heads or {})
        self.teacher = teacher
        self.mask_ratio = float(cfg.mask_ratio)

    def student_parts(self) -> dict[str, nn.Module]:
        """The trained modules an EMA teacher mirrors, by name: ``encoder`` and each head's ``teacher_parts()``
        (a head without that method is mirrored whole under its own name)."""
        parts: dict[str, nn.Module] = {"encoder": self.encoder}
        for name, head in self.heads.items():
            parts.update(head.teacher_parts() if hasattr(head, "teacher_parts") else {name: head})
        return parts

    @property
    def ddp_find_unused_parameters(self) -> bool:
        """What DDP must know about this model: whether some trainable parameter may get no gradient in a step.

        ViT-MAE models build only the heads their objective trains, so every parameter gets a gradient; a
        DINOv2 backbone keeps its mask token trainable-but-unused unless iBOT uses it (and a resnet has no
        promise either), so DDP must search for unused parameters there.
        """
        return self.cfg.backbone != "vit_mae"

    @property
    def image_size(self) -> int:
        return self.encoder.image_size

    @property
    def patch_size(self) -> int:
        return self.encoder.patch_size

    @property
    def branches(self) -> tuple[str, ...]:
        return tuple(b for b, m in zip(BRANCHES, (self.decoder, self.projection)) if m is not None) + tuple(self.heads)

    def _check_views(self, views01: torch.Tensor) -> None:
        size = self.image_size
        if views01.ndim != 4 or tuple(views01.shape[-2:]) != (size, size):
            raise ValueError(f"views must have shape (N, C, {size}, {size}), got {tuple(views01.shape)}")

    def forward(self, views01: torch.Tensor, branch: str, noise: torch.Tensor | None = None, **kwargs) -> dict:
        """views01: (N, C, S, S) in [0, 1]. See :meth:`reconstruct` and :meth:`contrast` for the outputs; any other
        branch is the head of that name, called as ``heads[branch](encoder, views01, **kwargs)`` (its inputs, e.g.
        a list of crop groups, are the head's business)."""
        if branch in self.heads:
            if noise is not None:
                kwargs["noise"] = noise
            return self.heads[branch](self.encoder, views01, **kwargs)
        if branch not in BRANCHES:
            raise ValueError(f"unknown branch {branch!r} (choose from {', '.join((*BRANCHES, *self.heads))})")
        if branch not in self.branches:
            raise ConfigError(f"config key 'model.backbone': branch {branch!r} is not built for this model "
                              f"(built: {', '.join(self.branches) or 'none'})")
        self._check_views(views01)
        if branch == "reconstruction":
            return self.reconstruct(views01, noise)
        if noise is not None:
            raise ValueError("noise is only used by the reconstruction branch (the contrastive encoder is unmasked)")
        return self.contrast(views01)

    def reconstruct(self, views01: torch.Tensor, noise: torch.Tensor | None = None) -> dict:
        """Masked reconstruction (seed 000 §6.2): the encoder sees only visible patches.

        Returns pred (N, L, P) decoder output for every patch, target (N, L, P) patches of the adapter-
        normalized input (the space the loss is computed in), mask (N, L) with 1 = masked, and target01
        (N, L, P) the same patches in [0, 1] (channel-replicated) for the brightness weights (Eq. 5).
        """
        out = self.encoder(views01, mask_ratio=self.mask_ratio, noise=noise)
        # Registers are dropped before the decoder (seed 000 §5.3): it sees CLS + visible patches only.
        latent = torch.cat([out.cls.unsqueeze(1), out.patches], dim=1)
        pred = self.decoder(latent, out.ids_restore).logits
        adapter = self.encoder.adapter
        replicated = adapter.replicate(views01)
        target = patchify(adapter.normalize(replicated), self.patch_size)
        target01 = patchify(replicated, self.patch_size)
        return {"pred": pred, "target": target, "mask": out.mask, "target01": target01}

    def contrast(self, views01: torch.Tensor) -> dict:
        """Unmasked encoder -> mean-patch readout (seed 000 Eq. 1) -> projection head (§5.2).

        Returns z (N, proj_dim) l2-normalized and features (N, D).
        """
        out = self.encoder(views01)
        features = out.readout("mean_patch")
        return {"z": self.projection(features), "features": features}


# -- building ------------------------------------------------------------------------------------------------

@dataclass
class _Source:
    """Where the initial weights come from: ``path`` (local dir or Hub id) and a tessera export's settings."""

    ref: str
    settings: dict | None = None


def resolve_model_dir(ref: str | Path) -> Path | None:
    """A local directory holding a model: ``ref`` itself, or ``ref/model`` for a run directory; else None."""
    path = Path(ref)
    if not path.is_dir():
        return None
    if (path / "config.json").exists() or (path / TESSERA_JSON).exists():
        return path
    if (path / "model").is_dir():
        return path / "model"
    raise TesseraError(f"{path}: neither a model directory (config.json) nor a run directory (model/)")


def _source(init: str) -> _Source:
    local = resolve_model_dir(init)
    if local is None:
        return _Source(ref=init)
    settings = None
    if (local / TESSERA_JSON).exists():
        settings = json.loads((local / TESSERA_JSON).read_text())
    return _Source(ref=str(local), settings=settings)


def _sincos(grid: int, dim: int) -> torch.Tensor:
    """(1, 1 + grid*grid, dim) fixed 2-D sin-cos positions in HF ViT-MAE's layout (with its h/w half swap)."""
    from transformers.models.vit_mae.modeling_vit_mae import build_2d_sinusoidal_position_embedding

    pos = build_2d_sinusoidal_position_embedding(height=grid, width=grid, embed_dim=dim, cls_token=True)
    half = pos.shape[-1] // 2
    return torch.cat([pos[..., half:], pos[..., :half]], dim=-1).unsqueeze(0)


def _vit_mae_scratch(cfg: ModelConfig):
    from transformers import ViTMAEConfig, ViTMAEForPreTraining

    preset = get_preset(cfg.preset)
    preset["image_size"] = cfg.resolved_image_size()
    config = ViTMAEConfig(**preset, num_channels=cfg.in_channels, mask_ratio=cfg.mask_ratio, norm_pix_loss=False)
    full = ViTMAEForPreTraining(config)
    mae_initialize(full)
    return full.vit, full.decoder


def mae_initialize(full) -> None:
    """MAE's own initialization (He et al. 2022, ``models_mae.initialize_weights``) of a from-scratch
    ``ViTMAEForPreTraining``: fixed 2-D sin-cos positions in the encoder and the decoder, the patch projection
    initialized like a Linear layer (xavier uniform), CLS and decoder mask token ~ N(0, 0.02).

    ``transformers`` 5.x leaves all four at zero when a model is built from a config (its ``_init_weights`` skips
    the sin-cos table once the patch projection is marked initialized, and zeroes the decoder's mask token and
    positions): an encoder without positions cannot tell patches apart, and a zero CLS token is a zero-variance
    LayerNorm input whose backward overflows (the NaN gradient of DINO's first step on real data).
    """
    emb, decoder = full.vit.embeddings, full.decoder
    grid = int(emb.patch_embeddings.num_patches ** 0.5)
    std = float(full.config.initializer_range)
    with torch.no_grad():
        emb.position_embeddings.copy_(_sincos(grid, emb.position_embeddings.shape[-1]))
        decoder.decoder_pos_embed.copy_(_sincos(grid, decoder.decoder_pos_embed.shape[-1]))
        weight = emb.patch_embeddings.projection.weight
        nn.init.xavier_uniform_(weight.view(weight.shape[0], -1))
        nn.init.normal_(emb.cls_token, std=std)
        nn.init.normal_(decoder.mask_token, std=std)


def _vit_mae_pretrained(cfg: ModelConfig, ref: str):
    """ViTMAEForPreTraining.from_pretrained; a different image_size regenerates the fixed sin-cos positions."""
    from transformers import AutoConfig, ViTMAEForPreTraining

    config = AutoConfig.from_pretrained(ref)
    if config.model_type != "vit_mae":
        raise ConfigError(f"config key 'model.init': {ref} is a {config.model_type} checkpoint, not vit_mae "
                          "(set model.backbone accordingly)")
    kwargs = {"mask_ratio": cfg.mask_ratio}
    resize = cfg.image_size is not None and cfg.image_size != config.image_size
    if resize:
        if cfg.image_size % config.patch_size:
            raise ConfigError(f"config key 'model.image_size': {cfg.image_size} is not divisible by the patch "
                              f"size {config.patch_size} of {ref}")
        kwargs.update(image_size=cfg.image_size, ignore_mismatched_sizes=True)
    full = ViTMAEForPreTraining.from_pretrained(ref, **kwargs)
    if resize:
        grid = cfg.image_size // config.patch_size
        with torch.no_grad():
            full.vit.embeddings.position_embeddings.copy_(_sincos(grid, config.hidden_size))
            full.decoder.decoder_pos_embed.copy_(_sincos(grid, config.decoder_hidden_size))
    return full.vit, full.decoder


def _dinov2_backbone(cfg: ModelConfig, ref: str | None):
    from transformers import AutoModel, Dinov2Config, Dinov2Model, Dinov2WithRegistersConfig, Dinov2WithRegistersModel

    cls = Dinov2Model if cfg.backbone == "dinov2" else Dinov2WithRegistersModel
    if ref is None:
        p = get_preset(cfg.preset)
        common = dict(
            hidden_size=p["hidden_size"], num_hidden_layers=p["num_hidden_layers"],
            num_attention_heads=p["num_attention_heads"], mlp_ratio=p["intermediate_size"] // p["hidden_size"],
            patch_size=p["patch_size"], image_size=cfg.resolved_image_size(), num_channels=cfg.in_channels,
        )
        config = Dinov2Config(**common) if cls is Dinov2Model else Dinov2WithRegistersConfig(**common,
            num_register_tokens=4)
        return cls(config)
    model = AutoModel.from_pretrained(ref)
    if not isinstance(model, cls):
        raise ConfigError(f"config key 'model.init': {ref} loads as {type(model).__name__}, "
                          f"expected {cls.__name__} for backbone {cfg.backbone}")
    if cfg.image_size is not None:
        if cfg.image_size % model.config.patch_size:
            raise ConfigError(f"config key 'model.image_size': {cfg.image_size} is not divisible by the patch "
                              f"size {model.config.patch_size} of {ref}")
        model.config.image_size = cfg.image_size  # DINOv2 interpolates its position embeddings at run time
    return model


def _adapter_for(cfg: ModelConfig, source: _Source | None, out_channels: int) -> InputAdapter:
    """Seed 000 §8.1: ImageNet stats when continuing from a checkpoint, identity from scratch; "auto" keeps
    a tessera export's own adapter (a scratch-trained export stays identity)."""
    if cfg.in_channels not in (1, out_channels):
        raise ConfigError(f"config key 'model.in_channels': {cfg.in_channels} channels cannot feed a "
                          f"{out_channels}-channel backbone (only 1 -> {out_channels} replication)")
    norm = cfg.input_norm
    if norm == "auto":
        if source is None:
            norm = "identity"
        elif source.settings is not None:
            return InputAdapter.from_dict(source.settings["adapter"])
        else:
            norm = "imagenet"
    return InputAdapter.build(norm, out_channels)


def _load_registers(encoder: ViTEncoder, source: _Source) -> None:
    from safetensors.torch import load_file

    path = Path(source.ref) / REGISTERS_FILE
    tensors = load_file(str(path))
    with torch.no_grad():
        encoder.registers.copy_(tensors["registers"])


def build_encoder(cfg: ModelConfig, with_decoder: bool = False) -> tuple[nn.Module, nn.Module | None]:
    """The encoder of ``cfg`` (and the HF MAE decoder if asked), from scratch or ``cfg.init``: a ViTEncoder, or
    a :class:`~tessera.models.conv.ConvEncoder` for ``backbone: resnet`` (which has no decoder)."""
    cfg.validate()
    if cfg.backbone == "resnet":
        from tessera.models.conv import build_conv_encoder

        return build_conv_encoder(cfg), None
    source = _source(cfg.init) if cfg.init else None
    if source is not None and source.settings is not None:
        saved = source.settings
        if saved["backbone"] != cfg.backbone:
            raise ConfigError(f"config key 'model.backbone': {cfg.backbone!r} but {source.ref} was exported "
                              f"with {saved['backbone']!r}")
        if int(saved["registers"]) != cfg.registers:
            raise ConfigError(f"config key 'model.registers': {cfg.registers} but {source.ref} has "
                              f"{saved['registers']} register tokens")
    decoder = None
    if cfg.backbone == "vit_mae":
        backbone, decoder = _vit_mae_pretrained(cfg, source.ref) if source else _vit_mae_scratch(cfg)
    else:
        backbone = _dinov2_backbone(cfg, source.ref if source else None)
    set_attention(backbone, cfg.attn_implementation)
    if decoder is not None:
        set_attention(decoder, cfg.attn_implementation)
    adapter = _adapter_for(cfg, source, int(backbone.config.num_channels))
    encoder = ViTEncoder(backbone, cfg.backbone, adapter, num_registers=cfg.registers)
    if source is not None and source.settings is not None and cfg.registers:
        _load_registers(encoder, source)
    return encoder, (decoder if with_decoder else None)


def set_attention(module: nn.Module, implementation: str) -> None:
    """Switch a ``transformers`` model (backbone or MAE decoder) to ``implementation`` ("sdpa" | "eager"):
    ``model.attn_implementation``. SDPA dispatches to the flash / memory-efficient kernels on GPUs."""
    if getattr(module, "config", None) is None:
        return
    if hasattr(module, "set_attn_implementation"):
        module.set_attn_implementation(implementation)
    else:  # a bare nn.Module holding a config (the MAE decoder in some transformers versions)
        module.config._attn_implementation = implementation


def compile_unsupported(device: torch.device) -> str | None:
    """Why ``torch.compile`` cannot run here (None when it can): TorchDynamo must support this Python, and
    Inductor needs Triton on CUDA and a C++ compiler on CPU."""
    import importlib.util
    import shutil

    dynamo = getattr(torch, "_dynamo", None)
    if dynamo is None or not dynamo.is_dynamo_supported():
        return "TorchDynamo does not support this Python/platform"
    if device.type == "cuda" and importlib.util.find_spec("triton") is None:
        return "Triton is not installed (Inductor needs it on CUDA)"
    if device.type == "cpu" and not any(shutil.which(c) for c in ("g++", "c++", "clang++")):
        return "no C++ compiler on PATH (Inductor needs one on CPU)"
    return None


def compile_model(model: nn.Module, device: torch.device, backend: str = "inductor") -> list[str]:
    """``nn.Module.compile(backend=...)`` (in place: parameter names and checkpoints unchanged) of the submodules a
    training step runs: ``encoder``, ``decoder``, ``projection`` where present. Returns the compiled names; where
    compilation is not supported it warns with the reason and compiles nothing (the step runs eagerly)."""
    import warnings

    reason = compile_unsupported(device)
    if reason is not None:
        warnings.warn(f"train.compile=true ignored: torch.compile is not supported here: {reason}", stacklevel=2)
        return []
    done = []
    for name in ("encoder", "decoder", "projection"):
        sub = getattr(model, name, None)
        if isinstance(sub, nn.Module):
            sub.compile(backend=backend)
            done.append(name)
    return done


def build_pretrain_model(cfg: ModelConfig, branches: Iterable[str] | None = None) -> PretrainModel:
    """Build the pretraining model of ``cfg``.

    ``branches``: which heads to build, subset of ("reconstruction", "contrastive"); None = every branch the
    backbone supports (reconstruction needs vit_mae). Building only the branch a stage trains avoids
    parameters that never receive gradients under DDP.
    """
    cfg.validate()
    default = BRANCHES if cfg.backbone == "vit_mae" else ("contrastive",)
    wanted = tuple(default if branches is None else branches)
    for b in wanted:
        if b not in BRANCHES:
            raise ValueError(f"unknown branch {b!r} (choose from {', '.join(BRANCHES)})")
    if "reconstruction" in wanted and cfg.backbone != "vit_mae":
        raise ConfigError(f"config key 'model.backbone': reconstruction is not defined for {cfg.backbone} "
                          "(masked reconstruction needs a vit_mae backbone)")
    encoder, decoder = build_encoder(cfg, with_decoder="reconstruction" in wanted)
    projection = None
    if "contrastive" in wanted:
        projection = ProjectionHead(encoder.hidden_size, cfg.proj_hidden, cfg.proj_dim, cfg.proj_batchnorm)
    return PretrainModel(cfg, encoder, decoder, projection)
