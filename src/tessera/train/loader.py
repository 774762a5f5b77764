"""Reading the cutouts of each micro-batch ahead of the training step (DESIGN §2.1 ``sampler -> DataLoader ->
device-side views``).

Three parts, each a pure function of its inputs so the data stream does not depend on the number of workers:

- *which* cutouts: the engine's ``StepSampler`` gives micro-batch ``m``'s indices; :func:`spare_indices` adds
  ``P`` spare cutouts, a pure function of (seed, rank, stage, m), that replace samples whose views are empty
  (seed 000 §7.1.1) without a second read (views/sampling.py ``views_from_pool``);
- *reading*: :class:`MicroBatchReads` is a map-style Dataset whose item ``m`` is those ``B + P`` cutouts
  collated into one float32 tensor (memory-mapped float16 shards, converted once); a ``DataLoader`` with
  ``train.loader_workers`` processes and ``train.prefetch_factor`` reads ahead, pinning on CUDA; with a
  store that fits on the device, :class:`ResidentImages` keeps it there and reading is one gather;
- *views*: generated batched on the training device by the engine (views/generator.py), seeded by the step.

Nothing here knows models or losses; the engine only asks :class:`MicroBatchStream` for micro-batch ``m``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from tessera.errors import ConfigError, TesseraError
from tessera.seeding import mix_seed

IndicesOf = Callable[[int], "torch.Tensor | list[int]"]  # micro-batch number -> its cutout indices

SPARE_STREAM = 7_919  # mixed into the spare cutouts' seed so it never equals a view generator's stream


def spare_count(batch: int, fraction: float) -> int:
    """Spare cutouts read with a micro-batch of ``batch``: ceil(fraction * batch) (0 when fraction is 0)."""
    return int(math.ceil(fraction * batch)) if fraction > 0 else 0


def spare_indices(size: int, count: int, seed: int, rank: int, stage: int, micro: int) -> torch.Tensor:
    """``count`` uniform cutout indices in [0, size), a pure function of (seed, rank, stage, micro). -> (count,)."""
    g = torch.Generator().manual_seed(mix_seed(seed, rank, stage, micro, SPARE_STREAM))
    return torch.randint(0, size, (count,), generator=g)


def source_of(store, index: int) -> str:
    """The source file of cutout ``index`` from the store's manifest (``?`` when the store keeps none)."""
    try:
        return str(store.row(index).get("path", "?"))
    except Exception:  # the provenance lookup must not hide the original error it decorates
        return "?"


def store_rank(store) -> int:
    """The spatial rank of the store's samples: 2 for (C, H, W) cutouts, 1 for (C, L) spectra (corpus/store.py
    ``CutoutStore.ndim``; stores without one are image stores)."""
    return int(getattr(store, "ndim", 2))


def read_cutouts(store, indices: np.ndarray) -> torch.Tensor | list[torch.Tensor]:
    """Cutouts ``indices`` as one (N, C, H, W) float32 tensor, or a list of (C, H_i, W_i) when sizes differ; for a
    spectrum store (rank 1) one (N, C, L) tensor (a (C, L) spectrum is never taken for a one-channel image).

    Any exception names the cutout index and its source file (DESIGN §7: never swallow loading errors).
    """
    image = store_rank(store) == 2
    arrays = []
    for i in indices:
        i = int(i)
        try:
            arr = np.asarray(store.get_array(i), dtype=np.float32)
        except Exception as exc:
            raise TesseraError(
                f"cutout {i} (source {source_of(store, i)}): {type(exc).__name__}: {exc}"
            ) from exc
        arrays.append(arr[None] if arr.ndim == 2 and image else arr)
    if len({a.shape for a in arrays}) == 1:
        return torch.from_numpy(np.stack(arrays))
    return [torch.from_numpy(a) for a in arrays]


@dataclass
class ReadBatch:
    """The cutouts of micro-batch ``micro``: indices (B + P,) long and images (B + P, C, H, W) float32 (a list
    of (C, H_i, W_i) when the store mixes sizes); the first ``batch`` are the sampled ones, the rest spares."""

    micro: int
    batch: int
    indices: torch.Tensor
    images: torch.Tensor | list[torch.Tensor]

    def pin_memory(self) -> "ReadBatch":  # called by the DataLoader's pin thread (pin_memory=True)
        images = self.images
        images = images.pin_memory() if isinstance(images, torch.Tensor) else [t.pin_memory() for t in images]
        return ReadBatch(self.micro, self.batch, self.indices.pin_memory(), images)

    def to(self, device: torch.device) -> "ReadBatch":
        """On ``device`` (asynchronous from pinned memory)."""
        images = (self.images.to(device, non_blocking=True) if isinstance(self.images, torch.Tensor)
                  else [t.to(device, non_blocking=True) for t in self.images])
        return ReadBatch(self.micro, self.batch, self.indices.to(device, non_blocking=True), images)


class MicroBatchReads(Dataset):
    """``ds[m] -> ReadBatch`` of micro-batch ``m``: ``indices_of(m)`` (B,) then ``spares`` spare cutouts.

    ``indices_of`` must be a pure function of ``m`` (the engine's StepSampler), which makes the item the same
    in any worker and for any worker count.
    """

    def __init__(self, store, indices_of: IndicesOf, spares: int, seed: int, rank: int, stage: int):
        self.store, self.indices_of, self.spares = store, indices_of, spares
        self.seed, self.rank, self.stage = seed, rank, stage

    def __len__(self) -> int:  # the loader is driven by an explicit range of micro-batch numbers
        return 2**62

    def indices(self, m: int) -> torch.Tensor:
        """(B + P,) long: the micro-batch's cutouts then its spares."""
        main = torch.as_tensor(self.indices_of(m), dtype=torch.long)
        spare = spare_indices(len(self.store), self.spares, self.seed, self.rank, self.stage, m)
        return torch.cat([main, spare])

    def __getitem__(self, m: int) -> ReadBatch:
        idx = self.indices(int(m))
        return ReadBatch(int(m), idx.numel() - self.spares, idx, read_cutouts(self.store, idx.numpy()))


def resident_dtype(store) -> torch.dtype:
    """float16 for image cutouts (as their shards store them), float32 for raw spectra (float16 underflows)."""
    return torch.float16 if store_rank(store) == 2 else torch.float32


class ResidentImages:
    """The whole store on the device as one (N, C, H, W) tensor (float16, as the shards store it; (N, C, L)
    float32 for spectra): reading a micro-batch is one gather there. Needs equal cutout sizes; check the memory
    with :func:`resident_bytes`."""

    def __init__(self, store, device: torch.device, chunk: int = 256):
        n = len(store)
        first = read_cutouts(store, np.arange(min(n, 1)))
        if not isinstance(first, torch.Tensor):
            raise ConfigError("config key 'train.resident_store': the store is empty")
        self.images = torch.empty((n, *first.shape[1:]), dtype=resident_dtype(store), device=device)
        for lo in range(0, n, chunk):
            part = read_cutouts(store, np.arange(lo, min(n, lo + chunk)))
            if not isinstance(part, torch.Tensor) or part.shape[1:] != first.shape[1:]:
                raise ConfigError("config key 'train.resident_store': needs cutouts of one size; this store mixes "
                                  "sizes (use the loader instead)")
            self.images[lo : lo + part.shape[0]] = part.to(device=device, dtype=self.images.dtype)

    def gather(self, indices: torch.Tensor) -> torch.Tensor:
        """indices (K,) long -> (K, C, H, W) (or (K, C, L)) float32 on the device."""
        return self.images[indices.to(self.images.device, non_blocking=True)].float()


def resident_bytes(store) -> int:
    """Bytes the store takes as a device tensor (:func:`resident_dtype`)."""
    size = torch.empty((), dtype=resident_dtype(store)).element_size()
    return len(store) * int(np.prod(store.get_array(0).shape)) * size if len(store) else 0


class MicroBatchStream:
    """Micro-batches in order through a DataLoader (or a resident gather); random access restarts the loader.

    ``get(m)`` returns micro-batch ``m`` on ``device``. Called with m, m + 1, ... it only waits for batches the
    workers have not read yet; any other m (resume, a benchmark) rebuilds the loader from m.
    """

    def __init__(self, reads: MicroBatchReads, device: torch.device, stop: int, workers: int = 0,
                 prefetch_factor: int = 2, pin_memory: bool = False, resident: ResidentImages | None = None):
        self.reads, self.device, self.stop = reads, device, stop
        self.workers, self.prefetch_factor, self.pin_memory = workers, prefetch_factor, pin_memory
        self.resident = resident
        self._iter: Iterator[ReadBatch] | None = None
        self._next = -1

    def _loader(self, start: int) -> Iterator[ReadBatch]:
        kwargs = dict(num_workers=self.workers, batch_size=None, pin_memory=self.pin_memory,
                      sampler=range(start, max(self.stop, start + 1)))
        if self.workers > 0:
            # Forked workers (PyTorch's default on Linux) only read NumPy memory maps, never CUDA; each reopens
            # the shards' maps lazily (CutoutStore.__getstate__ drops them).
            kwargs.update(prefetch_factor=self.prefetch_factor)
        return iter(DataLoader(self.reads, **kwargs))

    def get(self, m: int) -> ReadBatch:
        if self.resident is not None:
            idx = self.reads.indices(m)
            return ReadBatch(m, idx.numel() - self.reads.spares, idx.to(self.device), self.resident.gather(idx))
        if self._iter is None or m != self._next:
            self.close()
            self._iter = self._loader(m)
        got = next(self._iter)
        if got.micro != m:
            raise TesseraError(f"loader: expected micro-batch {m}, got {got.micro}")
        self._next = m + 1
        return got.to(self.device)

    def close(self) -> None:
        """Stop the workers of the current loader (if any)."""
        it, self._iter = self._iter, None
        shutdown = getattr(it, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def build_stream(tc, store, indices_of: IndicesOf, batch: int, device: torch.device, rank: int,
                 stage: int, stop: int) -> MicroBatchStream:
    """The stream of a stage from the ``train.*`` loader keys (``tc``: a TrainConfig): ``loader_workers``,
    ``prefetch_factor``, ``pin_memory`` (None: on CUDA), ``resident_store``, ``spare_fraction``. ``stop``: one
    past the last micro-batch number the stage draws."""
    reads = MicroBatchReads(store, indices_of, spare_count(batch, tc.spare_fraction), tc.seed, rank, stage)
    pin = device.type == "cuda" if tc.pin_memory is None else bool(tc.pin_memory)
    resident = ResidentImages(store, device) if tc.resident_store else None
    return MicroBatchStream(reads, device, stop, workers=tc.loader_workers, prefetch_factor=tc.prefetch_factor,
                            pin_memory=pin and device.type == "cuda", resident=resident)
