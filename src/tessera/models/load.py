"""``load(ref)``: the feature interface for a run dir, an exported dir, a HF checkpoint, or ``random:NAME`` (DESIGN
§3.3).

ViT-MAE, DINOv2 and ResNet (:mod:`tessera.models.conv`) encoders all come back as the same
:class:`~tessera.models.encoder.Encoder`. Local paths are resolved before anything is asked of the Hub, so a
mistyped run directory fails at once (issue 17).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import torch

from tessera.errors import TesseraError
from tessera.models.adapter import InputAdapter
from tessera.models.encoder import Encoder, ViTEncoder

RANDOM_PREFIX = "random:"
RANDOM_SEED = 0
_HF_KINDS = {"vit_mae": "vit_mae", "dinov2": "dinov2", "dinov2_with_registers": "dinov2_registers", "resnet": "resnet"}
HF_RESNET_SIZE = 224  # ImageNet ResNets' input size, when a checkpoint's preprocessor does not say


def _backbone_class(kind: str):
    from transformers import Dinov2Model, Dinov2WithRegistersModel, ViTMAEModel

    return {"vit_mae": ViTMAEModel, "dinov2": Dinov2Model, "dinov2_registers": Dinov2WithRegistersModel}[kind]


def load_random(name: str) -> Encoder:
    """Random-init baseline with the architecture of model preset ``name`` or of the ``model:`` section of
    pretraining preset (or YAML file) ``name`` (its ``init`` is dropped). Seeded, so the same name gives the
    same weights. A ResNet preset (``random:resnet18_64``) or a config whose model is one gives a conv encoder."""
    from tessera.config import available_presets, resolve_config
    from tessera.models.config import ModelConfig
    from tessera.models.presets import MODEL_PRESETS, preset_backbone

    if name in MODEL_PRESETS:
        cfg = ModelConfig(preset=name, backbone=preset_backbone(name) or "vit_mae")
    elif name in available_presets() or (name.endswith((".yaml", ".yml")) and Path(name).is_file()):
        cfg = resolve_config(ModelConfig, name, section="model")
    else:
        known = sorted(MODEL_PRESETS) + available_presets()
        raise TesseraError(f"'{RANDOM_PREFIX}{name}': unknown preset (known: {', '.join(known)})")
    return random_encoder(cfg, f"{RANDOM_PREFIX}{name}")


def random_encoder(model_cfg, name: str) -> Encoder:
    """Random-init encoder with exactly ``model_cfg``'s architecture (its ``init`` dropped, identity input
    adapter), seeded with ``RANDOM_SEED``: the same architecture always gets the same weights."""
    from tessera.models.pretrain_model import build_encoder

    cfg = dataclasses.replace(model_cfg, init=None, input_norm="identity")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_SEED)
        encoder, _ = build_encoder(cfg)
    return Encoder(encoder, readout="mean_patch", name=name)


def load_exported(path: Path) -> Encoder:
    """A directory written by :func:`tessera.models.export.export_model` (tessera.json present)."""
    from safetensors.torch import load_file

    from tessera.models.export import REGISTERS_FILE, TESSERA_JSON

    info = json.loads((path / TESSERA_JSON).read_text())
    kind = info["backbone"]
    if kind == "resnet":
        from tessera.models.conv import ConvEncoder, backbone_from_dir

        encoder = ConvEncoder(backbone_from_dir(path), InputAdapter.from_dict(info["adapter"]), int(info["image_size"]))
        return Encoder(encoder, readout=info.get("readout", "mean_patch"), name=str(path))
    if kind == "spectrum":
        from tessera.models.spectrum import load_spectrum

        return Encoder(load_spectrum(path), readout=info.get("readout", "mean_patch"), name=str(path))
    backbone = _backbone_class(kind).from_pretrained(path)
    encoder = ViTEncoder(backbone, kind, InputAdapter.from_dict(info["adapter"]), num_registers=int(info["registers"]))
    if encoder.registers is not None:
        with torch.no_grad():
            encoder.registers.copy_(load_file(str(path / REGISTERS_FILE))["registers"])
    return Encoder(encoder, readout=info.get("readout", "mean_patch"), name=str(path))


def _adapter_from_preprocessor(ref: str, channels: int) -> InputAdapter:
    """The local checkpoint's preprocessor mean/std if present, else ImageNet (seed 000 §8.1)."""
    pre = Path(ref) / "preprocessor_config.json"
    if pre.exists():
        data = json.loads(pre.read_text())
        if data.get("do_normalize", True) and "image_mean" in data and "image_std" in data:
            return InputAdapter(channels, data["image_mean"], data["image_std"], norm="checkpoint")
    return InputAdapter.build("imagenet", channels)


def _hf_resnet_size(ref: str) -> int:
    """Input size of a plain HF ResNet: its local preprocessor's crop or size, else 224."""
    pre = Path(ref) / "preprocessor_config.json"
    if pre.exists():
        data = json.loads(pre.read_text())
        for key in ("crop_size", "size"):
            value = data.get(key)
            if isinstance(value, dict):
                value = value.get("height", value.get("shortest_edge"))
            if isinstance(value, int):
                return value
    return HF_RESNET_SIZE


def load_hf(ref: str) -> Encoder:
    """A plain HF checkpoint (local dir or Hub id): ViT-MAE (mean-patch readout), DINOv2 (CLS = pooler) or
    ResNet (global average pool = HF's pooler_output)."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(ref)
    except OSError as exc:
        raise TesseraError(
            f"{ref}: not a local model directory and not loadable from the Hugging Face Hub ({exc})"
        ) from exc
    kind = _HF_KINDS.get(config.model_type)
    if kind is None:
        raise TesseraError(f"{ref}: model type {config.model_type!r} is not supported (vit_mae, dinov2, "
                           "dinov2_with_registers, resnet)")
    adapter = _adapter_from_preprocessor(ref, int(config.num_channels))
    if kind == "resnet":
        from transformers import ResNetModel

        from tessera.models.conv import ConvEncoder

        encoder = ConvEncoder(ResNetModel.from_pretrained(ref), adapter, _hf_resnet_size(ref))
        return Encoder(encoder, readout="mean_patch", name=ref)
    backbone = _backbone_class(kind).from_pretrained(ref)
    readout = "mean_patch" if kind == "vit_mae" else "cls"
    return Encoder(ViTEncoder(backbone, kind, adapter), readout=readout, name=ref)


def _expand_user(text: str) -> str:
    return os.path.expanduser(text) if text.startswith("~") else text


def looks_like_path(text: str) -> bool:
    """Whether ``text`` names a local path rather than a Hub id ("name" or "namespace/name").

    A path: absolute, or starting with "." or "~", or with a backslash or more than one "/", or whose parent
    directory exists here (``runs/typo`` next to a ``runs/`` folder). A Hub id must not start with "." (the Hub's
    naming rule), so no Hub id is taken for a path unless a local folder is named like its namespace.
    """
    if not text:
        return False
    if text.startswith((".", "~")) or os.path.isabs(text) or "\\" in text or text.count("/") > 1:
        return True
    parent = Path(text).parent
    return parent != Path(".") and parent.is_dir()


def load(ref: str | Path, device=None, tower: str | None = None) -> Encoder:
    """Load an encoder: ``random:NAME``, a run dir (uses RUN/model), an exported dir, a local HF dir, or a Hub id.
    ``tower="a"|"b"`` (or a ref ``RUN#tower=a``, for commands that take one ref, e.g. ``tessera evaluate --model``):
    one tower of a ``tessera align`` run, embedding into the shared space (tessera.align)."""
    if tower is None and "#tower=" in str(ref):
        ref, tower = str(ref).rsplit("#tower=", 1)
    if tower is not None:
        from tessera.align.towers import load_tower

        return load_tower(_expand_user(str(ref)), tower, device=device)
    from tessera.models.export import TESSERA_JSON
    from tessera.models.pretrain_model import resolve_model_dir

    text = str(ref)
    if text.startswith(RANDOM_PREFIX):
        encoder = load_random(text[len(RANDOM_PREFIX):])
    else:
        text = _expand_user(text)
        if looks_like_path(text) and not Path(text).exists():
            raise TesseraError(f"no such run directory: {text}")
        local = resolve_model_dir(text)
        if local is None and Path(text).exists():
            raise TesseraError(f"{text}: not a directory")
        if local is not None and (local / TESSERA_JSON).exists():
            encoder = load_exported(local)
        else:
            encoder = load_hf(str(local) if local is not None else text)
    encoder.module.eval()
    if device is not None:
        encoder.to(device)
    return encoder
