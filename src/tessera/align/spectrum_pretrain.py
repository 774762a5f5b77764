"""Masked modelling of in-memory spectra through the engine: a thin caller of ``tessera pretrain`` (issue 14).

The objective is ``spectrum-masked`` (:mod:`tessera.objectives.spectrum`: six contiguous segments of 30 channels
hidden, MSE on the hidden valid channels, seed 003 §3.2), trained by :mod:`tessera.train.engine` on a spectrum
store (``tessera ingest --spectra``). :func:`pretrain_spectra` is for spectra already held as a tensor (the
benchmarks, notebooks): it writes them as one ``(N, C, L)`` NPY into a spectrum store, runs the ``spectrum``
recipe with the encoder's architecture, and loads the trained weights back into ``encoder``. The run directory is
an ordinary pretraining run (config.yaml, metrics.jsonl, checkpoints/, model/), so ``tessera align --b RUN`` reads
it. From the command line::

    tessera ingest --spectra SPECTRA... --out SPECSTORE
    tessera pretrain --config spectrum --corpus SPECSTORE --out RUN
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tessera.models.spectrum import SpectrumEncoder, SpectrumMaskedModel  # noqa: F401  (re-exported)
from tessera.objectives.spectrum import masked_loss, segment_mask  # noqa: F401  (re-exported)


@dataclass
class SpectrumPretrainConfig:
    steps: int = 200
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_fraction: float = 0.05
    segments: int = 6
    width: int = 30
    seed: int = 0

    def overrides(self, encoder: SpectrumEncoder) -> list[str]:
        """The ``spectrum`` recipe's keys for these settings and ``encoder``'s architecture."""
        arch = {k: v for k, v in encoder.settings().items() if k in ("width", "stride", "dim", "depth", "heads",
                                                                      "mlp_ratio")}
        return ([f"model.spectrum.{k}={v}" for k, v in arch.items()]
                + [f"objective.spectrum_masked.{k}={getattr(self, k)}" for k in ("segments", "width", "batch_size")]
                + [f"train.max_steps={self.steps}", f"train.lr={self.lr}", f"train.weight_decay={self.weight_decay}",
                   f"train.warmup_fraction={self.warmup_fraction}", f"train.seed={self.seed}", "train.log_every=1",
                   f"train.checkpoint_every={self.steps}", "train.progress=false", "train.device=cpu"])


def write_spectrum_store(spectra: torch.Tensor | np.ndarray, store: str | Path) -> Path:
    """Spectra (N, C, L) (NaN = missing) -> a spectrum store at ``store`` (one NPY input, a row per spectrum)."""
    from tessera.corpus.config import IngestConfig
    from tessera.corpus.ingest import run_ingest

    store = Path(store)
    inputs = store.parent / f"{store.name}.inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    np.save(inputs / "spectra.npy", np.asarray(torch.as_tensor(spectra).float().cpu().numpy(), dtype=np.float32))
    run_ingest([inputs / "spectra.npy"], store, IngestConfig(kind="spectrum"), progress=False)
    return store


def pretrain_spectra(encoder: SpectrumEncoder, spectra: torch.Tensor, out: str | Path,
                     cfg: SpectrumPretrainConfig | None = None) -> list[float]:
    """Train a tower of ``encoder``'s architecture by masked modelling on spectra (N, C, L) with the engine
    (``tessera pretrain --config spectrum``) into the run directory ``out``; the trained weights are loaded into
    ``encoder`` (its initial weights are the engine's seeded init, not ``encoder``'s). Returns every step's loss."""
    from tessera.models.spectrum import load_spectrum
    from tessera.train.engine import pretrain
    from tessera.train.run import resolve_run_config

    cfg = cfg or SpectrumPretrainConfig()
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix="tessera-spectra-") as tmp:
        store = write_spectrum_store(spectra, Path(tmp) / "store")
        run_cfg = resolve_run_config("spectrum", cfg.overrides(encoder), out)
        pretrain(run_cfg, store, out, overwrite=out.exists())
    encoder.load_state_dict(load_spectrum(out / "model").state_dict())
    return [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]
