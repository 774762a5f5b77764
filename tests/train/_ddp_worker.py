"""Worker run in each of 2 gloo processes by test_distributed.py (module-level so spawn can import it)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

MICRO = dict(preset="vit_micro_patch8_32", proj_hidden=32, proj_dim=16)
B = 4  # per-rank micro-batch
V = 2


def global_views(seed: int, n: int, v: int) -> torch.Tensor:
    """Deterministic 'views' (n, v, 1, 32, 32) in [0, 1] with some structure (bright squares on noise)."""
    g = torch.Generator().manual_seed(seed)
    x = 0.1 * torch.rand(n, v, 1, 32, 32, generator=g)
    for i in range(n):
        r, c = torch.randint(0, 24, (2,), generator=g).tolist()
        x[i, :, :, r : r + 8, c : c + 8] += 0.8
    return x.clamp(0, 1)


def build(branch: str):
    from tessera.models import ModelConfig, build_pretrain_model

    torch.manual_seed(0)
    return build_pretrain_model(ModelConfig(**MICRO), branches=(branch,))


def contrastive_objective(gather_with_grad: bool):
    from tessera.objectives.contrastive import ContrastiveLoss
    from tessera.train.steps import ContrastiveObjective

    return ContrastiveObjective(ContrastiveLoss("soft_hcl"), gather_with_grad=gather_with_grad)


def reconstruction_objective():
    from tessera.objectives.reconstruction import ReconstructionLoss
    from tessera.train.steps import ReconstructionObjective

    return ReconstructionObjective(ReconstructionLoss("l2"))


def grads(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def single_process_reference(world: int) -> dict:
    """Loss and gradients of one process on the global batch (world * B samples)."""
    out = {}
    views = global_views(1, world * B, V)
    for with_grad in (False, True):
        model = build("contrastive")
        step = contrastive_objective(with_grad)(model, views, 0.1)
        step.loss.backward()
        out[f"contrastive_{with_grad}"] = (step.loss.item(), grads(model))
    model = build("reconstruction")
    rviews = global_views(2, world * B, 1)
    noise = torch.rand(world * B, 16, generator=torch.Generator().manual_seed(3))
    step = reconstruction_objective()(model, rviews, noise)
    step.loss.backward()
    out["reconstruction"] = (step.loss.item(), grads(model))
    return out


def ddp_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from torch import nn

    from tessera.train import distributed as D

    info = D.setup_distributed("cpu")
    result: dict = {"rank": info.rank, "world": info.world_size}
    try:
        local = slice(rank * B, (rank + 1) * B)
        # 1) contrastive loss / gradients against the global key set, with and without gradient through keys.
        views = global_views(1, world * B, V)[local]
        for with_grad in (False, True):
            model = D.convert_sync_batchnorm(build("contrastive"), info.device)
            result["global_bn"] = any(isinstance(m, D.GlobalBatchNorm) for m in model.modules())
            ddp = nn.parallel.DistributedDataParallel(model)
            step = contrastive_objective(with_grad)(ddp, views, 0.1)
            step.loss.backward()
            result[f"contrastive_{with_grad}"] = (float(D.all_reduce_mean(step.loss)), grads(model))
        # 2) reconstruction loss / gradients.
        model = build("reconstruction")
        ddp = nn.parallel.DistributedDataParallel(model)
        rviews = global_views(2, world * B, 1)[local]
        noise = torch.rand(world * B, 16, generator=torch.Generator().manual_seed(3))[local]
        step = reconstruction_objective()(ddp, rviews, noise)
        step.loss.backward()
        result["reconstruction"] = (float(D.all_reduce_mean(step.loss)), grads(model))
        # 3) a few optimizer steps on different data per rank, forward through the DDP module: ranks stay equal.
        from tessera.train.optim import build_optimizer

        model = D.convert_sync_batchnorm(build("contrastive"), info.device)
        ddp = nn.parallel.DistributedDataParallel(model)
        opt = build_optimizer(model, 1e-3, 0.05, (0.9, 0.95), info.device)
        objective = contrastive_objective(False)
        for i in range(3):
            opt.zero_grad()
            objective(ddp, global_views(100 + 10 * i + rank, B, V), 0.1).loss.backward()
            opt.step()
        flat = torch.cat([p.detach().flatten() for p in model.parameters()])
        everyone = D.all_gather_no_grad(flat.unsqueeze(0))
        result["param_spread"] = float((everyone - everyone[0]).abs().max())
        fresh = torch.cat([p.detach().flatten() for p in build("contrastive").parameters()])
        result["param_moved"] = float((flat - fresh).abs().max())
        bn = next(m for m in model.modules() if isinstance(m, nn.BatchNorm1d))
        running = D.all_gather_no_grad(bn.running_mean.unsqueeze(0))
        result["bn_running_spread"] = float((running - running[0]).abs().max())
    finally:
        torch.save(result, Path(out_dir) / f"rank{rank}.pt")
        D.cleanup_distributed(info)


def pretrain_worker(rank: int, world: int, port: int, store: str, out: str) -> None:
    """The real engine under 2 processes: a tiny two-stage run."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from tessera.train.config import resolve_pretrain_config
    from tessera.train.engine import pretrain

    cfg = resolve_pretrain_config("cpu", [
        "model.preset=vit_micro_patch8_32", "model.proj_hidden=32", "model.proj_dim=16", "train.max_steps=2",
        "train.batch_size_reconstruction=4", "train.batch_size_contrastive=4", "train.effective_batch=16",
        "train.checkpoint_every=1", "train.log_every=1", "train.progress=false",
    ])
    pretrain(cfg, store, out)


def distill_worker(rank: int, world: int, port: int, store: str, out_dir: str, objective: str) -> None:
    """3 optimizer steps of a self-distillation stage on 2 ranks; saves the teacher and the objective state."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from tessera.corpus.store import CutoutStore
    from tessera.train import distributed as D
    from tessera.train.config import resolve_pretrain_config
    from tessera.train.engine import StageSpec, StageTrainer
    from tessera.train.logging import MetricsLogger

    cfg = resolve_pretrain_config("cpu", [
        "model.preset=vit_micro_patch8_32", "train.effective_batch=null", "train.progress=false",
        f"train.branch={objective}", "objective.dino.batch_size=4", "objective.dino.head_hidden=32",
        "objective.dino.bottleneck=16", "objective.dino.prototypes=64", "views.multicrop.local_crops=2",
        "objective.byol.batch_size=4", "objective.byol.proj_hidden=32", "objective.byol.pred_hidden=32",
    ])
    info = D.setup_distributed("cpu")
    try:
        spec = StageSpec(0, objective, Path(out_dir) / "stage", step_offset=0, max_steps=10)
        trainer = StageTrainer(cfg, spec, CutoutStore(store), info, MetricsLogger([], enabled=False))
        start = torch.cat([p.detach().flatten().clone() for p in D.unwrap(trainer.model).teacher.parameters()])
        for step in range(3):
            trainer.train_step(step)
        teacher = torch.cat([p.detach().flatten() for p in D.unwrap(trainer.model).teacher.parameters()])
        torch.save({"teacher": teacher, "start": start, "objective": trainer.objective.state_dict()},
                   Path(out_dir) / f"{objective}_rank{rank}.pt")
    finally:
        D.cleanup_distributed(info)
