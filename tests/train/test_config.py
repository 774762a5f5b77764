"""PretrainConfig: presets resolve, views follow the model, configs that cannot work are rejected naming the key."""

import pytest

from tessera.config import save_config, load_saved_config
from tessera.errors import ConfigError
from tessera.train.config import PretrainConfig, resolve_pretrain_config


def test_presets_resolve_with_table5_values():
    paper = resolve_pretrain_config("paper")
    assert paper.model.preset == "vit_base_patch16_224" and paper.model.init == "facebook/vit-mae-base"
    assert paper.views.output_size == 224
    tc = paper.train
    assert (tc.lr, tc.weight_decay, tc.betas, tc.warmup_fraction) == (5e-4, 0.05, (0.9, 0.95), 0.15)
    assert (tc.batch_size_reconstruction, tc.batch_size_contrastive, tc.effective_batch) == (256, 64, 2048)
    assert (tc.grad_clip_reconstruction, tc.grad_clip_contrastive, tc.seed) == (1.0, 3.0, 42)
    assert (paper.objective.temperature_start, paper.objective.temperature_end) == (0.2, 0.1)
    assert tc.stages == ("reconstruction", "contrastive")
    cpu = resolve_pretrain_config("cpu")
    assert cpu.model.init is None and cpu.views.output_size == 64


def test_views_follow_the_model_unless_set():
    assert resolve_pretrain_config("cpu", ["model.preset=vit_tiny_patch8_96"]).views.output_size == 96
    assert resolve_pretrain_config("cpu", ["views.output_size=48"]).views.output_size == 48


def test_branch_and_max_steps_overrides():
    cfg = resolve_pretrain_config("paper", ["train.branch=contrastive", "train.max_steps=7"])
    assert cfg.train.stages == ("contrastive",) and cfg.train.max_steps == 7
    assert cfg.train.epochs is None  # an explicit step count wins over the preset's epochs


@pytest.mark.parametrize(
    "override, key",
    [
        ("train.branch=joint", "train.branch"),
        ("train.max_steps=0", "train.max_steps"),
        ("model.mask_ratio=1.0", "model.mask_ratio"),
        ("model.mask_ratio=0", "model.mask_ratio"),
        ("train.batch_size_contrastive=1", "train.batch_size_contrastive"),
        ("train.warmup_fraction=1.5", "train.warmup_fraction"),
        ("objective.temperature_end=0", "objective.temperature_end"),
    ],
)
def test_configs_that_cannot_work_are_rejected(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        resolve_pretrain_config("cpu", [override])


def test_contrastive_batch_of_one_is_fine_for_reconstruction_only():
    cfg = resolve_pretrain_config("cpu", ["train.branch=reconstruction", "train.batch_size_contrastive=1"])
    assert cfg.train.batch_size_contrastive == 1


def test_saved_config_round_trips(tmp_path):
    cfg = resolve_pretrain_config("cpu", ["train.max_steps=3"])
    save_config(cfg, tmp_path)
    assert load_saved_config(PretrainConfig, tmp_path) == cfg
