"""Frozen-encoder features under the 8 dihedral (D4) transforms, with an incremental on-disk cache.

The linear probe trains on augmented images (seed 000 §9.1 item 2: rot90 k in {0..3} and a flip, no
interpolation). Because the encoder is frozen and in eval mode, the feature of a D4-transformed image is a
pure function of (image, element): extracting all 8 once and looking them up reproduces the naive loop
exactly while running the backbone 8 times per image instead of once per image per epoch.
The cache is keyed by encoder fingerprint, data, preprocessing and layer (DESIGN §7) and written chunk by
chunk with atomic renames, so an interrupted run keeps what it finished.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from tessera.io import atomic_open, atomic_write_text

D4_SIZE = 8
PREPROCESSING = "zscale01-v1"  # bump when datasets.read_normalized changes what an image looks like


def d4_transform(x: torch.Tensor, element: int) -> torch.Tensor:
    """Dihedral element ``element`` in 0..7 applied to x: (..., H, W): rot90 by (element % 4) then, for
    element >= 4, a horizontal flip. Exact pixel permutations (no interpolation), seed 000 §9.1."""
    k = int(element) % 4
    y = torch.rot90(x, k, dims=(-2, -1)) if k else x
    return torch.flip(y, dims=(-1,)) if element >= 4 else y


def d4_batch(x: torch.Tensor, elements) -> torch.Tensor:
    """Per-sample D4 elements: x (B, C, H, W), elements (B,) ints -> (B, C, H, W) (square images).

    Element e is rot90 by e % 4 then a flip for e >= 4, the same group action as the views' dihedral
    operator, which applies it grouped by element."""
    from tessera.dihedral import dihedral

    e = torch.as_tensor(elements, dtype=torch.long)
    return dihedral(x, e % 4, e >= 4)


def encoder_device(encoder, device: str | None = None) -> torch.device:
    if device is not None:
        return torch.device(device)
    try:
        return next(encoder.module.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def resolve_readout(encoder, readout: str) -> str:
    """"auto" -> the encoder's ``default_readout`` (DINOv2: its native pooling) else mean_patch (seed 000 §10.1)."""
    if readout != "auto":
        return readout
    for attr in ("default_readout", "readout"):  # tessera's Encoder keeps its default in `.readout`
        value = getattr(encoder, attr, None)
        if isinstance(value, str) and value:
            return value
    return "mean_patch"


def embed_images(encoder, images: torch.Tensor, readout: str, layer: int, device) -> np.ndarray:
    """images (B, C, H, W) in [0, 1] -> (B, D) float32 numpy, encoder in eval mode without grad."""
    with torch.no_grad():
        out = encoder.embed(images.to(device), readout=readout, layer=layer)
    return out.detach().float().cpu().numpy()


def embed_set(encoder, ls, indices, element: int, readout: str, layer: int, batch_size: int, device) -> np.ndarray:
    """Features of ``ls`` images ``indices`` under D4 ``element``: (n, D); batches never mix image shapes."""
    indices = np.asarray(indices)
    out: dict[int, np.ndarray] = {}
    for group in ls.shape_groups(indices):
        for s in range(0, len(group), batch_size):
            idx = group[s : s + batch_size]
            feats = embed_images(encoder, d4_transform(ls.batch(idx), element), readout, layer, device)
            out.update(zip(idx.tolist(), feats))
    return np.stack([out[int(i)] for i in indices])


class FeatureCache:
    """A folder of ``chunk_<start>_<stop>.npy`` arrays (E, stop-start, D) for one key; ``key.json`` records the key."""

    def __init__(self, root: str | Path, key: dict):
        text = json.dumps(key, sort_keys=True, default=str)
        self.key = key
        self.dir = Path(root) / hashlib.sha256(text.encode()).hexdigest()[:24]
        self.dir.mkdir(parents=True, exist_ok=True)
        key_file = self.dir / "key.json"
        if not key_file.exists():
            atomic_write_text(key_file, text)

    def path(self, start: int, stop: int) -> Path:
        return self.dir / f"chunk_{start:07d}_{stop:07d}.npy"

    def load(self, start: int, stop: int) -> np.ndarray | None:
        p = self.path(start, stop)
        return np.load(p) if p.exists() else None

    def save(self, start: int, stop: int, array: np.ndarray) -> None:
        p = self.path(start, stop)
        with atomic_open(p) as f:  # a chunk is either complete or absent
            np.save(f, array)


def cache_key(encoder, ls, readout: str, layer: int, n_elements: int) -> dict:
    """Everything that changes a feature: weights+config, data, preprocessing, readout, layer, D4 set."""
    return {
        "fingerprint": str(encoder.fingerprint),
        "data": ls.data_key,
        "n": len(ls),
        "preprocessing": PREPROCESSING,
        "image_size": getattr(encoder, "image_size", None),
        "readout": readout,
        "layer": int(layer),
        "elements": int(n_elements),
    }


def supports_layers(encoder) -> bool:
    """True when ``encoder.embed`` takes ``layers=`` (one forward pass for several blocks, DESIGN §3.3)."""
    import inspect

    try:
        return "layers" in inspect.signature(encoder.embed).parameters
    except (TypeError, ValueError):
        return False


def embed_images_layers(encoder, images: torch.Tensor, readout: str, layers: list[int], device) -> dict[int,
    np.ndarray]:
    """images (B, C, H, W) -> {block: (B, D) float32 numpy}, keyed as ``layers`` asks (-1 stays -1): one forward
    when the encoder supports ``layers=``, which keys its blocks 0-based."""
    if not supports_layers(encoder):
        return {layer: embed_images(encoder, images, readout, layer, device) for layer in layers}
    with torch.no_grad():
        out = encoder.embed(images.to(device), readout=readout, layers=list(layers))
    depth = getattr(encoder, "num_layers", None)
    return {layer: out[layer % depth if layer < 0 and depth else layer].detach().float().cpu().numpy()
            for layer in layers}


def embed_set_layers(encoder, ls, indices, element: int, readout: str, layers: list[int], batch_size: int,
                     device) -> dict[int, np.ndarray]:
    """Like :func:`embed_set` for several blocks at once: {block: (n, D)}."""
    indices = np.asarray(indices)
    out: dict[int, dict[int, np.ndarray]] = {layer: {} for layer in layers}
    for group in ls.shape_groups(indices):
        for s in range(0, len(group), batch_size):
            idx = group[s : s + batch_size]
            feats = embed_images_layers(encoder, d4_transform(ls.batch(idx), element), readout, layers, device)
            for layer in layers:
                out[layer].update(zip(idx.tolist(), feats[layer]))
    return {layer: np.stack([out[layer][int(i)] for i in indices]) for layer in layers}


def extract_layer_features(
    encoder,
    ls,
    layers,
    readout: str = "mean_patch",
    d4: bool = True,
    cache_root: str | Path | None = None,
    chunk_size: int = 64,
    device=None,
    progress: bool = False,
) -> dict[int, np.ndarray]:
    """Features of every image of ``ls`` at every block in ``layers`` (0-based): {block: (E, N, D) float32}.

    Blocks missing from the cache are computed together, one encoder pass per batch and D4 element (so a depth
    sweep costs one extraction); each block is cached under its own key (the same key as a single-block
    :func:`extract_features`), chunk by chunk.
    """
    from tessera.progress import progress_bar

    layers = sorted({int(layer) for layer in layers})
    device = encoder_device(encoder, device)
    elements = range(D4_SIZE) if d4 else range(1)
    caches = {layer: FeatureCache(cache_root, cache_key(encoder, ls, readout, layer,
                                                        len(elements))) if cache_root else None
              for layer in layers}
    chunks: dict[int, list[np.ndarray]] = {layer: [] for layer in layers}
    starts = range(0, len(ls), chunk_size)
    label = f"layer {layers[0]}" if len(layers) == 1 else f"{len(layers)} layers"
    for start in progress_bar(starts, desc=f"features ({label})", disable=None if progress else True, leave=False):
        stop = min(start + chunk_size, len(ls))
        blocks = {layer: caches[layer].load(start, stop) if caches[layer] is not None else None for layer in layers}
        missing = [layer for layer in layers if blocks[layer] is None]
        if missing:
            idx = np.arange(start, stop)
            per_element = [embed_set_layers(encoder, ls, idx, e, readout, missing, chunk_size,
                                            device) for e in elements]
            for layer in missing:
                blocks[layer] = np.stack([pe[layer] for pe in per_element])
                if caches[layer] is not None:
                    caches[layer].save(start, stop, blocks[layer])
        for layer in layers:
            chunks[layer].append(blocks[layer])
    return {layer: np.concatenate(chunks[layer], axis=1).astype(np.float32) for layer in layers}


def extract_features(
    encoder,
    ls,
    layer: int = -1,
    readout: str = "mean_patch",
    d4: bool = True,
    cache_root: str | Path | None = None,
    chunk_size: int = 64,
    device=None,
    progress: bool = False,
) -> np.ndarray:
    """Features of every image of ``ls`` under every D4 element (``d4``) or the identity only.

    Returns (E, N, D) float32 with E = 8 (element e as in :func:`d4_transform`) or 1.
    """
    return extract_layer_features(encoder, ls, [layer], readout, d4, cache_root, chunk_size, device,
                                  progress)[int(layer)]


class FeatureProvider:
    """Cached features of one encoder on one :class:`EvalData`, shared by every protocol and layer of a run.

    ``get(split, layer, d4)`` -> (E, N, D). The first request of a (split, d4) extracts every block in
    ``blocks`` (the layers the run will ask for, and the ones ``concat_last`` needs) in one pass; later requests
    are lookups. The identity features are taken from the D4 ones when those are already in memory (element 0 is
    the identity). With ``concat_last = K`` the feature at block l is the concatenation of blocks l-K+1..l.
    """

    def __init__(self, encoder, data, readout: str, blocks, cache_root, chunk_size: int = 64, device=None,
                 progress: bool = False, concat_last: int = 1):
        self.encoder, self.data, self.readout = encoder, data, readout
        self.concat_last = int(concat_last)
        self.blocks = sorted({b for layer in blocks for b in self._parts(int(layer))})
        self.common = dict(cache_root=cache_root, chunk_size=chunk_size, device=device, progress=progress)
        self._store: dict[tuple[str, bool], dict[int, np.ndarray]] = {}

    def _parts(self, layer: int) -> list[int]:
        if layer - self.concat_last + 1 < 0:
            from tessera.errors import ConfigError

            raise ConfigError(f"config key 'concat_last': {self.concat_last} blocks ending at block {layer} start "
                              "before block 0")
        return list(range(layer - self.concat_last + 1, layer + 1))

    def _set(self, split: str):
        return self.data.train if split == "train" or self.data.test is None else self.data.test

    def _raw(self, split: str, d4: bool) -> dict[int, np.ndarray]:
        key = (split, d4)
        if key not in self._store:
            if not d4 and (split, True) in self._store:
                self._store[key] = {b: f[:1] for b, f in self._store[(split, True)].items()}
            else:
                self._store[key] = extract_layer_features(self.encoder, self._set(split), self.blocks, self.readout,
                                                          d4=d4, **self.common)
        return self._store[key]

    def get(self, split: str, layer: int, d4: bool = False) -> np.ndarray:
        """(E, N, D·concat_last) features of the train or test images at block ``layer`` (0-based)."""
        raw = self._raw(split, d4)
        parts = self._parts(int(layer))
        missing = [b for b in parts if b not in raw]
        if missing:  # a block outside the announced set: extract it (and keep it)
            raw.update(extract_layer_features(self.encoder, self._set(split), missing, self.readout, d4=d4,
                                              **self.common))
        return np.concatenate([raw[b] for b in parts], axis=-1) if len(parts) > 1 else raw[parts[0]]


def fold_standardizer(train_feats: np.ndarray, eps: float = 1e-6):
    """z-scoring fitted on training features only: train_feats (..., N, D) -> function mapping (..., D) arrays.

    Used by the optional ``standardize`` switch of the probe and k-NN. On sparse images the mean-pooled features
    are dominated by identical empty-sky tokens, so the informative variation is tiny next to a large common
    offset; z-scoring is an affine map of the features, so the probe remains a linear classifier of them.
    """
    flat = np.asarray(train_feats, dtype=np.float64).reshape(-1, np.shape(train_feats)[-1])
    mean, std = flat.mean(axis=0), flat.std(axis=0) + eps
    return lambda x: ((np.asarray(x, dtype=np.float64) - mean) / std).astype(np.float32)
