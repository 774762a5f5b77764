"""A 1-D transformer encoder for spectra (seed 003 §3.2, App. B2), behind the same encoder interface as images.

Input contract (next to DESIGN §3.1's images): a batch of spectra ``(B, C, L)`` float32 on one wavelength or
frequency grid of L channels (C = 1 for a flux spectrum); a missing or flagged channel is NaN (non-finite), so the
mask travels with the data and every step below respects it.

Per spectrum (seed 003 §3.2): Z-score with the mean and std of its valid channels (the shape carries the physics,
the amplitude is given to the model separately: the mean and log-std become one extra "stats" token, AstroCLIP's
appended mean/std); invalid channels become 0 with a validity channel beside them; overlapping patches of width 20,
stride 10 (``x.unfold``) are embedded linearly; a patch with no valid channel is padding, masked out of every
attention layer (``src_key_padding_mask``) and of the cross-attention head. Then CLS + stats + patches + learned
positions -> pre-norm transformer blocks -> final LayerNorm.

Masked modelling (seed 003 §3.2) trains :class:`SpectrumMaskedModel`: the encoder and a linear patch decoder; the
loss and the segment masks are the objective's (``tessera.objectives.spectrum``).

``SpectrumEncoder.forward(x, layer=-1)`` returns an :class:`~tessera.models.encoder.EncoderOutput` (the stats token
as its one "register"), so ``readout`` works as for images; :meth:`SpectrumEncoder.token_sequence` gives all tokens
and the padding mask for pooling heads. :func:`export_spectrum` / :func:`load_spectrum` save and read it as a
directory with ``tessera.json`` (backbone "spectrum") and ``model.safetensors``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from tessera.models.encoder import EncoderOutput

SPECTRUM_KIND = "spectrum"


def zscore_spectra(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """x (B, C, L) with NaN = missing -> (z (B, C, L) with 0 at missing, valid (B, C, L) float, stats (B, 2C)).

    stats = (mean, log std) of the valid channels per spectrum and channel; std floored at 1e-6 (a flat spectrum
    stays finite)."""
    valid = torch.isfinite(x)
    v = valid.to(x.dtype)
    count = v.sum(-1, keepdim=True).clamp_min(1.0)
    filled = torch.where(valid, x, torch.zeros_like(x))
    mean = filled.sum(-1, keepdim=True) / count
    var = (torch.where(valid, x - mean, torch.zeros_like(x)) ** 2).sum(-1, keepdim=True) / count
    std = var.sqrt().clamp_min(1e-6)
    z = torch.where(valid, (filled - mean) / std, torch.zeros_like(x))
    stats = torch.cat([mean.squeeze(-1), std.log().squeeze(-1)], dim=-1)
    return z, v, stats


def num_patches(length: int, width: int, stride: int) -> int:
    if length < width:
        raise ValueError(f"spectrum length {length} is shorter than the patch width {width}")
    return (length - width) // stride + 1


class SpectrumEncoder(nn.Module):
    """(B, C, L) spectra -> tokens of width ``dim``: CLS, one stats token, P = (L - width) // stride + 1 patches."""

    input_kind = "spectrum"  # Encoder.prepare takes (B, C, L) spectra for it, not images

    def __init__(self, length: int, in_channels: int = 1, width: int = 20, stride: int = 10, dim: int = 128,
                 depth: int = 4, heads: int = 4, mlp_ratio: float = 4.0):
        super().__init__()
        self.length, self.in_channels, self.width, self.stride = int(length), int(in_channels), int(width), int(stride)
        self.dim, self.depth, self.heads, self.mlp_ratio = int(dim), int(depth), int(heads), float(mlp_ratio)
        self.num_patch_tokens = num_patches(self.length, self.width, self.stride)
        self.patch_embed = nn.Linear(2 * in_channels * width, dim)  # values and validity of each channel
        self.stats_embed = nn.Linear(2 * in_channels, dim)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.position_embeddings = nn.Parameter(torch.randn(1, 2 + self.num_patch_tokens, dim) * 0.02)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(dim, heads, int(dim * mlp_ratio), dropout=0.0, activation="gelu",
                                       batch_first=True, norm_first=True)
            for _ in range(depth)
        )
        self.final_norm = nn.LayerNorm(dim)

    # -- facts shared with the image encoders ---------------------------------------------------------------
    @property
    def hidden_size(self) -> int:
        return self.dim

    @property
    def num_layers(self) -> int:
        return self.depth

    @property
    def num_registers(self) -> int:
        return 1  # the stats token

    @property
    def image_size(self) -> int:
        """The input length L (the image encoders' input size; kept under this name for the interface)."""
        return self.length

    @property
    def patch_size(self) -> int:
        return self.stride

    # -- forward --------------------------------------------------------------------------------------------
    def patchify(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, C, L) -> patch features (B, P, 2*C*width), patch padding (B, P) bool, stats (B, 2C)."""
        if x.ndim != 3 or x.shape[1] != self.in_channels or x.shape[2] != self.length:
            raise ValueError(f"spectra must be (B, {self.in_channels}, {self.length}), got {tuple(x.shape)}")
        z, valid, stats = zscore_spectra(x.float())
        zp = z.unfold(-1, self.width, self.stride)  # (B, C, P, width)
        vp = valid.unfold(-1, self.width, self.stride)
        padding = vp.sum(dim=(1, 3)) == 0  # (B, P): no valid channel in the patch
        feats = torch.cat([zp, vp], dim=1).permute(0, 2, 1, 3).flatten(2)  # (B, P, 2*C*width)
        return feats, padding, stats

    def _hidden(self, x: torch.Tensor, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        feats, padding, stats = self.patchify(x)
        b = x.shape[0]
        tokens = torch.cat([self.cls_token.expand(b, -1, -1), self.stats_embed(stats)[:, None],
                            self.patch_embed(feats)], dim=1) + self.position_embeddings
        full_pad = torch.cat([padding.new_zeros(b, 2), padding], dim=1)  # CLS and stats are never padding
        h = tokens
        for block in self.blocks[: stop + 1]:
            h = block(h, src_key_padding_mask=full_pad)
        return self.final_norm(h), full_pad

    def _stop(self, layer: int) -> int:
        if not -self.depth <= int(layer) < self.depth:
            raise ValueError(f"layer {layer} out of range for a {self.depth}-block encoder")
        return int(layer) % self.depth

    def token_sequence(self, x: torch.Tensor, layer: int = -1) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, C, L) -> all tokens (B, 2 + P, dim) and padding (B, 2 + P) bool (True = no valid channel)."""
        return self._hidden(x, self._stop(layer))

    def forward(self, x: torch.Tensor, layer: int = -1, **_unused) -> EncoderOutput:
        """x (B, C, L) -> EncoderOutput: cls (B, dim), registers = stats token (B, 1, dim), patches (B, P, dim).

        Padded patches are replaced by the mean of the valid ones, so ``readout("mean_patch")`` averages valid
        patches only."""
        h, pad = self._hidden(x, self._stop(layer))
        patches, ppad = h[:, 2:], pad[:, 2:]
        keep = (~ppad).unsqueeze(-1).to(h.dtype)
        mean = (patches * keep).sum(1, keepdim=True) / keep.sum(1, keepdim=True).clamp_min(1.0)
        patches = torch.where(ppad.unsqueeze(-1), mean.expand_as(patches), patches)
        return EncoderOutput(cls=h[:, 0], registers=h[:, 1:2], patches=patches)

    def settings(self) -> dict:
        return {"backbone": SPECTRUM_KIND, "length": self.length, "in_channels": self.in_channels,
                "width": self.width, "stride": self.stride, "dim": self.dim, "depth": self.depth,
                "heads": self.heads, "mlp_ratio": self.mlp_ratio}


class SpectrumMaskedModel(nn.Module):
    """Encoder + linear patch decoder: x (B, C, L) -> reconstruction (B, C, L) of the Z-scored spectrum.

    Each patch token is decoded to its ``C * width`` channels; overlapping patches are averaged per channel."""

    def __init__(self, encoder: SpectrumEncoder):
        super().__init__()
        self.encoder = encoder
        self.decoder = nn.Linear(encoder.dim, encoder.in_channels * encoder.width)
        # How many patches cover each channel (constant for the architecture): the average's denominator.
        cover = torch.zeros(encoder.length)
        for i in range(encoder.num_patch_tokens):
            cover[i * encoder.stride : i * encoder.stride + encoder.width] += 1
        self.register_buffer("cover", cover.clamp_min(1.0), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        enc = self.encoder
        tokens, _ = enc.token_sequence(x)
        patches = self.decoder(tokens[:, 2:])  # (B, P, C * width)
        b, p = patches.shape[:2]
        patches = patches.view(b, p, enc.in_channels, enc.width).permute(0, 2, 3, 1)  # (B, C, width, P)
        # fold = the sum of every patch's prediction at the channels it covers (overlap-add), in one call.
        out = nn.functional.fold(patches.reshape(b, enc.in_channels * enc.width, p), output_size=(1, enc.length),
                                 kernel_size=(1, enc.width), stride=(1, enc.stride))
        return out.view(b, enc.in_channels, enc.length) / self.cover


def build_spectrum_encoder(cfg, in_channels: int = 1) -> SpectrumEncoder:
    """The encoder of a ``model.spectrum`` section (models/spectrum_config.py) whose ``length`` is known."""
    if cfg.length is None:
        raise ValueError("model.spectrum.length is not set (tessera pretrain sets it from the spectrum store)")
    return SpectrumEncoder(cfg.length, in_channels=in_channels, width=cfg.width, stride=cfg.stride, dim=cfg.dim,
                           depth=cfg.depth, heads=cfg.heads, mlp_ratio=cfg.mlp_ratio)


def export_spectrum(encoder: SpectrumEncoder, out_dir: str | Path, readout: str = "mean_patch") -> Path:
    """Write ``tessera.json`` (architecture, readout) and ``model.safetensors`` into ``out_dir``."""
    from safetensors.torch import save_file

    from tessera.models.export import FORMAT_VERSION, TESSERA_JSON

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().cpu().contiguous() for k, v in encoder.state_dict().items()}
    save_file(weights, str(out / "model.safetensors"))
    info = {"format_version": FORMAT_VERSION, **encoder.settings(), "readout": readout}
    (out / TESSERA_JSON).write_text(json.dumps(info, indent=2))
    return out


def spectrum_from_settings(info: dict) -> SpectrumEncoder:
    keys = ("length", "in_channels", "width", "stride", "dim", "depth", "heads", "mlp_ratio")
    return SpectrumEncoder(**{k: info[k] for k in keys})


def load_spectrum(path: str | Path) -> SpectrumEncoder:
    """The encoder of a directory written by :func:`export_spectrum`."""
    from safetensors.torch import load_file

    from tessera.models.export import TESSERA_JSON

    path = Path(path)
    encoder = spectrum_from_settings(json.loads((path / TESSERA_JSON).read_text()))
    encoder.load_state_dict(load_file(str(path / "model.safetensors")))
    return encoder.eval()
