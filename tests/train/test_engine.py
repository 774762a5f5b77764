"""The engine on tiny stores: two-stage run layout and hand-over, exact resume, the non-finite guard, the
sampler's data order, and the `tessera pretrain` command on real FIRST images."""

from __future__ import annotations

import json

import pytest
import torch

from tessera.train.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
from tessera.train.config import resolve_pretrain_config
from tessera.train.engine import StepSampler, pretrain
from tests.train._hooks import StopRequested, stop_at
from tessera.train.logging import read_metrics
from tessera.train.monitors import NonFiniteLossError

MICRO = [
    "model.preset=vit_micro_patch8_32", "model.proj_hidden=32", "model.proj_dim=16",
    "train.batch_size_reconstruction=8", "train.batch_size_contrastive=4", "train.progress=false",
    "train.log_every=1",
]


def micro_cfg(*overrides: str):
    return resolve_pretrain_config("cpu", MICRO + list(overrides))


def final_model_state(run, stage="stage2_contrastive"):
    return load_checkpoint(latest_checkpoint(run / stage / "checkpoints"))["model"]


def test_sampler_is_a_pure_function_of_the_step_and_shards_like_distributed_sampler():
    ranks = [StepSampler(50, 4, 2, r, seed=42) for r in range(2)]
    single = StepSampler(50, 8, 1, 0, seed=42)
    for m in range(14):  # crosses an epoch boundary (6 global batches per epoch)
        assert ranks[0].indices(m) + ranks[1].indices(m) == single.indices(m)
    epoch0 = sum((single.indices(m) for m in range(6)), [])
    assert len(set(epoch0)) == 48  # no repeats within an epoch
    assert single.indices(6) != single.indices(0)  # a new permutation next epoch
    assert StepSampler(50, 8, 1, 0, seed=42).indices(9) == single.indices(9)


@pytest.mark.slow
def test_two_stage_run_layout_and_encoder_hand_over(blob_store, tmp_path):
    run = pretrain(micro_cfg("train.max_steps=3", "train.checkpoint_every=2"), blob_store, tmp_path / "run")
    assert (run / "config.yaml").exists() and (run / "model" / "config.json").exists()
    for stage in ("stage1_reconstruction", "stage2_contrastive"):
        assert [s for s, _ in list_checkpoints(run / stage / "checkpoints")] == [2, 3]
        assert (run / stage / "metrics.jsonl").exists() and (run / stage / "model" / "config.json").exists()
    records = read_metrics(run / "metrics.jsonl")
    assert [(r["stage"], r["step"], r["global_step"]) for r in records] == [
        ("reconstruction", 1, 1), ("reconstruction", 2, 2), ("reconstruction", 3, 3),
        ("contrastive", 1, 4), ("contrastive", 2, 5), ("contrastive", 3, 6)]
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in records)
    assert all({"lr", "images_per_s", "embedding_std"} <= r.keys() for r in records)
    assert all("temperature" in r for r in records if r["stage"] == "contrastive")
    # Stage 2 starts from the stage-1 encoder with a fresh projection head (seed 000 §5.4).
    from tessera.train.engine import StageSpec, StageTrainer
    from tessera.corpus.store import CutoutStore
    from tessera.train import distributed as D
    from tessera.train.logging import MetricsLogger

    cfg = micro_cfg("train.max_steps=3")
    spec = StageSpec(1, "contrastive", tmp_path / "s2", step_offset=3, max_steps=3)
    trainer = StageTrainer(cfg, spec, CutoutStore(blob_store), D.setup_distributed("cpu"), MetricsLogger([],
        enabled=False))
    stage1 = final_model_state(run, "stage1_reconstruction")
    trainer.load_encoder_from(latest_checkpoint(run / "stage1_reconstruction" / "checkpoints"))
    own = trainer.model.state_dict()
    enc_keys = [k for k in stage1 if k.startswith("encoder.")]
    assert enc_keys and all(torch.equal(own[k], stage1[k]) for k in enc_keys)
    assert not any(k.startswith("decoder.") for k in own)  # the contrastive stage builds no decoder
    # The exported final model is the stage-2 encoder.
    from safetensors.torch import load_file

    exported = load_file(str(run / "model" / "model.safetensors"))
    stage2 = final_model_state(run)
    name = next(k for k in exported if k.endswith("layernorm.weight"))
    assert torch.equal(exported[name], stage2[f"encoder.backbone.{name}"])


@pytest.mark.slow
@pytest.mark.parametrize("stop_after", [2, 4, 5])  # mid stage 1 at a checkpoint; stage 2 before / at a checkpoint
def test_resume_reproduces_the_uninterrupted_run(blob_store, tmp_path, stop_after):
    cfg = micro_cfg("train.max_steps=3", "train.checkpoint_every=2", "train.effective_batch=16")
    full = pretrain(cfg, blob_store, tmp_path / "full")
    with pytest.raises(StopRequested):
        pretrain(cfg, blob_store, tmp_path / "cut", after_step=stop_at(stop_after))
    resumed = pretrain(cfg, blob_store, tmp_path / "cut", resume=True)
    a, b = final_model_state(full), final_model_state(resumed)
    assert a.keys() == b.keys()
    assert max(float((a[k].float() - b[k].float()).abs().max()) for k in a) <= 1e-6
    steps = [(r["stage"], r["step"]) for r in read_metrics(resumed / "metrics.jsonl")]
    assert steps == [(r["stage"], r["step"]) for r in read_metrics(full / "metrics.jsonl")]  # no duplicates


def test_resume_with_a_different_config_is_refused(blob_store, tmp_path):
    cfg = micro_cfg("train.branch=reconstruction", "train.max_steps=1")
    pretrain(cfg, blob_store, tmp_path / "run")
    from tessera.errors import TesseraError

    with pytest.raises(TesseraError, match="train.lr"):
        pretrain(micro_cfg("train.branch=reconstruction", "train.max_steps=1", "train.lr=0.1"), blob_store,
                 tmp_path / "run", resume=True)


def test_non_finite_loss_stops_with_a_clear_message_and_keeps_the_last_checkpoint(blob_store, tmp_path, monkeypatch):
    from tessera.objectives.reconstruction import ReconstructionLoss

    original = ReconstructionLoss.forward
    calls = {"n": 0}

    def poisoned(self, *args, **kwargs):
        loss, parts = original(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] >= 3:  # optimizer step 3 (one micro-batch per step)
            loss = loss * float("inf")
            parts = dict(parts, mse=loss.detach())
        return loss, parts

    monkeypatch.setattr(ReconstructionLoss, "forward", poisoned)
    cfg = micro_cfg("train.branch=reconstruction", "train.max_steps=5", "train.checkpoint_every=1")
    with pytest.raises(NonFiniteLossError, match=r"stage 'reconstruction' step 3 .*mse=inf"):
        pretrain(cfg, blob_store, tmp_path / "run")
    assert [s for s, _ in list_checkpoints(tmp_path / "run" / "checkpoints")] == [1, 2]
    state = load_checkpoint(latest_checkpoint(tmp_path / "run" / "checkpoints"))
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_pretrain_command_on_real_first_images(first_store, tmp_path):
    from tessera.cli import main

    run = tmp_path / "run"
    overrides = [o for o in MICRO if "progress" not in o] + ["train.branch=contrastive", "train.max_steps=2",
                                                             "objective.temperature_warmup_fraction=0.5"]
    code = main(["pretrain", "--config", "cpu", "--corpus", str(first_store), "--out", str(run), *overrides])
    assert code == 0
    records = read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2] and all(r["stage"] == "contrastive" for r in records)
    assert records[0]["temperature"] == pytest.approx(0.2)  # warmup starts at 0.20
    # The exported encoder loads through the evaluation interface and embeds real images.
    from tessera.models.load import load

    encoder = load(str(run))
    feats = encoder.embed(torch.rand(3, 1, 40, 40))
    assert feats.shape == (3, encoder.hidden_size) and torch.isfinite(feats).all()
    # An existing run directory is not clobbered without --overwrite.
    assert main(["pretrain", "--config", "cpu", "--corpus", str(first_store), "--out", str(run), *overrides]) == 2
    saved = json.loads(json.dumps(records[-1]))
    assert saved["micro_batch"] == 4


def test_missing_corpus_is_a_one_line_error(tmp_path, capsys):
    from tessera.cli import main

    assert main(["pretrain", "--corpus", str(tmp_path / "nope"), "--out", str(tmp_path / "run")]) == 2
    assert "nope" in capsys.readouterr().err
