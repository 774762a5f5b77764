"""A tower = a pretrained backbone + its cross-attention pooling head (seed 003 §3.3), and the encoder interface
on the shared space (``tessera.load(RUN, tower="a")``).

Backbones: any ``tessera.load`` ref (run dir, export, HF id, ``random:NAME``: ViT or ResNet image encoders) or a
spectrum encoder (an exported spectrum dir, or ``random-spectrum:L`` for a random-init 1-D tower of input length L;
:mod:`tessera.models.spectrum`). Frozen by default (the issue's default: only the heads learn, so alignment cannot
undo the single-modal pretraining); the last K blocks can be made trainable.

Export layout (RUN/model/)::

    tower_a/  the backbone as ``tessera.load`` reads it (HF or spectrum dir), align_head.safetensors, align_head.json
    tower_b/  the same for the second tower
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from tessera.align.head import CrossAttentionPooling
from tessera.errors import TesseraError
from tessera.models.encoder import Encoder
from tessera.models.spectrum import SpectrumEncoder

RANDOM_SPECTRUM = "random-spectrum:"
HEAD_FILE = "align_head.safetensors"
HEAD_JSON = "align_head.json"
TOWERS = ("a", "b")


def input_kind(module: nn.Module) -> str:
    """"spectrum" for a 1-D tower, "image" otherwise: the module's own ``input_kind`` (models/spectrum.py), the one
    fact ``Encoder.prepare`` also reads."""
    return getattr(module, "input_kind", "image")


def load_backbone(ref: str) -> nn.Module:
    """The bare encoder module (ViTEncoder, ConvEncoder or SpectrumEncoder) of ``ref``; see the module docstring."""
    from tessera.models.load import load

    text = str(ref)
    if text.startswith(RANDOM_SPECTRUM):
        try:
            length = int(text[len(RANDOM_SPECTRUM):])
        except ValueError:
            raise TesseraError(f"'{text}': expected {RANDOM_SPECTRUM}LENGTH with an integer length") from None
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # seeded like tessera.load's random:NAME baselines
            return SpectrumEncoder(length)
    return load(text).module


def backbone_tokens(module: nn.Module, x: torch.Tensor, layer: int = -1) -> tuple[torch.Tensor, torch.Tensor | None]:
    """All final-layer tokens of ``module`` for the pooling head: (B, T, D) and padding (B, T) or None.

    Images: CLS, registers and patches (seed 003 §3.3 attends over every final-layer token); spectra: CLS, the
    stats token and patches, with patches of only missing channels as padding."""
    if isinstance(module, SpectrumEncoder):
        return module.token_sequence(x, layer=layer)
    out = module(x, layer=layer)
    return torch.cat([out.cls[:, None], out.registers, out.patches], dim=1), None


def trainable_blocks(module: nn.Module) -> nn.ModuleList:
    """The blocks whose tail ``train.trainable_blocks`` unfreezes: ViT/spectrum blocks, ResNet stages."""
    blocks = getattr(module, "blocks", None)
    if blocks is None:
        blocks = getattr(module, "stages", None)
    if blocks is None:
        raise TesseraError(f"{type(module).__name__}: has no blocks to unfreeze (train.trainable_blocks must be 0)")
    return blocks


def set_trainable(module: nn.Module, last_k: int) -> None:
    """Freeze ``module`` except its last ``last_k`` blocks (and, with any, the final norm after them)."""
    module.requires_grad_(False)
    if last_k <= 0:
        return
    blocks = trainable_blocks(module)
    if last_k > len(blocks):
        raise TesseraError(f"train.trainable_blocks: {last_k} > the tower's {len(blocks)} blocks")
    for block in list(blocks)[-last_k:]:
        block.requires_grad_(True)
    norm = getattr(module, "final_norm", None)
    if isinstance(norm, nn.Module):
        norm.requires_grad_(True)


class Tower(nn.Module):
    """backbone + CrossAttentionPooling: inputs (B, C, S, S) images in [0, 1] at the backbone's input size, or
    (B, C, L) spectra -> (B, dim) unit vectors in the shared space."""

    def __init__(self, backbone: nn.Module, head: CrossAttentionPooling):
        super().__init__()
        self.backbone, self.head = backbone, head

    @property
    def frozen(self) -> bool:
        return not any(p.requires_grad for p in self.backbone.parameters())

    def train(self, mode: bool = True) -> "Tower":
        super().train(mode)
        if self.frozen:
            self.backbone.eval()  # a frozen backbone is a fixed feature extractor (no dropout, no BN updates)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            tokens, padding = backbone_tokens(self.backbone, x)
        return self.head(tokens, padding)

    # the facts the Encoder interface reads
    @property
    def input_kind(self) -> str:  # "image" or "spectrum": Encoder.prepare takes (B, C, L) spectra for the latter
        return input_kind(self.backbone)

    @property
    def image_size(self) -> int:
        return int(self.backbone.image_size)

    @property
    def num_layers(self) -> int:
        return int(self.backbone.num_layers)

    @property
    def hidden_size(self) -> int:
        return self.head.dim

    @property
    def num_registers(self) -> int:
        return int(self.backbone.num_registers)

    def settings(self) -> dict:
        return {**self.backbone.settings(), "align_head": self.head.settings()}


class AlignModel(nn.Module):
    """Two towers and the logit scale (fixed buffer, or a learned parameter; stored as log s, CLIP's practice)."""

    def __init__(self, a: Tower, b: Tower, logit_scale: float = 15.5, learn_scale: bool = False):
        super().__init__()
        self.a, self.b = a, b
        log_scale = torch.tensor(float(logit_scale)).log()
        if learn_scale:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale)

    @property
    def scale(self) -> torch.Tensor:
        return self.log_scale.exp()

    def forward(self, xa: torch.Tensor, xb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """xa: tower a's inputs (B, ...), xb: tower b's (B, ...) -> za (B, dim), zb (B, dim)."""
        return self.a(xa), self.b(xb)


# ------------------------------------------------------------------------------------------ the interface


class AlignedEncoder(Encoder):
    """DESIGN §3.3's encoder interface on one tower: ``embed(x)`` -> (B, dim) in the shared space (readout
    "aligned", the default); ``embed(x, readout="mean_patch")`` etc. give the backbone's own features. Spectra
    (B, C, L) are taken as they are (resampled to the tower's grid beforehand)."""

    def __init__(self, tower: Tower, name: str = ""):
        self.module = tower
        self.readout = "aligned"
        self.name = name
        self._fingerprint_cache = None

    def features(self, images, layer: int = -1, readout: str | None = None) -> torch.Tensor:
        x = self.prepare(images)
        if readout in (None, "aligned"):
            if layer != -1:
                raise ValueError("the aligned readout is defined on the last layer only")
            return self.module(x)
        return self.module.backbone(x, layer=layer).readout(readout)

    def embed(self, images, readout: str | None = None, layer: int = -1, layers=None):
        """(B, dim) shared-space embeddings (or a backbone readout), eval mode, no gradient. ``layers`` (the
        feature-extraction path of tessera evaluate) may only name the last block for the aligned readout."""
        if layers is None:
            return super().embed(images, readout=readout, layer=layer)
        blocks = sorted({int(b) % self.num_layers for b in layers})
        if readout in (None, "aligned") and blocks != [self.num_layers - 1]:
            raise ValueError("the aligned readout is defined on the last layer only")
        return {b: super(AlignedEncoder, self).embed(images, readout=readout, layer=b - self.num_layers)
                for b in blocks}

    def tokens(self, images, layer: int = -1, layers=None):
        if layers is not None:
            raise ValueError("an aligned tower gives the tokens of one layer at a time")
        with torch.no_grad():
            out = self.module.backbone(self.prepare(images), layer=layer)
        return {"cls": out.cls, "registers": out.registers, "patches": out.patches}


def export_tower(tower: Tower, out_dir: str | Path) -> Path:
    """Write the backbone (as ``tessera.load`` reads it) and the head into ``out_dir``."""
    from safetensors.torch import save_file

    from tessera.models.export import export_model
    from tessera.models.spectrum import export_spectrum

    out = Path(out_dir)
    if isinstance(tower.backbone, SpectrumEncoder):
        export_spectrum(tower.backbone, out)
    else:
        export_model(tower.backbone, out)
    save_file({k: v.detach().cpu().contiguous() for k, v in tower.head.state_dict().items()}, str(out / HEAD_FILE))
    (out / HEAD_JSON).write_text(json.dumps({**tower.head.settings(), "kind": tower.input_kind}, indent=2))
    return out


def tower_dir(ref: str | Path, tower: str) -> Path:
    """RUN/model/tower_X (or EXPORT/tower_X, or a tower dir itself); TesseraError naming what is missing."""
    if tower not in TOWERS:
        raise TesseraError(f"tower={tower!r}: choose 'a' or 'b'")
    root = Path(ref)
    for candidate in (root / "model" / f"tower_{tower}", root / f"tower_{tower}"):
        if (candidate / HEAD_JSON).is_file():
            return candidate
    raise TesseraError(f"{root}: not an alignment run (no model/tower_{tower}/{HEAD_JSON}; run `tessera align`)")


def load_tower(ref: str | Path, tower: str, device=None) -> AlignedEncoder:
    """``tessera.load(RUN, tower="a"|"b")``: the tower's encoder interface embedding into the shared space."""
    from safetensors.torch import load_file

    from tessera.models.export import TESSERA_JSON
    from tessera.models.load import load_exported
    from tessera.models.spectrum import SPECTRUM_KIND, load_spectrum

    path = tower_dir(ref, tower)
    info = json.loads((path / TESSERA_JSON).read_text())
    backbone = load_spectrum(path) if info.get("backbone") == SPECTRUM_KIND else load_exported(path).module
    head_info = json.loads((path / HEAD_JSON).read_text())
    head = CrossAttentionPooling(head_info["token_dim"], head_info["dim"], head_info["heads"], head_info["hidden"])
    head.load_state_dict(load_file(str(path / HEAD_FILE)))
    encoder = AlignedEncoder(Tower(backbone, head).eval(), name=f"{ref}#tower={tower}")
    if device is not None:
        encoder.to(device)
    return encoder
