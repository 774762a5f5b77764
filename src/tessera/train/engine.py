"""The continued-pretraining engine: branches and stages (seed 000 §5.4), the optimizer step with gradient
accumulation, precision, DDP, checkpoints and exact resume, metrics and guards.

The run directory, its layout and resume state belong to :mod:`tessera.train.run` (DESIGN §3.4).

The data order and the views are a pure function of (seed, rank, stage, step, micro-batch): the sampler takes a
per-epoch permutation seeded with ``seed + epoch`` and the view generator a ``torch.Generator`` seeded from that
tuple. A checkpoint therefore only needs the step number to restore the data stream.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from tessera.config import to_dict
from tessera.errors import TesseraError
from tessera.seeding import mix_seed
from tessera.train import distributed as D
from tessera.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint, set_rng_state
from tessera.train.logging import MetricsLogger
from tessera.objectives.base import Objective, StepContext, StepResult
from tessera.objectives.registry import get_objective
from tessera.train.config import PretrainConfig, stage_configs
from tessera.train.monitors import CollapseMonitor, DistillationMonitor, check_finite
from tessera.train.optim import build_optimizer, build_scheduler
from tessera.train.run import Run, resolve_run_config

# A training-time monitor (e.g. the k-NN monitor that `tessera pretrain` builds from tessera.evaluate, so that
# train never imports evaluate): called on the main process with the encoder the run would export (wrapped in
# tessera.models.encoder.Encoder) and the run-wide step; returns scalars to log.
MonitorFn = Callable[[Any, int], dict[str, float]]


# Called after every optimizer step (and its checkpoint, when one is due) with the run-wide step; an exception
# it raises stops the run there (the tests interrupt runs this way to check exact resume).
StepHook = Callable[[int], None]


# --------------------------------------------------------------------------------------------- data order


class StepSampler:
    """Cutout indices of every micro-batch as a pure function of the micro-batch number.

    Like DistributedSampler: one permutation per epoch (seeded ``seed + epoch``), cut into global batches of
    ``batch * world_size``; rank ``r`` takes the ``r``-th contiguous block, so rank order = global batch order.
    """

    def __init__(self, size: int, batch: int, world_size: int, rank: int, seed: int):
        self.size, self.batch, self.world_size, self.rank, self.seed = size, batch, world_size, rank, seed
        self.per_epoch = size // (batch * world_size)
        if self.per_epoch < 1:
            raise TesseraError(
                f"the corpus has {size} cutouts, fewer than one global batch ({batch} x {world_size} processes); "
                "lower train.batch_size_* or use a larger corpus"
            )
        self._cache: tuple[int, torch.Tensor] | None = None

    def permutation(self, epoch: int) -> torch.Tensor:
        if self._cache is None or self._cache[0] != epoch:
            g = torch.Generator().manual_seed(self.seed + epoch)
            self._cache = (epoch, torch.randperm(self.size, generator=g))
        return self._cache[1]

    def indices(self, micro_index: int) -> list[int]:
        """Indices of this rank's micro-batch number ``micro_index`` (counted from the start of the stage)."""
        return self.index_tensor(micro_index).tolist()

    def index_tensor(self, micro_index: int) -> torch.Tensor:
        """:meth:`indices` as a (B,) long CPU tensor (what the loader reads)."""
        epoch, pos = divmod(micro_index, self.per_epoch)
        glob = self.batch * self.world_size
        start = pos * glob + self.rank * self.batch
        return self.permutation(epoch)[start : start + self.batch]


# --------------------------------------------------------------------------------------------- one stage


@dataclass
class StageSpec:
    index: int  # 0-based position in the recipe
    objective: str  # a registered objective (tessera.objectives.registry)
    directory: Path
    step_offset: int  # optimizer steps of the earlier stages (for a run-wide global step)
    max_steps: int  # optimizer steps of this stage
    init: str = "exported"  # encoder hand-over from the previous stage (train.config.StageConfig.init)

    @property
    def name(self) -> str:
        return f"stage{self.index + 1}_{self.objective}"


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype: bf16 on CUDA for ``auto`` (seed 000 §8.2.1), fp32 (no autocast) on CPU."""
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def accumulation_steps(effective_batch: int | None, batch: int, world_size: int) -> int:
    """Micro-batches per optimizer update so that ``batch * world_size * accum`` is the effective batch (§8.2)."""
    if effective_batch is None:
        return 1
    return max(1, round(effective_batch / (batch * world_size)))


class StageTrainer:
    """Trains one stage: holds the objective (tessera.objectives), the model (DDP-wrapped when distributed),
    optimizer, schedules and data stream. ``cfg`` is the stage's resolved config (its overrides applied)."""

    def __init__(self, cfg: PretrainConfig, spec: StageSpec, store, info: D.DistInfo, logger: MetricsLogger,
                 monitor: MonitorFn | None = None):
        self.cfg, self.spec, self.store, self.info, self.logger = cfg, spec, store, info, logger
        tc = cfg.train
        self.device = info.device
        self.objective: Objective = get_objective(spec.objective)(cfg)
        self.batch = self.objective.batch_size()
        self.accum = accumulation_steps(tc.effective_batch, self.batch, info.world_size)
        self.sampler = StepSampler(len(store), self.batch, info.world_size, info.rank, tc.seed)
        self.views = self.objective.view_generator()
        self.amp_dtype = resolve_precision(tc.precision, self.device)
        self.model = self._build_model()
        self.optimizer = build_optimizer(D.unwrap(self.model), tc.lr, tc.weight_decay, tc.betas, self.device)
        self.max_steps = spec.max_steps
        self.warmup_steps = int(round(tc.warmup_fraction * self.max_steps))
        self.scheduler = build_scheduler(self.optimizer, self.max_steps, tc.warmup_fraction, tc.lr, tc.min_lr)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.monitor = CollapseMonitor(tc.collapse_threshold)
        self.distillation_monitor = DistillationMonitor()
        self.external_monitor = monitor
        self.resampled = 0
        self.last: StepResult | None = None  # the last micro-batch's result (for the collapse monitor)
        self.last_views = None

    # -- construction --------------------------------------------------------------------------------------
    def _build_model(self) -> nn.Module:
        # Same seed on every rank (DDP also broadcasts rank 0's weights); a different one per stage gives the
        # second stage a fresh projection head (seed 000 §5.4).
        torch.manual_seed(self.cfg.train.seed + self.spec.index)
        # The objective builds only the heads it trains; the model says whether DDP must look for parameters
        # without gradient (PretrainModel.ddp_find_unused_parameters). An EMA teacher has no trainable
        # parameter: DDP ignores it, the objective's hook updates it on every rank.
        model = self.objective.build_model().to(self.device)
        if self.cfg.train.compile:  # in place, before DDP (nn.Module.compile keeps the state-dict names)
            from tessera.models.pretrain_model import compile_model

            compile_model(model, self.device)
        if self.info.distributed:
            model = D.convert_sync_batchnorm(model, self.device)
            if getattr(model, "teacher", None) is not None:
                # The conversion rebuilds BatchNorm layers with fresh (trainable) affine parameters: the EMA
                # teacher's must stay frozen, or DDP waits for gradients they never get (BYOL's target projector).
                model.teacher.requires_grad_(False)
            model = nn.parallel.DistributedDataParallel(
                model,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=getattr(model, "ddp_find_unused_parameters", True),
            )
        model.train()
        return model

    def load_encoder_from(self, checkpoint: Path, init: str = "exported") -> None:
        """Carry the encoder of the previous stage over (seed 000 §5.4: two-stage); the heads stay freshly
        initialized. ``init``: "exported" (what that stage exports: its teacher for DINO) or "teacher"."""
        state = load_checkpoint(checkpoint)
        source = state.get("exports", "encoder") if init == "exported" else "teacher"
        prefix = "teacher.encoder." if source == "teacher" else "encoder."
        encoder_state = {k[len(prefix) :]: v for k, v in state["model"].items() if k.startswith(prefix)}
        if not encoder_state:
            raise TesseraError(f"{checkpoint}: holds no {source} encoder weights (no '{prefix}*' keys)")
        module = D.unwrap(self.model)
        module.encoder.load_state_dict(encoder_state)
        if getattr(module, "teacher", None) is not None:
            module.teacher.copy_from(module.student_parts())  # the teacher starts as a copy of the student

    def exported_encoder(self) -> nn.Module:
        """The encoder this stage exports: the EMA teacher's (DINO/iBOT practice) or the trained one."""
        module = D.unwrap(self.model)
        return module.teacher.encoder if self.objective.exports == "teacher" else module.encoder

    # -- data --------------------------------------------------------------------------------------------------
    def generator(self, step: int, micro: int, stream: int) -> torch.Generator:
        seed = mix_seed(self.cfg.train.seed, self.info.rank, self.spec.index, step, micro, stream)
        return torch.Generator(device=self.device).manual_seed(seed)

    def micro_batch(self, step: int, micro: int):
        """Views of this rank's micro-batch on the device: (B, V, C, S, S), or one such tensor per crop group.

        The cutouts (and spares for empty views) come read ahead from the loader (train/loader.py); the views are
        made on the device in one call, and an empty sample takes a spare there (no host sync, seed 000 §7.1.1)."""
        from tessera.views.sampling import views_from_pool

        read = self.data_stream().get(step * self.accum + micro)
        views, stats = views_from_pool(self.views, read.images, read.batch, self.generator(step, micro, 0))
        self.resampled = self.resampled + stats["resampled"]  # a device tensor: read at logging steps only
        return views

    def data_stream(self):
        """This stage's :class:`tessera.train.loader.MicroBatchStream`, built on first use."""
        stream = getattr(self, "_stream", None)
        if stream is None:
            from tessera.train.loader import build_stream

            stream = self._stream = build_stream(
                self.cfg.train, self.store, self.sampler.index_tensor, self.batch, self.device, self.info.rank,
                self.spec.index, self.max_steps * self.accum,
            )
        return stream

    # -- one optimizer step ------------------------------------------------------------------------------------
    def context(self, step: int, micro: int) -> StepContext:
        return StepContext(step=step, micro=micro, max_steps=self.max_steps,
                           generator=lambda stream: self.generator(step, micro, stream),
                           steps_per_epoch=self.sampler.per_epoch // self.accum or 1)

    def forward_loss(self, views, step: int, micro: int) -> StepResult:
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                            enabled=self.amp_dtype is not None):
            return self.objective.step(self.model, views, self.context(step, micro))

    def train_step(self, step: int) -> dict[str, float]:
        """Accumulate ``accum`` micro-batches, clip, check finiteness, step, run the objective's hooks.
        Returns the step's metrics (floats only; the last result is kept in ``self.last``)."""
        self.optimizer.zero_grad(set_to_none=True)
        totals: dict[str, torch.Tensor] = {}
        stats: dict[str, torch.Tensor] = {}
        name = self.spec.objective
        for micro in range(self.accum):
            views = self.micro_batch(step, micro)
            sync = micro == self.accum - 1 or not self.info.distributed
            with contextlib.nullcontext() if sync else self.model.no_sync():
                out = self.forward_loss(views, step, micro)
                self.scaler.scale(out.loss / self.accum).backward()
            for key, value in out.parts.items():
                totals[key] = totals.get(key, 0.0) + value.float() / self.accum
            for key, value in out.stats.items():
                stats[key] = stats.get(key, 0.0) + value.float() / self.accum
            self.last, self.last_views = out, views
        loss = float(D.all_reduce_mean(totals[name]))
        parts = {k: float(D.all_reduce_mean(v)) for k, v in totals.items()}
        self.scaler.unscale_(self.optimizer)
        grad_norm = float(nn.utils.clip_grad_norm_(self.model.parameters(), self.objective.grad_clip()))
        self.objective.before_optimizer_step(self.model, step, self.context(step, self.accum - 1))
        # fp16 overflows are the GradScaler's business (it skips the step); otherwise a NaN/inf stops the run.
        check_finite(loss, None if self.amp_dtype == torch.float16 else grad_norm, parts, name, step + 1)
        lr = self.optimizer.param_groups[0]["lr"]
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.objective.after_optimizer_step(self.model, step, self.max_steps)
        metrics = {"loss": loss, **{f"loss_{k}": v for k, v in parts.items() if k != name}}
        metrics.update(lr=lr, grad_norm=grad_norm)
        metrics.update(self.objective.schedules(step, self.max_steps))
        metrics.update({k: float(D.all_reduce_mean(v)) for k, v in stats.items()})
        return metrics

    def monitor_embeddings(self) -> torch.Tensor:
        """(N, D) features of the last micro-batch for the collapse monitor; an objective that returns none
        (reconstruction) gets its first view group embedded once more, unmasked and without gradient (only at
        logging steps)."""
        if self.last is not None and self.last.embeddings is not None:
            return self.last.embeddings
        module = D.unwrap(self.model)
        views = self.last_views[0] if isinstance(self.last_views, list) else self.last_views
        module.eval()
        try:
            with torch.no_grad(), torch.autocast(
                self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None
            ):
                features = module.encoder(views[:, 0]).readout("mean_patch")
        finally:
            module.train()
        return features

    def run_monitor(self, done: int) -> dict[str, float]:
        """The external monitor (k-NN) on the main process, every ``train.monitor_every`` steps and at the end."""
        if self.external_monitor is None:
            return {}
        if done % self.cfg.train.monitor_every and done != self.max_steps:
            return {}
        out: dict[str, float] = {}
        if D.is_main_process():
            from tessera.models.encoder import Encoder

            module = self.exported_encoder()
            was_training = module.training
            try:
                out = dict(self.external_monitor(Encoder(module), self.spec.step_offset + done))
            finally:
                module.train(was_training)
        D.barrier()
        return out

    # -- checkpoints ---------------------------------------------------------------------------------------------
    @property
    def checkpoint_dir(self) -> Path:
        return self.spec.directory / "checkpoints"

    def save(self, step: int) -> None:
        """Rank 0 writes the checkpoint; the others wait so nobody runs ahead of a half-written file."""
        if D.is_main_process():
            state = {
                "stage": self.spec.name,
                "model": D.unwrap(self.model).state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(),
                "world_size": self.info.world_size,
                "objective": self.objective.state_dict(),
                "exports": self.objective.exports,
                "config": to_dict(self.cfg),
            }
            save_checkpoint(self.checkpoint_dir, step, state, keep=self.cfg.train.keep_checkpoints)
        D.barrier()

    def restore(self, path: Path) -> int:
        """Load everything from ``path`` and return the number of optimizer steps already taken."""
        state = load_checkpoint(path, map_location=self.device)
        if state.get("world_size", 1) != self.info.world_size:
            raise TesseraError(
                f"{path}: written with {state.get('world_size')} processes, resumed with {self.info.world_size}; "
                "the data order depends on the process count, so resume with the same one"
            )
        D.unwrap(self.model).load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.objective.load_state_dict(state.get("objective", {}))
        set_rng_state(state["rng"])
        return int(state["step"])

    # -- the loop ------------------------------------------------------------------------------------------------
    def fit(self, start_step: int = 0, after_step: StepHook | None = None) -> None:
        """Optimizer steps ``start_step .. max_steps-1``; checkpoints every ``checkpoint_every`` and at the end."""
        from tessera.progress import progress_bar

        tc = self.cfg.train
        images_per_step = self.batch * self.accum * self.info.world_size
        show = D.is_main_process() and tc.progress
        bar = progress_bar(total=self.max_steps, initial=start_step, desc=self.spec.name, disable=not show, unit="step",
                           every=max(1, tc.log_every), dynamic_ncols=True)
        window_start, window_steps = time.perf_counter(), 0
        try:
            for step in range(start_step, self.max_steps):
                metrics = self.train_step(step)
                done = step + 1
                window_steps += 1
                bar.update(1)
                monitored = self.run_monitor(done)
                metrics.update(monitored)
                if done % tc.log_every == 0 or done == self.max_steps or monitored:
                    elapsed = time.perf_counter() - window_start
                    ips = window_steps * images_per_step / max(elapsed, 1e-9)
                    warn = done > self.warmup_steps
                    health = self.monitor.check(self.monitor_embeddings(), self.spec.objective, done, warn=warn)
                    health.update(self.distillation_monitor.check(metrics, self.spec.objective, done, warn=warn))
                    self.log(done, metrics, ips, health)
                    postfix = dict(loss=f"{metrics['loss']:.4f}", lr=f"{metrics['lr']:.2e}", img_s=f"{ips:.1f}")
                    if "monitor_knn_macro_f1" in metrics:
                        postfix["knn_f1"] = f"{metrics['monitor_knn_macro_f1']:.3f}"
                    bar.set_postfix(**postfix)
                    window_start, window_steps = time.perf_counter(), 0
                if done % tc.checkpoint_every == 0 or done == self.max_steps:
                    self.save(done)
                if after_step is not None:
                    after_step(self.spec.step_offset + done)
        finally:
            bar.close()

    def log(self, done: int, metrics: dict[str, Any], images_per_s: float, health: dict[str, Any]) -> None:
        record = {
            "stage": self.spec.objective,
            "stage_index": self.spec.index,
            "step": done,
            "global_step": self.spec.step_offset + done,
            **metrics,
            "images_per_s": images_per_s,
            "micro_batch": self.batch,
            "accumulation": self.accum,
            "resampled": int(self.resampled),
            **health,
        }
        self.logger.log(record)


# --------------------------------------------------------------------------------------------- the run


def stage_max_steps(cfg: PretrainConfig, objective: str, corpus_size: int, world_size: int) -> int:
    """``train.max_steps``, or ``ceil(epochs * N / images per update)`` when ``train.epochs`` is set (``cfg`` is
    the stage's config: the batch is its objective's)."""
    tc = cfg.train
    if tc.epochs is None:
        return tc.max_steps
    batch = get_objective(objective)(cfg).batch_size()
    images = batch * world_size * accumulation_steps(tc.effective_batch, batch, world_size)
    return max(1, math.ceil(tc.epochs * corpus_size / images))


def stage_specs(cfg: PretrainConfig, run_dir: Path, corpus_size: int, world_size: int = 1) -> list[StageSpec]:
    """Where each stage of the recipe lives: RUN itself for one stage, RUN/stageK_<objective> for several.
    A stage's ``max_steps`` wins over ``train.max_steps``/``train.epochs`` of its config."""
    stages = cfg.train.stage_list()
    specs, offset = [], 0
    for i, (stage, stage_cfg) in enumerate(zip(stages, stage_configs(cfg))):
        directory = run_dir if len(stages) == 1 else run_dir / f"stage{i + 1}_{stage.objective}"
        steps = stage.max_steps or stage_max_steps(stage_cfg, stage.objective, corpus_size, world_size)
        specs.append(StageSpec(i, stage.objective, directory, step_offset=offset, max_steps=steps, init=stage.init))
        offset += steps
    return specs


def check_batches_fit(cfg: PretrainConfig, corpus_size: int, world_size: int) -> None:
    """Every stage's global batch fits the corpus (StepSampler's condition), checked before anything is written."""
    for i, (stage, stage_cfg) in enumerate(zip(cfg.train.stage_list(), stage_configs(cfg))):
        batch = get_objective(stage.objective)(stage_cfg).batch_size()
        if corpus_size < batch * world_size:
            raise TesseraError(
                f"train.stages[{i}] ({stage.objective}): the corpus has {corpus_size} cutouts, fewer than one "
                f"global batch ({batch} x {world_size} processes); lower its batch size or use a larger corpus"
            )


def run_stage(
    cfg: PretrainConfig,
    spec: StageSpec,
    run,
    logger: MetricsLogger,
    previous: Path | None,
    after_step: StepHook | None = None,
    monitor: MonitorFn | None = None,
) -> StageTrainer:
    """Build, (re)start and train one stage of ``run`` (a :class:`tessera.train.run.Run`); returns the trainer
    holding the trained model."""
    trainer = StageTrainer(cfg, spec, run.store, run.info, logger, monitor=monitor)
    start = 0
    latest = latest_checkpoint(trainer.checkpoint_dir) if run.resume else None
    if latest is not None:
        start = trainer.restore(latest)
    elif previous is not None and spec.init != "scratch":
        trainer.load_encoder_from(previous, spec.init)
    run.drop_metrics_after(spec, start)
    trainer.fit(start, after_step)
    return trainer


def pretrain(
    cfg: PretrainConfig,
    corpus: str | Path,
    out: str | Path,
    resume: bool = False,
    overwrite: bool = False,
    after_step: StepHook | None = None,
    monitor: MonitorFn | None = None,
) -> Path:
    """Run the recipe of ``cfg.train`` (its stages, or the ``branch`` shorthand) on the CutoutStore ``corpus``;
    returns the run directory.

    One process, or one per device under torchrun (DDP from RANK/WORLD_SIZE/LOCAL_RANK). ``resume`` continues
    from the latest checkpoint exactly. ``after_step(global_step)`` (see :data:`StepHook`) is called after every
    optimizer step and its checkpoint. ``monitor(encoder, global_step) -> dict`` (see :data:`MonitorFn`) is
    called on the main process every ``train.monitor_every`` steps of each stage; its scalars are logged.
    The run directory, its resume state and the export belong to :class:`tessera.train.run.Run`.
    """
    with Run.open(cfg, corpus, out, resume=resume, overwrite=overwrite) as run:
        previous: Path | None = None
        trainer = None
        for spec in run.specs:
            done = run.finished_checkpoint(spec)
            if done is not None:
                previous = done
                continue
            logger = run.logger(spec)
            try:
                trainer = run_stage(run.stage_config(spec), spec, run, logger, previous, after_step, monitor)
            finally:
                logger.close()
            previous = latest_checkpoint(trainer.checkpoint_dir)
            run.export(trainer, spec)
        run.export(trainer)
        D.barrier()
        return run.dir


def pretrain_from_config(
    source: str | None,
    overrides: list[str] | tuple[str, ...],
    corpus: str | Path,
    out: str | Path,
    resume: bool = False,
    overwrite: bool = False,
    monitor: MonitorFn | None = None,
) -> Path:
    """``tessera pretrain``: resolve the config (:func:`tessera.train.run.resolve_run_config`) and run it."""
    cfg = resolve_run_config(source, overrides, out, resume)
    if not Path(corpus).exists():
        raise TesseraError(f"{corpus}: corpus store not found (build one with `tessera ingest`)")
    return pretrain(cfg, corpus, out, resume=resume, overwrite=overwrite, monitor=monitor)


__all__ = ["pretrain", "pretrain_from_config", "resolve_run_config", "MonitorFn", "StageTrainer", "StepHook",
           "StepSampler", "stage_specs"]
