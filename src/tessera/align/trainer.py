"""The alignment loop of ``tessera align`` (seed 003 §5, App. B3.2).

Why not a stage of ``tessera.train.engine``: the engine trains ONE encoder on a store through view generators,
builds its model from ``model:`` presets and hands encoders between stages; alignment trains two heads over two
already-pretrained towers of possibly different modalities on paired data, with no views. Its step IS an objective's
step (:class:`tessera.objectives.alignment.Alignment` on a :class:`~tessera.objectives.base.PairedViews` batch),
and this small separate loop reuses the engine's parts: the data order (:class:`~tessera.train.engine.StepSampler`),
AdamW with decay on matrices only and the cosine schedule (:mod:`tessera.train.optim`), the self-verifying
atomic checkpoints with RNG states (:mod:`tessera.train.checkpoint`), the metrics log, the non-finite guard and
the DDP helpers (:mod:`tessera.train.distributed`).

Run directory::

    RUN/config.yaml     resolved AlignConfig
    RUN/split.json      the objects aligned on (train) and held out (retrieval and zero-shot evaluation)
    RUN/metrics.jsonl   loss, pair accuracy, lr, logit scale per logged step
    RUN/checkpoints/    step_XXXXXXXX.pt: trainable weights (heads, logit scale, unfrozen blocks), optimizer,
                        scheduler, step, RNG states (frozen backbones are rebuilt from their refs on resume)
    RUN/model/tower_a/, RUN/model/tower_b/   the export (tessera.align.towers.export_tower)

Exact resume: the batch of step s is ``StepSampler.indices(s)`` and its augmentation draws from a generator seeded
with (seed, rank, s), so a checkpoint only needs the step number.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tessera.align.config import AlignConfig
from tessera.align.data import PairedData, holdout_split, load_pairs
from tessera.align.head import CrossAttentionPooling
from tessera.align.towers import AlignModel, Tower, export_tower, load_backbone, set_trainable
from tessera.config import load_saved_config, save_config, to_dict
from tessera.errors import TesseraError
from tessera.objectives.alignment import Alignment
from tessera.objectives.base import PairedViews, StepContext
from tessera.outputs import prepare_output_dir
from tessera.seeding import mix_seed
from tessera.train import distributed as D
from tessera.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint, set_rng_state
from tessera.train.engine import StepHook, StepSampler
from tessera.train.logging import MetricsLogger, truncate_metrics
from tessera.train.monitors import check_finite
from tessera.train.optim import build_optimizer, build_scheduler

SPLIT_FILE = "split.json"
NAME = "align"


def build_model(cfg: AlignConfig) -> AlignModel:
    """Both towers from their refs, fresh heads seeded with ``train.seed`` (the same on every rank and in every
    rebuild: resume and the "untrained head" baseline of the results rely on it)."""
    h, t = cfg.head, cfg.train
    backbones = [load_backbone(cfg.a), load_backbone(cfg.b)]
    for backbone in backbones:
        set_trainable(backbone, t.trainable_blocks)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(t.seed)
        heads = [CrossAttentionPooling(int(bb.hidden_size), h.dim, h.heads, h.hidden) for bb in backbones]
    a, b = (Tower(bb, head) for bb, head in zip(backbones, heads))
    return AlignModel(a, b, t.logit_scale, t.learn_logit_scale)


def prepared_pairs(cfg: AlignConfig, model: AlignModel) -> tuple[PairedData, np.ndarray, np.ndarray]:
    """All pairs (``data.max_pairs`` of them at most, seeded) and the (train, held-out) split."""
    d = cfg.data
    data = load_pairs(cfg.pairs, model.a, model.b, d.common_field, d.max_pairs, d.split_seed, d.match_radius_arcsec)
    if cfg.data.max_pairs is not None and len(data) > cfg.data.max_pairs:
        keep = np.sort(np.random.default_rng(cfg.data.split_seed).permutation(len(data))[: cfg.data.max_pairs])
        data = data.subset(keep)
    train, held = holdout_split(len(data), cfg.data.holdout_fraction, cfg.data.split_seed)
    return data, train, held


def dihedral(x: torch.Tensor, ops: torch.Tensor) -> torch.Tensor:
    """x (B, C, H, W), ops (B,) in 0..7 -> each image turned by ops % 4 quarter turns, then flipped if ops >= 4."""
    out = x.clone()
    for op in ops.unique().tolist():
        sel = ops == op
        y = torch.rot90(x[sel], k=op % 4, dims=(-2, -1))
        out[sel] = torch.flip(y, dims=(-1,)) if op >= 4 else y
    return out


def augment(xa: torch.Tensor, xb: torch.Tensor, kinds: tuple[str, str], g: torch.Generator):
    """Random flips and quarter turns of the image inputs (seed 003 App. B3.2). Two image towers get the SAME
    transform per pair: they see the same sky, and its orientation is shared evidence (FIRST vs NVSS)."""
    ops = torch.randint(0, 8, (xa.shape[0],), generator=g)
    if kinds[0] == "image":
        xa = dihedral(xa, ops)
    if kinds[1] == "image":
        xb = dihedral(xb, ops if kinds[0] == "image" else torch.randint(0, 8, (xb.shape[0],), generator=g))
    return xa, xb


def trainable_state(model: AlignModel) -> dict[str, torch.Tensor]:
    """The entries a resume needs: heads, logit scale, and a backbone only when some of it trains."""
    keep = {}
    for prefix, tower in (("a.", model.a), ("b.", model.b)):
        parts = [("head.", tower.head)] + ([] if tower.frozen else [("backbone.", tower.backbone)])
        for sub, module in parts:
            keep.update({prefix + sub + k: v for k, v in module.state_dict().items()})
    keep["log_scale"] = model.log_scale.detach()
    return keep


def load_trainable_state(model: AlignModel, state: dict[str, torch.Tensor], where: str) -> None:
    missing, unexpected = model.load_state_dict(state, strict=False)
    wanted = set(trainable_state(model))
    if unexpected or wanted & set(missing):
        raise TesseraError(f"{where}: checkpoint does not fit the towers (unexpected {sorted(unexpected)[:3]}, "
                           f"missing {sorted(wanted & set(missing))[:3]})")


class AlignTrainer:
    """One alignment run: the (DDP-wrapped) AlignModel, optimizer, schedule, data order."""

    def __init__(self, cfg: AlignConfig, model: AlignModel, train: PairedData, info: D.DistInfo,
                 logger: MetricsLogger, run_dir: Path):
        tc = cfg.train
        self.cfg, self.info, self.logger, self.run_dir = cfg, info, logger, run_dir
        self.device = info.device
        self.train = train
        self.kinds = (model.a.input_kind, model.b.input_kind)
        self.objective = Alignment(cfg)  # the step over PairedViews (objectives/alignment.py)
        self.sampler = StepSampler(len(train), self.objective.batch_size(), info.world_size, info.rank, tc.seed)
        model = model.to(self.device)
        if info.distributed:
            model = nn.parallel.DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.model = model.train()
        self.optimizer = build_optimizer(D.unwrap(model), tc.lr, tc.weight_decay, tc.betas, self.device)
        self.scheduler = build_scheduler(self.optimizer, tc.max_steps, tc.warmup_fraction, tc.lr, tc.min_lr)

    @property
    def checkpoint_dir(self) -> Path:
        return self.run_dir / "checkpoints"

    def batch(self, step: int) -> PairedViews:
        """This rank's pairs of optimizer step ``step``, augmented, on the device."""
        idx = torch.as_tensor(self.sampler.indices(step))
        xa, xb = self.train.xa[idx], self.train.xb[idx]
        if self.cfg.train.augment:
            g = torch.Generator().manual_seed(mix_seed(self.cfg.train.seed, self.info.rank, step))
            xa, xb = augment(xa, xb, self.kinds, g)
        return PairedViews(xa, xb, self.kinds).to(self.device)

    def context(self, step: int) -> StepContext:
        seed = mix_seed(self.cfg.train.seed, self.info.rank, step)
        return StepContext(step=step, micro=0, max_steps=self.cfg.train.max_steps,
                           generator=lambda stream: torch.Generator().manual_seed(mix_seed(seed, stream)))

    def train_step(self, step: int) -> dict[str, float]:
        """One optimizer step: the objective's step on the paired batch (objectives/alignment.py), clip, update."""
        self.optimizer.zero_grad(set_to_none=True)
        out = self.objective.step(self.model, self.batch(step), self.context(step))
        out.loss.backward()
        mean_loss = float(D.all_reduce_mean(out.loss))
        params = [p for p in self.model.parameters() if p.requires_grad]
        grad_norm = float(nn.utils.clip_grad_norm_(params, self.objective.grad_clip()))
        check_finite(mean_loss, grad_norm, {}, NAME, step + 1)
        lr = self.optimizer.param_groups[0]["lr"]
        scale = float(D.unwrap(self.model).scale.detach())  # the scale this step's loss used
        self.optimizer.step()
        self.scheduler.step()
        return {"loss": mean_loss, "pair_accuracy": float(D.all_reduce_mean(out.parts["pair_accuracy"])),
                "lr": lr, "grad_norm": grad_norm, "logit_scale": scale}

    def save(self, step: int) -> None:
        if D.is_main_process():
            state = {"stage": NAME, "model": trainable_state(D.unwrap(self.model)),
                     "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                     "world_size": self.info.world_size, "config": to_dict(self.cfg)}
            save_checkpoint(self.checkpoint_dir, step, state, keep=self.cfg.train.keep_checkpoints)
        D.barrier()

    def restore(self, path: Path) -> int:
        state = load_checkpoint(path, map_location=self.device)
        if state.get("world_size", 1) != self.info.world_size:
            raise TesseraError(f"{path}: written with {state.get('world_size')} processes, resumed with "
                               f"{self.info.world_size}; the data order depends on the process count")
        load_trainable_state(D.unwrap(self.model), state["model"], str(path))
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        return int(state["step"])

    def fit(self, start: int = 0, after_step: StepHook | None = None) -> None:
        from tessera.progress import progress_bar

        tc = self.cfg.train
        bar = progress_bar(total=tc.max_steps, initial=start, desc=NAME, unit="step", dynamic_ncols=True,
                           disable=not (D.is_main_process() and tc.progress), every=max(1, tc.log_every))
        try:
            for step in range(start, tc.max_steps):
                metrics = self.train_step(step)
                done = step + 1
                bar.update(1)
                if done % tc.log_every == 0 or done == tc.max_steps:
                    self.logger.log({"stage": NAME, "step": done, **metrics, "pairs_per_step":
                                     tc.batch_size * self.info.world_size})
                    bar.set_postfix(loss=f"{metrics['loss']:.4f}", acc=f"{metrics['pair_accuracy']:.2f}")
                if done % tc.checkpoint_every == 0 or done == tc.max_steps:
                    self.save(done)
                if after_step is not None:
                    after_step(done)
        finally:
            bar.close()


def _first_difference(a: Any, b: Any, prefix: str = "") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in a:
            found = _first_difference(a[key], b.get(key), f"{prefix}.{key}" if prefix else key)
            if found:
                return found
        return None
    return None if a == b else prefix


def _check_resume(cfg: AlignConfig, run_dir: Path) -> None:
    saved = to_dict(load_saved_config(AlignConfig, run_dir))
    key = _first_difference(to_dict(cfg), saved)
    if key is not None:
        raise TesseraError(f"{run_dir / 'config.yaml'}: --resume with a different config (key '{key}'); resume "
                           "with the saved config or start a new run")


def _write_split(run_dir: Path, data: PairedData, train: np.ndarray, held: np.ndarray) -> None:
    payload = {"train": train.tolist(), "held_out": held.tolist(), "objects": data.objects,
               "excluded": data.excluded, "names": list(data.names)}
    (run_dir / SPLIT_FILE).write_text(json.dumps(payload, indent=1))


def read_split(run_dir: str | Path) -> tuple[np.ndarray, np.ndarray]:
    info = json.loads((Path(run_dir) / SPLIT_FILE).read_text())
    return np.asarray(info["train"], dtype=np.int64), np.asarray(info["held_out"], dtype=np.int64)


def _export(model: AlignModel, run_dir: Path) -> None:
    out = run_dir / "model"
    if out.exists():
        shutil.rmtree(out)
    export_tower(model.a, out / "tower_a")
    export_tower(model.b, out / "tower_b")


def _pair_inputs(cfg: AlignConfig) -> list[str]:
    """Local inputs that --out must not clobber (the pairs CSV or FR-DEEP folder, local tower refs)."""
    if cfg.pairs.startswith(("frdeep-pairs:", "match:")):
        pairs = cfg.pairs.split(":", 1)[1].split(",")
    else:
        pairs = [cfg.pairs]
    return pairs + [r for r in (cfg.a, cfg.b) if ":" not in r]


def align(cfg: AlignConfig, out: str | Path, resume: bool = False, overwrite: bool = False,
          after_step: StepHook | None = None) -> Path:
    """Align tower ``cfg.a`` with tower ``cfg.b`` on the pairs ``cfg.pairs``; returns the run directory.

    One process, or one per device under torchrun (negatives gathered across processes). ``resume`` continues
    exactly from the latest checkpoint. ``after_step(step)`` is called after every optimizer step and its
    checkpoint (the tests inject an interruption through it, as for pretrain)."""
    info = D.setup_distributed(cfg.train.device)
    try:
        model = build_model(cfg)
        data, train_idx, held_idx = prepared_pairs(cfg, model)
        if len(train_idx) < cfg.train.batch_size * info.world_size:
            raise TesseraError(f"{len(train_idx)} training pairs, fewer than one global batch (train.batch_size="
                               f"{cfg.train.batch_size} x {info.world_size} processes); lower train.batch_size")
        run_dir = Path(out)
        if D.is_main_process():
            prepare_output_dir(run_dir, overwrite=overwrite, resume=resume, inputs=_pair_inputs(cfg))
            if resume and (run_dir / "config.yaml").exists():
                _check_resume(cfg, run_dir)
            save_config(cfg, run_dir)
            _write_split(run_dir, data, train_idx, held_idx)
        D.barrier()
        logger = MetricsLogger([run_dir / "metrics.jsonl"], enabled=D.is_main_process())
        try:
            trainer = AlignTrainer(cfg, model, data.subset(train_idx), info, logger, run_dir)
            start = 0
            latest = latest_checkpoint(trainer.checkpoint_dir) if resume else None
            if latest is not None:
                start = trainer.restore(latest)
            if resume and D.is_main_process():
                truncate_metrics(run_dir / "metrics.jsonl", lambda r: r["step"] <= start)
            D.barrier()
            trainer.fit(start, after_step)
        finally:
            logger.close()
        if D.is_main_process():
            _export(D.unwrap(trainer.model), run_dir)
        D.barrier()
        return run_dir
    finally:
        D.cleanup_distributed(info)


__all__ = ["align", "build_model", "prepared_pairs", "read_split", "AlignTrainer"]
