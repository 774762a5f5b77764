"""A pretraining run: the run directory's layout and its resume state (DESIGN §3.4); the engine trains.

Run directory::

    RUN/config.yaml              resolved PretrainConfig (what --resume reads back)
    RUN/corpus.json              the corpus the run trains on (manifest digest and size), checked on resume
    RUN/metrics.jsonl            every logged step of every stage ("stage" field)
    RUN/model/                   export of the final stage's encoder (tessera.models.export.export_model)
    RUN/checkpoints/             single-stage runs
    RUN/stage1_reconstruction/   multi-stage runs: checkpoints/, metrics.jsonl, model/ of each stage
    RUN/stage2_contrastive/

:meth:`Run.open` does everything before the first step, in the order that raises every config or data error
before anything is written: distributed setup, opening the store, the channel rule, validation, the batch check,
then (main process) the directory, the resume checks and the saved config. The run then answers the
engine's questions about the directory: which stages are finished, where metrics go, what to drop from them
on resume, where to export.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tessera.config import load_saved_config, save_config, to_dict
from tessera.errors import TesseraError
from tessera.io import atomic_write_text
from tessera.outputs import prepare_output_dir
from tessera.train import distributed as D
from tessera.train.checkpoint import list_checkpoints
from tessera.train.config import PretrainConfig, stage_configs
from tessera.train.logging import MetricsLogger, truncate_metrics

CONFIG = "config.yaml"
CORPUS = "corpus.json"
METRICS = "metrics.jsonl"
MODEL = "model"


# --------------------------------------------------------------------------------------------- rules


def config_for_corpus(cfg: PretrainConfig, store) -> PretrainConfig:
    """``cfg`` with ``model.in_channels`` set from the data (DESIGN §5.7: the model's input adapter is sized for
    the corpus, never the other way round), and for a spectrum store ``model.spectrum.length`` from its grid;
    validated. Every stage's objective must train on the store's kind (image cutouts or spectra)."""
    if len(store) == 0:
        raise TesseraError(f"{store.path}: the corpus is empty: no cutouts to train on")
    kind = getattr(store, "kind", "image")
    check_corpus_kind(cfg, kind, store.path)
    sample = store.get_array(0)
    model = cfg.model
    if int(sample.shape[0]) != model.in_channels:
        model = dataclasses.replace(model, in_channels=int(sample.shape[0]))
    if kind == "spectrum" and model.spectrum.length != int(sample.shape[-1]):
        model = dataclasses.replace(model, spectrum=dataclasses.replace(model.spectrum, length=int(sample.shape[-1])))
    if model is not cfg.model:
        cfg = dataclasses.replace(cfg, model=model)
    cfg.validate()
    return cfg


def check_corpus_kind(cfg: PretrainConfig, kind: str, where) -> None:
    """Every stage's objective trains on ``kind`` ("image" or "spectrum", the store's ``store.json``)."""
    from tessera.objectives.registry import get_objective

    for i, stage in enumerate(cfg.train.stage_list()):
        wants = get_objective(stage.objective, f"train.stages[{i}].objective").input_kind
        if wants != kind:
            hint = "spectrum-masked (--config spectrum)" if kind == "spectrum" else "an image objective"
            article = "an" if kind == "image" else "a"
            raise TesseraError(f"{where}: {article} {kind} store, but train.stages[{i}] ({stage.objective}) trains "
                               f"on {wants} data; use {hint} or a {wants} store")


def config_differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two ``to_dict`` trees (keys of either side)."""
    if isinstance(a, dict) and isinstance(b, dict):
        found: list[str] = []
        for key in list(a) + [k for k in b if k not in a]:
            found += config_differences(a.get(key), b.get(key), f"{prefix}.{key}" if prefix else key)
        return found
    return [] if a == b else [prefix]


def corpus_identity(store) -> dict[str, Any]:
    """What makes a corpus the same for an exact resume: the SHA-256 of its manifest (deterministic bytes, see
    corpus/ingest.py) and its number of cutouts; not its path, so a moved store still resumes."""
    from tessera.corpus.layout import MANIFEST

    digest = hashlib.sha256()
    with open(Path(store.path) / MANIFEST, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return {"manifest_sha256": digest.hexdigest(), "cutouts": len(store)}


DEFAULT_CONFIG = "cpu"  # the preset a new run starts from when no --config is given


def resolve_run_config(
    source: str | None, overrides: list[str] | tuple[str, ...], out: str | Path, resume: bool = False
) -> PretrainConfig:
    """The config ``tessera pretrain`` runs.

    On ``--resume`` of an existing RUN without ``--config``: RUN's own ``config.yaml`` (plus ``overrides``; any
    key they change is refused by the resume check of :meth:`Run.open`, which names it). Otherwise defaults ->
    preset/recipe/YAML ``source`` (:data:`DEFAULT_CONFIG` when None) -> overrides.
    """
    from tessera.config import apply_overrides
    from tessera.train.config import resolve_pretrain_config

    if resume and source is None and (Path(out) / CONFIG).exists():
        return apply_overrides(load_saved_config(PretrainConfig, Path(out)), overrides)
    return resolve_pretrain_config(DEFAULT_CONFIG if source is None else source, overrides)


# --------------------------------------------------------------------------------------------- the run


@dataclass
class Run:
    """One run directory and its resume state. Build it with :meth:`open`."""

    cfg: PretrainConfig
    store: Any  # tessera.corpus.store.CutoutStore (image cutouts or spectra: store.kind)
    info: D.DistInfo
    dir: Path
    resume: bool
    specs: list  # list[tessera.train.engine.StageSpec]

    @classmethod
    @contextlib.contextmanager
    def open(cls, cfg: PretrainConfig, corpus: str | Path, out: str | Path, resume: bool = False,
             overwrite: bool = False) -> Iterator[Run]:
        """Set up the process group, open and check the corpus, prepare RUN; leave the process group on exit."""
        from tessera.corpus.store import CutoutStore
        from tessera.train.engine import check_batches_fit, stage_specs

        info = D.setup_distributed(cfg.train.device)
        try:
            store = CutoutStore(corpus)
            cfg = config_for_corpus(cfg, store)
            check_batches_fit(cfg, len(store), info.world_size)
            run_dir = Path(out)
            run = cls(cfg, store, info, run_dir, resume, stage_specs(cfg, run_dir, len(store), info.world_size))
            if D.is_main_process():
                run._prepare(overwrite)
            D.barrier()
            yield run
        finally:
            D.cleanup_distributed(info)

    # -- layout ------------------------------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.dir / CONFIG

    @property
    def metrics_path(self) -> Path:
        return self.dir / METRICS

    def stage_config(self, spec) -> PretrainConfig:
        """The config stage ``spec`` trains with (its objective's settings applied, train.config.stage_configs)."""
        return stage_configs(self.cfg)[spec.index]

    # -- before the first step (main process) ------------------------------------------------------------------
    def _prepare(self, overwrite: bool) -> None:
        if self.resume:
            self._check_resume()
        prepare_output_dir(self.dir, overwrite=overwrite, resume=self.resume)
        save_config(self.cfg, self.dir)
        atomic_write_text(self.dir / CORPUS, json.dumps(corpus_identity(self.store), indent=2))

    def _check_resume(self) -> None:
        """An exact resume needs the saved config and the same corpus; name every key that differs."""
        if self.config_path.exists():
            saved = to_dict(load_saved_config(PretrainConfig, self.dir))
            keys = config_differences(to_dict(self.cfg), saved)
            if keys:
                raise TesseraError(
                    f"{self.config_path}: --resume with a different config (keys {', '.join(keys)}); resume with "
                    "the saved config (give only --out and --corpus) or start a new run"
                )
        saved_corpus = self.dir / CORPUS
        if saved_corpus.exists():  # runs made before corpus.json existed resume unchecked, and get one now
            before = json.loads(saved_corpus.read_text())
            now = corpus_identity(self.store)
            if before != now:
                raise TesseraError(
                    f"{self.store.path}: not the corpus {self.dir} was trained on ({before['cutouts']} cutouts, "
                    f"manifest {before['manifest_sha256'][:12]}, now {now['cutouts']}, {now['manifest_sha256'][:12]}); "
                    "resume with the same store or start a new run"
                )

    # -- during the run ----------------------------------------------------------------------------------------
    def finished_checkpoint(self, spec) -> Path | None:
        """On resume, the final checkpoint of a stage that is complete and not the last (it is skipped); else None.
        The last stage is always entered: restoring its final checkpoint trains nothing and re-exports."""
        if not self.resume or spec is self.specs[-1]:
            return None
        found = list_checkpoints(spec.directory / "checkpoints")
        return found[-1][1] if found and found[-1][0] >= spec.max_steps else None

    def logger(self, spec) -> MetricsLogger:
        """The metrics logger of stage ``spec``: RUN/metrics.jsonl, plus the stage's own file in a multi-stage run."""
        paths = [self.metrics_path] + ([spec.directory / METRICS] if spec.directory != self.dir else [])
        return MetricsLogger(
            paths,
            tensorboard_dir=(spec.directory / "tensorboard") if self.cfg.train.tensorboard else None,
            enabled=D.is_main_process(),
        )

    def drop_metrics_after(self, spec, start: int) -> None:
        """On resume from step ``start`` of stage ``spec``: steps logged after that checkpoint will be logged
        again, so they are removed from the metric files first (all ranks call this; rank 0 writes)."""
        if not self.resume:
            return
        if D.is_main_process():
            def keep(r: dict) -> bool:
                return r["stage_index"] < spec.index or (r["stage_index"] == spec.index and r["step"] <= start)

            for path in {spec.directory / METRICS, self.metrics_path}:
                truncate_metrics(path, keep)
        D.barrier()

    def export(self, trainer, spec=None) -> None:
        """Export the trainer's encoder to RUN/model (``spec=None``) or to the stage's own model/ (multi-stage)."""
        if not D.is_main_process():
            return
        if spec is not None and len(self.specs) == 1:
            return  # a single stage's directory is RUN itself: RUN/model is written once, at the end
        from types import SimpleNamespace

        from tessera.models.export import export_model
        from tessera.models.spectrum import SpectrumEncoder, export_spectrum

        out_dir = (self.dir if spec is None else spec.directory) / MODEL
        if out_dir.exists():
            shutil.rmtree(out_dir)
        encoder = trainer.exported_encoder()
        if isinstance(encoder, SpectrumEncoder):  # tessera.json (backbone "spectrum") + model.safetensors
            export_spectrum(encoder, out_dir)
            return
        module = D.unwrap(trainer.model)
        export_model(SimpleNamespace(encoder=encoder, cfg=getattr(module, "cfg", None)), out_dir,
                     card_context={"run_dir": self.dir})
