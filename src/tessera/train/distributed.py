"""Everything distributed in one small module (DESIGN §5.6): process-group setup from the torchrun environment,
rank queries, ``unwrap``, embedding all-gathers with and without gradient, and a BatchNorm synchronized across
ranks that also works on CPU (gloo), where ``torch.nn.SyncBatchNorm`` refuses to run.

Gradient bookkeeping (why the sums below are sums): under DDP each rank back-propagates its *local* mean loss
``loss_r`` and DDP averages the parameter gradients over the ``G`` ranks, i.e. it follows
``(1/G) sum_r grad loss_r = grad of the global mean loss``. Whenever a tensor of rank ``r`` also influences the
loss of another rank (gathered contrastive keys, synchronized BatchNorm statistics), the gradient that reaches rank
``r`` must be the SUM over ranks of the partial derivatives; DDP's average then supplies the single ``1/G``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from tessera import dist as tessera_dist
from tessera.dist import _env_int
from tessera.errors import ConfigError


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: ``rank`` of ``world_size``, its ``local_rank`` and ``device``."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    initialized_here: bool = False

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup_distributed(device: str = "auto") -> DistInfo:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT) if any.

    nccl on CUDA, gloo on CPU. A single process (no WORLD_SIZE or WORLD_SIZE=1) starts no process group.
    """
    world_size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = tessera_dist.local_rank()
    if device == "auto":
        dev = torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    else:
        try:
            dev = torch.device(device)
        except (RuntimeError, TypeError):
            raise ConfigError(
                f"config key 'train.device': {device!r} is not a device (auto, cpu, cuda or cuda:N)"
            ) from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"config key 'train.device': {device!r}, but CUDA is not available on this machine (use "
                              "auto or cpu)")
        if dev.type == "cuda" and dev.index is None:
            dev = torch.device(f"cuda:{local_rank}")
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    initialized_here = False
    if dist.is_available() and dist.is_initialized():
        rank, world_size = dist.get_rank(), dist.get_world_size()
    elif world_size > 1:
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world_size)
        initialized_here = True
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=dev,
                    initialized_here=initialized_here)


def cleanup_distributed(info: DistInfo) -> None:
    """Leave the process group if :func:`setup_distributed` created it."""
    if info.initialized_here and dist.is_initialized():
        dist.destroy_process_group()


# Rank queries and unwrapping live in the dependency-free tessera.dist; the old names stay importable here.
is_dist = tessera_dist.is_distributed
get_rank = tessera_dist.rank
get_world_size = tessera_dist.world_size
is_main_process = tessera_dist.is_main
barrier = tessera_dist.barrier
unwrap = tessera_dist.unwrap


def all_reduce_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over ranks (a detached copy; for logging and the non-finite guard)."""
    x = x.detach().clone()
    if is_dist():
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
        x /= get_world_size()
    return x


def all_gather_no_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x: (B, ...)`` of every rank along dim 0 -> ``(G*B, ...)``, without gradient.

    Every rank must pass the same shape (the sampler gives each rank the same micro-batch size).
    """
    if not is_dist():
        return x.detach()
    parts = [torch.empty_like(x) for _ in range(get_world_size())]
    dist.all_gather(parts, x.detach().contiguous())
    return torch.cat(parts, dim=0)


class _AllGatherWithGrad(torch.autograd.Function):
    """all_gather whose backward sums, over ranks, the gradients of this rank's slice (see the module docstring)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # noqa: D401
        ctx.batch = x.shape[0]
        return all_gather_no_grad(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = get_rank() * ctx.batch
        return grad[start : start + ctx.batch]


class _AllReduceSumWithGrad(torch.autograd.Function):
    """all_reduce(SUM) whose backward is again an all_reduce(SUM) of the incoming gradients."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # noqa: D401
        out = x.detach().clone().contiguous()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad


def all_reduce_sum_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Sum of ``x`` over ranks, differentiable (gradient of every rank's copy summed back; module docstring)."""
    if not is_dist():
        return x
    return _AllReduceSumWithGrad.apply(x)


def all_gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x: (B, ...)`` of every rank -> ``(G*B, ...)`` with gradient flowing back to every rank's slice.

    With DDP (gradients averaged over ranks) the parameter gradients then equal those of one process that sees
    the global batch: the backward all-reduce SUMs, DDP's average supplies the ``1/G``.
    """
    if not is_dist():
        return x
    return _AllGatherWithGrad.apply(x)


def gather_keys(local: torch.Tensor, with_grad: bool = False) -> tuple[torch.Tensor, int]:
    """The global contrastive key set and where this rank's queries sit in it (DESIGN §4, seed 000 §8.2.2).

    local: (B, V, D) -> keys (G*B, V, D), offset = rank * B. Without ``with_grad`` remote keys are stop-gradient
    and the local slice is the local tensor itself, so local queries and local keys keep their gradient.
    """
    if not is_dist():
        return local, 0
    offset = get_rank() * local.shape[0]
    if with_grad:
        return all_gather_with_grad(local), offset
    gathered = all_gather_no_grad(local)
    keys = torch.cat([gathered[:offset], local, gathered[offset + local.shape[0] :]], dim=0)
    return keys, offset


class GlobalBatchNorm(nn.BatchNorm1d):
    """BatchNorm1d whose training statistics are those of the global batch over all ranks; works with gloo on CPU.

    Same parameters and buffers as BatchNorm1d (state dicts are interchangeable). In a single process, or in eval
    mode, it is exactly BatchNorm1d. Seed 000 §8.2.2: the projection head's BatchNorm is synchronized.
    x: (N, D) -> (N, D)
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and is_dist()):
            return super().forward(x)
        # Sums are all-reduced with autograd (backward = SUM of grads over ranks; see the module docstring).
        count = torch.tensor([float(x.shape[0])], device=x.device, dtype=torch.float32)
        dist.all_reduce(count, op=dist.ReduceOp.SUM)
        xf = x.float()
        n = count[0]
        # Two passes (mean, then centred squares) keep the variance accurate in float32.
        mean = all_reduce_sum_with_grad(xf.sum(0)) / n
        centred = xf - mean
        var = all_reduce_sum_with_grad((centred * centred).sum(0)) / n
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                unbiased = var * n / (n - 1).clamp_min(1)
                self.running_mean.mul_(1 - momentum).add_(momentum * mean.detach())
                self.running_var.mul_(1 - momentum).add_(momentum * unbiased.detach())
        y = centred * torch.rsqrt(var + self.eps)
        if self.affine:
            y = y * self.weight + self.bias
        return y.to(x.dtype)


def convert_sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Synchronize every BatchNorm across ranks: ``nn.SyncBatchNorm`` on CUDA, :class:`GlobalBatchNorm` elsewhere."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return _convert_to_global_bn(module)


def _convert_to_global_bn(module: nn.Module) -> nn.Module:
    if isinstance(module, nn.BatchNorm1d) and not isinstance(module, GlobalBatchNorm):
        new = GlobalBatchNorm(
            module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats
        )
        new.load_state_dict(module.state_dict())
        new.train(module.training)
        return new.to(next(module.buffers(), torch.empty(0)).device)
    for name, child in module.named_children():
        converted = _convert_to_global_bn(child)
        if converted is not child:
            setattr(module, name, converted)
    return module
