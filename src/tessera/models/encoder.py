"""The ViT encoder with optional register tokens, composed from Hugging Face submodules (seed 000 §5.1, §5.3).

``ViTEncoder`` wraps a ``transformers`` backbone (ViTMAEModel, Dinov2Model or Dinov2WithRegistersModel)
and runs its parts explicitly: embeddings -> [insert registers after CLS] -> every block -> the final
LayerNorm. Composing the backbone's own submodules (instead of overriding its forward) keeps the HF
parameter names (``backbone.*``), so with R = 0 the state dict is exactly a ViTMAEModel's, and it makes the
final norm impossible to skip (DESIGN §7 pitfall: registers must not drop the final LayerNorm).

``Encoder`` is the stable feature interface of DESIGN §3.3 (``embed``, ``tokens``, ``features``). It calls its
module only through ``forward(images01, layer=...) -> EncoderOutput`` and, for several blocks from one pass,
``forward_layers(images01, layers) -> {block: EncoderOutput}`` (a module without it falls back to one
``forward`` per block), and ``attention_maps(images01, layer)`` for the diagnostics.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tessera.models.adapter import InputAdapter

READOUTS = ("mean_patch", "cls", "mean_patch+cls")


def random_masking(
    seq: torch.Tensor, mask_ratio: float, noise: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sample random masking by argsort of noise, as in ViT-MAE (He et al. 2022; HF ``random_masking``).

    seq: (N, L, D); noise: (N, L) or None (uniform). Returns kept tokens (N, L_keep, D) with
    L_keep = int(L * (1 - mask_ratio)), mask (N, L) with 1 = masked (removed), ids_restore (N, L).
    """
    n, length, dim = seq.shape
    len_keep = int(length * (1 - mask_ratio))
    if noise is None:
        noise = torch.rand(n, length, device=seq.device)
    if noise.shape != (n, length):
        raise ValueError(f"noise must have shape (N, L) = {(n, length)}, got {tuple(noise.shape)}")
    ids_shuffle = torch.argsort(noise.to(seq.device), dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    ids_keep = ids_shuffle[:, :len_keep]
    kept = torch.gather(seq, 1, ids_keep.unsqueeze(-1).expand(-1, -1, dim))
    mask = torch.ones(n, length, device=seq.device, dtype=seq.dtype)
    mask[:, :len_keep] = 0
    mask = torch.gather(mask, 1, ids_restore)
    return kept, mask, ids_restore


@dataclass
class EncoderOutput:
    """Normalized last-layer (or chosen-layer) tokens, split by role.

    cls: (N, D); registers: (N, R, D) (R may be 0); patches: (N, L', D) with L' = visible patches
    (all L in their grid order when unmasked); mask, ids_restore: (N, L) when masked, else None.
    """

    cls: torch.Tensor
    registers: torch.Tensor
    patches: torch.Tensor
    mask: torch.Tensor | None = None
    ids_restore: torch.Tensor | None = None

    def readout(self, kind: str = "mean_patch") -> torch.Tensor:
        """(N, D): mean over patch tokens excluding CLS and registers (seed 000 Eq. 1), or the CLS token;
        (N, 2D) for "mean_patch+cls" (the two concatenated, DINO's linear-evaluation readout)."""
        if kind == "mean_patch":
            return self.patches.mean(dim=1)
        if kind == "cls":
            return self.cls
        if kind == "mean_patch+cls":
            return torch.cat([self.patches.mean(dim=1), self.cls], dim=-1)
        raise ValueError(f"unknown readout {kind!r} (choose from {', '.join(READOUTS)})")


class ViTEncoder(nn.Module):
    """Input adapter + HF ViT backbone + ``num_registers`` added register tokens.

    kind: "vit_mae" | "dinov2" | "dinov2_registers". Added registers (vit_mae only) are the parameter
    ``registers`` (1, R, D), inserted right after CLS, seen by every block, and dropped before the MAE
    decoder and patch pooling (seed 000 §5.3). DINOv2-with-registers' own registers are treated the same
    way at readout.
    """

    def __init__(self, backbone: nn.Module, kind: str, adapter: InputAdapter, num_registers: int = 0):
        super().__init__()
        if kind not in ("vit_mae", "dinov2", "dinov2_registers"):
            raise ValueError(f"unknown backbone kind {kind!r}")
        if num_registers and kind != "vit_mae":
            raise ValueError("added register tokens are supported for vit_mae backbones only")
        self.kind = kind
        self.backbone = backbone
        self.adapter = adapter
        self.num_added_registers = int(num_registers)
        config = backbone.config
        if self.num_added_registers:
            # Small random init like the CLS token (std 0.02), so registers differ from each other.
            self.registers = nn.Parameter(torch.randn(1, num_registers, config.hidden_size) * config.initializer_range)
        else:
            self.register_parameter("registers", None)
        mask_token = getattr(getattr(backbone, "embeddings", None), "mask_token", None)
        if kind != "vit_mae" and isinstance(mask_token, nn.Parameter):
            # DINOv2's iBOT mask token is never used here (no masked inputs): frozen, so DDP sees no
            # trainable parameter without a gradient.
            mask_token.requires_grad_(False)
        if adapter.out_channels != config.num_channels:
            raise ValueError(
                f"input adapter outputs {adapter.out_channels} channels, backbone expects {config.num_channels}"
            )

    # -- architecture facts -------------------------------------------------------------------------------
    @property
    def config(self):
        return self.backbone.config

    @property
    def hidden_size(self) -> int:
        return int(self.config.hidden_size)

    @property
    def num_layers(self) -> int:
        return len(self.blocks)

    @property
    def patch_size(self) -> int:
        return int(self.config.patch_size)

    @property
    def image_size(self) -> int:
        return int(self.config.image_size)

    @property
    def num_native_registers(self) -> int:
        return int(getattr(self.config, "num_register_tokens", 0)) if self.kind == "dinov2_registers" else 0

    @property
    def num_registers(self) -> int:
        """All register tokens in the sequence (added + backbone-native)."""
        return self.num_added_registers + self.num_native_registers

    @property
    def blocks(self) -> nn.ModuleList:
        """The transformer blocks, in order (HF names: ``layers`` for ViT-MAE, ``encoder.layer`` for DINOv2)."""
        if self.kind == "vit_mae":
            return self.backbone.layers
        return self.backbone.encoder.layer

    @property
    def final_norm(self) -> nn.LayerNorm:
        return self.backbone.layernorm

    # -- embeddings ---------------------------------------------------------------------------------------
    def _embed_vit_mae(
        self, x: torch.Tensor, mask_ratio: float, noise: torch.Tensor | None,
        bool_masked_pos: torch.Tensor | None = None, mask_token: torch.Tensor | None = None,
        interpolate_pos_encoding: bool = False,
    ):
        """x: (N, C, S, S) adapted pixels -> (N, 1 + L', D) with CLS first, mask/ids_restore (N, L) or None.

        Mirrors ``ViTMAEEmbeddings.forward`` (patch embed + fixed sin-cos positions, masking, CLS) but with
        the mask ratio as an argument and no shuffle when nothing is masked (HF shuffles even at ratio 0).
        ``bool_masked_pos`` (N, L) replaces the embeddings of masked patches by ``mask_token`` (D,) *in place*
        (iBOT, seed 002 §7; as ``Dinov2Embeddings``), keeping every position. ``interpolate_pos_encoding``
        accepts another input size (multiple of the patch) by bicubic interpolation of the position table
        (DINO's local crops).
        """
        emb = self.backbone.embeddings
        size = emb.image_size
        same = tuple(x.shape[-2:]) == (size[0], size[1])
        if not same and not interpolate_pos_encoding:
            raise ValueError(f"input size {tuple(x.shape[-2:])} does not match the model's {tuple(size)}")
        tokens = emb.patch_embeddings(x)
        if bool_masked_pos is not None:
            if mask_token is None:
                raise ValueError("bool_masked_pos needs a mask_token (D,) for a vit_mae backbone")
            if bool_masked_pos.shape != tokens.shape[:2]:
                raise ValueError(f"bool_masked_pos must be (N, L) = {tuple(tokens.shape[:2])}, got "
                                 f"{tuple(bool_masked_pos.shape)}")
            tokens = torch.where(bool_masked_pos.unsqueeze(-1), mask_token.to(tokens.dtype).view(1, 1, -1), tokens)
        pos = emb.position_embeddings
        if not same:
            pos = emb.interpolate_pos_encoding(tokens.new_empty(1, 1 + tokens.shape[1], tokens.shape[2]), *x.shape[-2:])
        tokens = tokens + pos[:, 1:, :]
        mask = ids_restore = None
        if mask_ratio > 0 or noise is not None:
            tokens, mask, ids_restore = random_masking(tokens, mask_ratio, noise)
        cls = (emb.cls_token + pos[:, :1, :]).expand(tokens.shape[0], -1, -1)
        return torch.cat([cls, tokens], dim=1), mask, ids_restore

    def _insert_registers(self, h: torch.Tensor) -> torch.Tensor:
        """h: (N, 1 + L', D) -> (N, 1 + R + L', D): registers right after CLS (seed 000 §5.3)."""
        if self.registers is None:
            return h
        regs = self.registers.expand(h.shape[0], -1, -1).to(h.dtype)
        return torch.cat([h[:, :1], regs, h[:, 1:]], dim=1)

    def _split(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """h: (N, 1 + R + L', D) -> cls (N, D), registers (N, R, D), patches (N, L', D)."""
        r = self.num_registers
        return h[:, 0], h[:, 1 : 1 + r], h[:, 1 + r :]

    def _check_layers(self, layers) -> list[int]:
        """Block indices (negative counts from the end) -> sorted unique 0-based indices; ValueError if out of range."""
        depth = self.num_layers
        for layer in layers:
            if not -depth <= int(layer) < depth:
                raise ValueError(f"layer {layer} out of range for a {depth}-block encoder")
        return sorted({int(layer) % depth for layer in layers})

    def _hidden_states(self, images01: torch.Tensor, stops: list[int], mask_ratio: float = 0.0,
                       noise: torch.Tensor | None = None, bool_masked_pos: torch.Tensor | None = None,
                       mask_token: torch.Tensor | None = None, interpolate_pos_encoding: bool = False):
        """Run embeddings and blocks 0..max(stops) once; return {block: final-normed hidden (N, T, D)} for every
        block in ``stops``, plus mask and ids_restore (N, L) or None. Masking arguments as in :meth:`forward`."""
        x = self.adapter(images01)
        if self.kind == "vit_mae":
            h, mask, ids_restore = self._embed_vit_mae(x, mask_ratio, noise, bool_masked_pos, mask_token,
                                                       interpolate_pos_encoding)
        else:
            if mask_ratio > 0 or noise is not None:
                raise ValueError("masking is defined for vit_mae backbones only")
            # CLS (+ native registers) + patches, positions interpolated; masked patches -> DINOv2's mask token
            h = self.backbone.embeddings(x, bool_masked_pos=bool_masked_pos)
            mask = ids_restore = None
        h = self._insert_registers(h)
        wanted = set(stops)
        outs = {}
        for i, block in enumerate(self.blocks[: max(stops) + 1]):
            h = block(h, None)
            if i in wanted:
                outs[i] = self.final_norm(h)  # the final LayerNorm is applied to every read block
        return outs, mask, ids_restore

    def forward(
        self,
        images01: torch.Tensor,
        mask_ratio: float = 0.0,
        noise: torch.Tensor | None = None,
        layer: int = -1,
        bool_masked_pos: torch.Tensor | None = None,
        mask_token: torch.Tensor | None = None,
        interpolate_pos_encoding: bool = False,
    ) -> EncoderOutput:
        """images01: (N, C, S, S) in [0, 1] at the model's input size -> EncoderOutput.

        ``mask_ratio`` > 0 (or a ``noise`` (N, L)) keeps only the visible patches (ViT-MAE random masking);
        0 keeps every patch in grid order. ``layer`` picks the block whose output is returned (-1 = last);
        the backbone's final LayerNorm is applied to it in every case. ``bool_masked_pos`` (N, L): in-place mask
        tokens (iBOT; vit_mae takes the token as ``mask_token`` (D,), DINOv2 uses its own); every patch stays in the
        output. ``interpolate_pos_encoding``: accept another input size (DINO's local crops).
        """
        (stop,) = self._check_layers([layer])
        outs, mask, ids_restore = self._hidden_states(images01, [stop], mask_ratio, noise, bool_masked_pos,
                                                      mask_token, interpolate_pos_encoding)
        cls, regs, patches = self._split(outs[stop])
        return EncoderOutput(cls=cls, registers=regs, patches=patches, mask=mask, ids_restore=ids_restore)

    def forward_layers(self, images01: torch.Tensor, layers) -> dict[int, EncoderOutput]:
        """Several blocks from ONE pass: images01 (N, C, S, S) -> {block (0-based): EncoderOutput}.

        Each block's output gets the final LayerNorm, exactly as ``forward(images01, layer=block)`` returns it;
        the keys are the requested blocks taken modulo the depth (-1 -> depth - 1). No masking.
        """
        stops = self._check_layers(layers)
        outs, _, _ = self._hidden_states(images01, stops)
        result = {}
        for stop, h in outs.items():
            cls, regs, patches = self._split(h)
            result[stop] = EncoderOutput(cls=cls, registers=regs, patches=patches)
        return result

    def attention_maps(self, images01: torch.Tensor, layer: int = -1) -> torch.Tensor:
        """Attention weights of block ``layer``: (N, heads, T, T) with T = 1 + R + L (CLS, registers, patches).

        Computed from the block's own attention module (``q_proj``/``k_proj`` on its pre-norm input, softmax of
        q k^T / sqrt(d_head)), i.e. the eager path: fused (SDPA/flash) kernels return no weights.
        """
        (stop,) = self._check_layers([layer])
        attn = self.blocks[stop].attention
        captured = {}
        handle = attn.register_forward_pre_hook(lambda _m, args: captured.setdefault("h", args[0]))
        try:
            self._hidden_states(images01, [stop])
        finally:
            handle.remove()
        h = captured["h"]  # (N, T, D) after the block's pre-attention LayerNorm
        n, t, _ = h.shape
        heads = int(self.config.num_attention_heads)
        q = attn.q_proj(h).view(n, t, heads, -1).transpose(1, 2)
        k = attn.k_proj(h).view(n, t, heads, -1).transpose(1, 2)
        return torch.softmax((q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5, dim=-1, dtype=torch.float32)

    def settings(self) -> dict:
        """JSON-safe description saved in tessera.json."""
        return {
            "backbone": self.kind,
            "registers": self.num_added_registers,
            "image_size": self.image_size,
            "adapter": self.adapter.to_dict(),
        }


_BLOCK_RE = re.compile(r"(?:^|\.)(?:layers|layer)\.(\d+)\.")
_EMBED_RE = re.compile(
    r"(?:^|\.)(?:embeddings|cls_token|registers|register_tokens|mask_token|position_embeddings)(?:\.|$)"
)
_FINAL_NORM_RE = re.compile(r"(?:^|\.)backbone\.layernorm\.|^layernorm\.")


def prepare_spectra(spectra, length: int, device: torch.device) -> torch.Tensor:
    """spectra: (B, C, L) on the encoder's grid (NaN = missing channel; DESIGN §3.1b) -> float32 on ``device``.
    Never resampled here: a spectrum's grid is the store's (``tessera ingest --spectra`` resamples onto it)."""
    x = torch.as_tensor(spectra)
    if x.ndim != 3:
        raise ValueError(f"spectra must be a batch (B, C, L), got shape {tuple(x.shape)}")
    if x.shape[-1] != length:
        raise ValueError(f"spectra have {x.shape[-1]} channels, the encoder expects {length} (its store's grid)")
    return x.to(device, dtype=torch.float32)


def layer_id_of(param_name: str, num_layers: int) -> int:
    """Depth of a parameter for layer-wise lr decay.

    0 = embeddings, position embeddings, CLS and registers; i + 1 = block i; the final norm -> the last block
    (``num_layers``, DESIGN §7 pitfall); anything else (a head added on top) -> ``num_layers + 1``.
    """
    block = _BLOCK_RE.search(param_name)
    if block:
        return int(block.group(1)) + 1
    if _EMBED_RE.search(param_name):
        return 0
    if _FINAL_NORM_RE.search(param_name):
        return num_layers
    return num_layers + 1


def _fingerprint(module: nn.Module, extra: dict) -> str:
    """sha256 (16 hex) of the state dict (names, dtypes, shapes, bytes) and a JSON description."""
    digest = hashlib.sha256(json.dumps(extra, sort_keys=True).encode())
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        # reshape(-1): a 0-d tensor (BatchNorm's num_batches_tracked) cannot be viewed as bytes
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()[:16]


class Encoder:
    """The feature interface evaluation uses (DESIGN §3.3). Wraps a :class:`ViTEncoder` or a
    :class:`~tessera.models.conv.ConvEncoder` (``module``; for the latter ``layer`` picks a stage and
    ``embed(layer=i)`` has that stage's width, ``module.feature_dim(i)``, not ``hidden_size``).

    ``readout`` is the default readout: "mean_patch" for ViT-MAE and tessera models (seed 000 Eq. 1), "cls"
    (the normalized CLS = HF pooler_output) for plain DINOv2 checkpoints (seed 000 §10.1).
    """

    def __init__(self, module: ViTEncoder, readout: str = "mean_patch", name: str = ""):
        if readout not in READOUTS:
            raise ValueError(f"unknown readout {readout!r} (choose from {', '.join(READOUTS)})")
        self.module = module
        self.readout = readout
        self.name = name
        self._fingerprint_cache: tuple[tuple, str] | None = None

    # -- facts --------------------------------------------------------------------------------------------
    @property
    def image_size(self) -> int:
        return self.module.image_size

    @property
    def num_layers(self) -> int:
        return self.module.num_layers

    @property
    def hidden_size(self) -> int:
        return self.module.hidden_size

    @property
    def num_registers(self) -> int:
        return self.module.num_registers

    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    def _weights_state(self) -> tuple:
        """Cheap identity of the current weights: (name, data_ptr, version counter, shape, dtype) per state entry.

        Every in-place write through autograd-visible tensors (optimizer steps, ``load_state_dict``, ``copy_``
        under no_grad) bumps a tensor's ``_version``; moving or replacing a tensor changes its ``data_ptr``.
        Writes through ``param.data`` bypass the version counter: call :meth:`invalidate_fingerprint` after them.
        """
        return tuple(
            (name, t.data_ptr(), t._version, tuple(t.shape), str(t.dtype))
            for name, t in self.module.state_dict(keep_vars=True).items()
        ) + ((self.readout,),)

    @property
    def fingerprint(self) -> str:
        """Stable hash of weights + settings. Hashing every weight is costly (a ViT-B is 350 MB), so the hash
        is computed once per set of weights and reused until :meth:`_weights_state` changes."""
        state = self._weights_state()
        if self._fingerprint_cache is None or self._fingerprint_cache[0] != state:
            value = _fingerprint(self.module, {**self.module.settings(), "readout": self.readout})
            self._fingerprint_cache = (state, value)
        return self._fingerprint_cache[1]

    def invalidate_fingerprint(self) -> None:
        """Forget the cached fingerprint (after writing weights through ``.data``)."""
        self._fingerprint_cache = None

    def to(self, device) -> "Encoder":
        self.module.to(device)
        return self

    def layer_id_of(self, param_name: str) -> int:
        """See :func:`layer_id_of`; names as in ``self.module.named_parameters()``. A module with its own
        ``layer_id_of`` (the conv encoder: stem = 0, stage i = i + 1) decides for itself."""
        own = getattr(self.module, "layer_id_of", None)
        if own is not None:
            return own(param_name)
        return layer_id_of(param_name, self.num_layers)

    # -- features -----------------------------------------------------------------------------------------
    def prepare(self, images) -> torch.Tensor:
        """images: (B, C, H, W) in [0, 1] (tensor or array) -> (B, C, S, S) on the model's device.

        Bicubic resize (align_corners=False) to the input size, then clamp to [0, 1] (bicubic overshoots). A 1-D
        module (``input_kind == "spectrum"``, models/spectrum.py) takes (B, C, L) spectra instead
        (:func:`prepare_spectra`).
        """
        if getattr(self.module, "input_kind", "image") == "spectrum":
            return prepare_spectra(images, self.module.image_size, self.device)
        x = torch.as_tensor(images)
        if x.ndim == 3:
            raise ValueError(f"images must be a batch (B, C, H, W), got shape {tuple(x.shape)}")
        if x.ndim != 4:
            raise ValueError(f"images must have shape (B, C, H, W), got {tuple(x.shape)}")
        x = x.to(self.device, dtype=torch.float32)
        size = self.image_size
        if tuple(x.shape[-2:]) != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False).clamp_(0.0, 1.0)
        return x

    def features(self, images, layer: int = -1, readout: str | None = None) -> torch.Tensor:
        """(B, D) features, differentiable, in the module's current train/eval mode (for fine-tuning)."""
        out = self.module(self.prepare(images), layer=layer)
        return out.readout(readout or self.readout)

    def _layer_outputs(self, x: torch.Tensor, layers) -> dict[int, EncoderOutput]:
        """{block: EncoderOutput} through the module's one-pass ``forward_layers`` (or one forward per block)."""
        depth = self.num_layers
        for layer in layers:
            if not -depth <= int(layer) < depth:
                raise ValueError(f"layer {layer} out of range for a {depth}-block encoder")
        blocks = sorted({int(layer) % depth for layer in layers})
        if hasattr(self.module, "forward_layers"):
            return self.module.forward_layers(x, blocks)
        return {b: self.module(x, layer=b) for b in blocks}

    def embed(self, images, readout: str | None = None, layer: int = -1, layers=None):
        """(B, D) features without gradients, in eval mode (the mode is restored afterwards).

        With ``layers`` (a list of block indices, negative from the end) returns {block (0-based): (B, D)} from
        one forward pass instead; each entry equals ``embed(images, readout, layer=block)``.
        """
        with _eval_no_grad(self.module):
            if layers is None:
                return self.features(images, layer=layer, readout=readout)
            outs = self._layer_outputs(self.prepare(images), list(layers))
            return {b: o.readout(readout or self.readout) for b, o in outs.items()}

    def tokens(self, images, layer: int = -1, layers=None):
        """dict(cls (B, D), registers (B, R, D), patches (B, L, D)), no gradients, eval mode.

        With ``layers``: {block (0-based): that dict} from one forward pass."""
        with _eval_no_grad(self.module):
            x = self.prepare(images)
            if layers is None:
                out = self.module(x, layer=layer)
                return {"cls": out.cls, "registers": out.registers, "patches": out.patches}
            outs = self._layer_outputs(x, list(layers))
        return {b: {"cls": o.cls, "registers": o.registers, "patches": o.patches} for b, o in outs.items()}

    def attention(self, images, layer: int = -1) -> torch.Tensor:
        """Attention weights (B, heads, T, T) of block ``layer`` (T = 1 + R + L: CLS, registers, patches)."""
        with _eval_no_grad(self.module):
            return self.module.attention_maps(self.prepare(images), layer=layer)


class _eval_no_grad:
    """Context: module in eval mode under torch.no_grad, previous mode restored on exit."""

    def __init__(self, module: nn.Module):
        self.module = module
        self.was_training = module.training
        self.no_grad = torch.no_grad()

    def __enter__(self):
        self.module.eval()
        self.no_grad.__enter__()

    def __exit__(self, *exc):
        self.no_grad.__exit__(*exc)
        self.module.train(self.was_training)
        return False
