"""Tiny DINO+iBOT+KoLeo and BYOL runs through the engine: they train, log their schedules and health stats, export
the right network, hand over between stages, and resume exactly (teacher, centre and momentum schedule)."""

from __future__ import annotations

import pytest
import torch

from tessera.train.checkpoint import latest_checkpoint, load_checkpoint
from tessera.train.config import resolve_pretrain_config
from tessera.train.engine import pretrain
from tests.train._hooks import StopRequested, stop_at
from tessera.train.logging import read_metrics

MICRO = ["model.preset=vit_micro_patch8_32", "train.progress=false", "train.log_every=1",
         "train.effective_batch=null", "train.checkpoint_every=2"]
DINO = ["objective.dino.batch_size=4", "objective.dino.head_hidden=32", "objective.dino.bottleneck=16",
        "objective.dino.prototypes=64", "views.multicrop.local_crops=2"]
BYOL = ["objective.byol.batch_size=4", "objective.byol.proj_hidden=32", "objective.byol.pred_hidden=32",
        "objective.byol.proj_dim=16"]


def cfg_for(objective: str, *extra: str):
    return resolve_pretrain_config("cpu", MICRO + (DINO if objective == "dino" else BYOL)
                                   + [f"train.branch={objective}", "train.max_steps=3", *extra])


def exported_equals(run, state, prefix):
    from safetensors.torch import load_file

    exported = load_file(str(run / "model" / "model.safetensors"))
    name = next(k for k in exported if k.endswith("layernorm.weight"))
    return torch.equal(exported[name], state[f"{prefix}backbone.{name}"])


def test_tiny_dino_ibot_koleo_run_trains_and_exports_the_teacher(blob_store, tmp_path):
    run = pretrain(cfg_for("dino"), blob_store, tmp_path / "run")
    records = read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2, 3]
    for key in ("loss_dino_ce", "loss_ibot", "loss_koleo", "teacher_temp", "ema_momentum",
                "distill_teacher_entropy", "distill_kl", "distill_spread", "distill_collapse"):
        assert key in records[-1], key
    assert records[0]["ema_momentum"] == pytest.approx(0.996) and records[-1]["ema_momentum"] > 0.996
    state = load_checkpoint(latest_checkpoint(run / "checkpoints"))
    assert state["exports"] == "teacher" and state["objective"]["center"].shape == (1, 64)
    assert exported_equals(run, state["model"], "teacher.encoder.")
    assert not exported_equals(run, state["model"], "encoder.")  # the student moved away from the teacher
    # the prototypes stayed frozen during the first epoch (32 cutouts / 4 = 8 steps > 3)
    torch.manual_seed(0)
    from tessera.models.load import load

    assert load(str(run)).embed(torch.rand(2, 1, 32, 32)).shape == (2, 32)


def test_tiny_byol_run_exports_the_online_encoder_and_hands_over(blob_store, tmp_path):
    run = pretrain(cfg_for("byol"), blob_store, tmp_path / "run")
    records = read_metrics(run / "metrics.jsonl")
    assert [r["stage"] for r in records] == ["byol"] * 3 and all("distill_spread" in r for r in records)
    state = load_checkpoint(latest_checkpoint(run / "checkpoints"))
    assert state["exports"] == "encoder" and exported_equals(run, state["model"], "encoder.")
    assert not any(k.startswith("teacher.predictor") for k in state["model"])  # the target has no predictor


@pytest.mark.slow
def test_recipe_hands_the_teacher_over_to_the_next_stage(blob_store, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("base: cpu\ntrain:\n  stages:\n    - {objective: byol, max_steps: 2}\n"
                      "    - {objective: dino, max_steps: 1, init: teacher}\n")
    cfg = resolve_pretrain_config(str(recipe), MICRO[:-1] + DINO + BYOL)
    run = pretrain(cfg, blob_store, tmp_path / "run")
    byol = load_checkpoint(latest_checkpoint(run / "stage1_byol" / "checkpoints"))["model"]
    from tessera.train import distributed as D
    from tessera.train.engine import StageSpec, StageTrainer
    from tessera.corpus.store import CutoutStore
    from tessera.train.logging import MetricsLogger
    from tessera.train.config import stage_configs

    spec = StageSpec(1, "dino", tmp_path / "s2", step_offset=2, max_steps=1, init="teacher")
    trainer = StageTrainer(stage_configs(cfg)[1], spec, CutoutStore(blob_store), D.setup_distributed("cpu"),
                           MetricsLogger([], enabled=False))
    trainer.load_encoder_from(latest_checkpoint(run / "stage1_byol" / "checkpoints"), "teacher")
    own = trainer.model.state_dict()
    keys = [k for k in byol if k.startswith("teacher.encoder.")]
    assert keys and all(torch.equal(own[k[len("teacher."):]], byol[k]) for k in keys)
    assert all(torch.equal(own[k], byol[k]) for k in keys)  # the new teacher starts as the new student


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["dino", "byol"])
def test_resume_is_exact_across_teacher_centre_and_momentum(blob_store, tmp_path, objective):
    cfg = cfg_for(objective, "train.max_steps=4")
    full = pretrain(cfg, blob_store, tmp_path / "full")
    with pytest.raises(StopRequested):
        pretrain(cfg, blob_store, tmp_path / "cut", after_step=stop_at(2))
    resumed = pretrain(cfg, blob_store, tmp_path / "cut", resume=True)
    a = load_checkpoint(latest_checkpoint(full / "checkpoints"))
    b = load_checkpoint(latest_checkpoint(resumed / "checkpoints"))
    assert a["model"].keys() == b["model"].keys() and any(k.startswith("teacher.") for k in a["model"])
    assert max(float((a["model"][k].float() - b["model"][k].float()).abs().max()) for k in a["model"]) <= 1e-6
    for k in a["objective"]:
        assert float((a["objective"][k] - b["objective"][k]).abs().max()) <= 1e-6
    steps = lambda run: [(r["step"], r["ema_momentum"]) for r in read_metrics(run / "metrics.jsonl")]  # noqa: E731
    assert steps(resumed) == steps(full)
