"""Optimizer groups and schedules (seed 000 §8.2.1, §8.2.4)."""

import math

import pytest
import torch
from torch import nn

from tessera.train.optim import WarmupCosine, build_optimizer, build_scheduler, param_groups, temperature_at


class _Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, 8))
        self.registers = nn.Parameter(torch.zeros(1, 2, 8))
        self.position_embeddings = nn.Parameter(torch.zeros(1, 5, 8))
        self.frozen_pos = nn.Parameter(torch.zeros(1, 5, 8), requires_grad=False)
        self.fc = nn.Linear(8, 8)
        self.norm = nn.LayerNorm(8)


def test_no_weight_decay_on_biases_norms_positions_and_tokens():
    groups = param_groups(_Toy(), weight_decay=0.05)
    decay, no_decay = groups
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert decay["names"] == ["fc.weight"]
    assert set(no_decay["names"]) == {"cls_token", "registers", "position_embeddings", "fc.bias", "norm.weight",
                                      "norm.bias"}


def test_no_decay_on_the_real_vit_tokens():
    from tessera.models import ModelConfig, build_pretrain_model

    model = build_pretrain_model(ModelConfig(preset="vit_micro_patch8_32", registers=2, proj_hidden=16, proj_dim=8))
    decay, no_decay = param_groups(model, 0.05)
    assert any("cls_token" in n for n in no_decay["names"]) and any("register" in n for n in no_decay["names"])
    assert not any("cls_token" in n or "register" in n or n.endswith("bias") for n in decay["names"])
    assert all(p.ndim >= 2 for p in decay["params"])


def test_build_optimizer_is_adamw_with_the_betas():
    opt = build_optimizer(_Toy(), 5e-4, 0.05, (0.9, 0.95), torch.device("cpu"))
    assert isinstance(opt, torch.optim.AdamW)
    assert opt.param_groups[0]["betas"] == (0.9, 0.95) and opt.param_groups[0]["lr"] == 5e-4


def test_warmup_then_cosine():
    sched = WarmupCosine(total_steps=100, warmup_steps=15, min_ratio=0.1)
    ramp = [sched(s) for s in range(15)]
    assert ramp == sorted(ramp) and ramp[0] == pytest.approx(1 / 15) and sched(14) == pytest.approx(1.0)
    assert sched(15) == pytest.approx(1.0)
    assert sched(15 + 85 // 2) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (85 // 2) / 85)))
    assert sched(100) == pytest.approx(0.1)
    tail = [sched(s) for s in range(15, 101)]
    assert tail == sorted(tail, reverse=True)


def test_scheduler_drives_the_optimizer_lr():
    model = nn.Linear(2, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1.0)
    sched = build_scheduler(opt, total_steps=20, warmup_fraction=0.15, lr=1.0, min_lr=0.0)  # 3 warmup steps
    lrs = []
    for _ in range(20):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:3] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert lrs[-1] < 0.02 and max(lrs) == pytest.approx(1.0)


def test_temperature_warmup_then_fixed():
    vals = [temperature_at(s, 100, 0.2, 0.1, 0.15) for s in range(100)]
    assert vals[0] == pytest.approx(0.2)
    assert vals[7] == pytest.approx(0.2 - 0.1 * 7 / 15)
    assert all(v == pytest.approx(0.1) for v in vals[15:])
    assert vals[:15] == sorted(vals[:15], reverse=True)
