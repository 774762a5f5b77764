"""Worker of test_ddp.py: two spectrum towers with heads, one global batch of 8 pairs split over the ranks."""

from __future__ import annotations

import os

import torch
from torch import nn

from tessera.align.head import CrossAttentionPooling
from tessera.align.loss import clip_loss
from tessera.align.towers import AlignModel, Tower
from tessera.models.spectrum import SpectrumEncoder
from tessera.train import distributed as D

GLOBAL = 8


def tiny_model() -> AlignModel:
    torch.manual_seed(0)
    towers = []
    for _ in range(2):
        backbone = SpectrumEncoder(length=40, dim=16, depth=1, heads=2)
        backbone.requires_grad_(False)
        towers.append(Tower(backbone, CrossAttentionPooling(16, 16, 4, 16)))
    return AlignModel(*towers, logit_scale=15.5, learn_scale=True)


def global_batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(GLOBAL, 1, 40, generator=g), torch.randn(GLOBAL, 1, 40, generator=g)


def loss_and_grads(model: nn.Module, xa: torch.Tensor, xb: torch.Tensor):
    za, zb = model(xa, xb)
    loss = clip_loss(za, zb, D.unwrap(model).scale)
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in D.unwrap(model).named_parameters() if p.grad is not None}
    return float(D.all_reduce_mean(loss)), grads


def single_process_reference():
    return loss_and_grads(tiny_model(), *global_batch())


def ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    info = D.setup_distributed("cpu")
    try:
        model = nn.parallel.DistributedDataParallel(tiny_model())
        xa, xb = global_batch()
        per = GLOBAL // world
        part = slice(rank * per, (rank + 1) * per)
        torch.save(loss_and_grads(model, xa[part], xb[part]), os.path.join(out, f"rank{rank}.pt"))
    finally:
        D.cleanup_distributed(info)
