"""Checkpoint files, metrics logging and the health monitors."""

import json
import math
import random

import numpy as np
import pytest
import torch

from tessera.train.checkpoint import (
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
    set_rng_state,
)
from tessera.train.logging import MetricsLogger, read_metrics, truncate_metrics
from tessera.train.monitors import CollapseMonitor, NonFiniteLossError, check_finite, embedding_std


def test_checkpoints_are_atomic_kept_and_restore_rng(tmp_path, monkeypatch):
    for step in (2, 4, 6):
        save_checkpoint(tmp_path, step, {"w": torch.full((2,), float(step))}, keep=2)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [4, 6]
    assert not [p for p in tmp_path.iterdir() if "tmp" in p.name]
    state = load_checkpoint(latest_checkpoint(tmp_path))
    assert state["step"] == 6 and torch.equal(state["w"], torch.full((2,), 6.0))
    # RNG states come back: the draws after restoring equal the draws after saving.
    save_checkpoint(tmp_path, 8, {}, keep=5)
    after_save = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state(load_checkpoint(latest_checkpoint(tmp_path))["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == after_save


def test_a_failed_write_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    save_checkpoint(tmp_path, 1, {"w": 1})

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError):
        save_checkpoint(tmp_path, 2, {"w": 2})
    assert [s for s, _ in list_checkpoints(tmp_path)] == [1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_00000001.pt"]


def test_metrics_jsonl_and_truncation(tmp_path):
    logger = MetricsLogger([tmp_path / "a.jsonl", tmp_path / "b.jsonl"])
    for step in (1, 2, 3):
        logger.log({"stage": "reconstruction", "stage_index": 0, "step": step, "loss": torch.tensor(0.5 * step)})
    logger.log({"stage": "reconstruction", "stage_index": 0, "step": 4, "loss": float("nan")})
    records = read_metrics(tmp_path / "a.jsonl")
    assert [r["step"] for r in records] == [1, 2, 3, 4] and records[1]["loss"] == 1.0 and records[3]["loss"] == "nan"
    assert (tmp_path / "b.jsonl").read_text() == (tmp_path / "a.jsonl").read_text()
    truncate_metrics(tmp_path / "a.jsonl", lambda r: r["step"] <= 2)
    assert [json.loads(x)["step"] for x in (tmp_path / "a.jsonl").read_text().splitlines()] == [1, 2]
    MetricsLogger([tmp_path / "c.jsonl"], enabled=False).log({"step": 1})
    assert not (tmp_path / "c.jsonl").exists()


def test_collapse_monitor_separates_spread_from_collapsed():
    g = torch.Generator().manual_seed(0)
    spread = torch.randn(512, 64, generator=g)
    assert embedding_std(spread) == pytest.approx(1 / math.sqrt(64), rel=0.1)
    collapsed = torch.randn(1, 64, generator=g).repeat(512, 1) + 1e-4 * torch.randn(512, 64, generator=g)
    monitor = CollapseMonitor(threshold=0.2)
    assert monitor.check(spread, "contrastive", 1)["collapse"] is False
    with pytest.warns(RuntimeWarning, match="collapse"):
        health = monitor.check(collapsed, "contrastive", 2)
    assert health["collapse"] is True and health["embedding_std"] < 1e-3


def test_non_finite_guard_names_step_stage_and_parts():
    check_finite(1.0, 2.0, {"l2": 1.0}, "reconstruction", 3)
    with pytest.raises(NonFiniteLossError, match=r"stage 'contrastive' step 7.*contrastive=inf"):
        check_finite(float("inf"), 1.0, {"contrastive": float("inf")}, "contrastive", 7)
    with pytest.raises(NonFiniteLossError, match="gradient norm"):
        check_finite(1.0, float("nan"), {"l2": 1.0}, "reconstruction", 1)


def test_tensorboard_is_used_when_importable_and_announced_when_not(tmp_path):
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        with pytest.warns(RuntimeWarning, match="TensorBoard is not importable"):
            logger = MetricsLogger([tmp_path / "m.jsonl"], tensorboard_dir=tmp_path / "tb")
        assert logger.writer is None
    else:
        logger = MetricsLogger([tmp_path / "m.jsonl"], tensorboard_dir=tmp_path / "tb")
        logger.log({"stage": "reconstruction", "step": 1, "loss": 0.5})
        logger.close()
        assert any((tmp_path / "tb").iterdir())
