"""The objective registry drives config validation; recipes are data: every shipped recipe validates, a bad one
is a one-line error naming the file and the full key; stages carry their own overrides and step counts."""

from __future__ import annotations

import pytest

from tessera.errors import ConfigError
from tessera.objectives.registry import OBJECTIVES, get_objective, list_objectives
from tessera.train.config import list_recipes, resolve_pretrain_config, stage_configs


def test_registry_lists_every_objective_and_unknown_names_the_key():
    assert list_objectives() == ["reconstruction", "contrastive", "dino", "byol", "spectrum-masked"]
    with pytest.raises(ConfigError, match=r"'train.stages\[0\].objective'.*registered: reconstruction, contrastive"):
        get_objective("jigsaw", "train.stages[0].objective")


@pytest.mark.parametrize("name", ["reconstruction", "contrastive", "two-stage", "dino", "byol"])
def test_every_shipped_recipe_loads_and_validates(name):
    assert name in list_recipes()
    cfg = resolve_pretrain_config(name)
    cfg.validate()
    stages = [s.objective for s in cfg.train.stage_list()]
    assert stages == (["reconstruction", "contrastive"] if name == "two-stage" else [name])
    assert cfg.model.preset == "vit_tiny_patch8_64" and cfg.views.output_size == 64  # cpu-sized (base: cpu)


@pytest.mark.parametrize("name", list_recipes())
def test_every_recipe_in_the_package_resolves_every_stage(name):
    cfg = resolve_pretrain_config(name)
    cfg.validate()
    assert len(stage_configs(cfg)) == len(cfg.train.stage_list()) >= 1


def test_two_stage_small_changes_only_the_contrastive_stage_views():
    reconstruction, contrastive = stage_configs(resolve_pretrain_config("two-stage-small"))
    assert (reconstruction.views.regime, contrastive.views.regime) == ("paper", "none")
    assert contrastive.objective.contrastive == "soft_hcl"
    assert [s.objective for s in reconstruction.train.stage_list()] == ["reconstruction", "contrastive"]


def test_branch_shorthand_still_expands_and_objective_names_are_shorthands():
    assert resolve_pretrain_config("cpu").train.stages == ("reconstruction", "contrastive")
    assert resolve_pretrain_config("dino", ["train.branch=contrastive"]).train.stages == ("contrastive",)
    assert resolve_pretrain_config("cpu", ["train.branch=byol"]).train.stages == ("byol",)


def test_bad_recipe_file_names_the_file_and_the_full_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("base: cpu\ntrain:\n  stages:\n    - reconstruction\n    - {objective: jigsaw}\n")
    with pytest.raises(ConfigError) as info:
        resolve_pretrain_config(str(bad))
    message = str(info.value)
    assert str(bad) in message and "train.stages[1].objective" in message and "\n" not in message
    bad.write_text("train:\n  stages:\n    - {objective: dino, max_step: 3}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown config key 'train.stages\[0\].max_step'"):
        resolve_pretrain_config(str(bad))
    bad.write_text("train:\n  stages:\n    - {objective: contrastive, overrides: {objective.contrastive: nce}}\n")
    with pytest.raises(ConfigError, match=r"train.stages\[0\].overrides.*objective.contrastive"):
        resolve_pretrain_config(str(bad))


def test_stage_overrides_steps_and_init(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "base: cpu\ntrain:\n  max_steps: 7\n  stages:\n    - {objective: dino, max_steps: 3}\n"
        "    - {objective: contrastive, init: teacher, overrides: {objective.contrastive: infonce, train.lr: 1.0e-4}}\n"
    )
    cfg = resolve_pretrain_config(str(recipe))
    assert cfg.train.branch == "recipe"
    first, second = stage_configs(cfg)
    assert first.objective.contrastive == "soft_hcl" and second.objective.contrastive == "infonce"
    assert second.train.lr == 1e-4 and first.train.lr == cfg.train.lr
    from tessera.train.engine import stage_specs

    specs = stage_specs(cfg, tmp_path / "run", corpus_size=100)
    assert [(s.objective, s.max_steps, s.init, s.step_offset) for s in specs] == [
        ("dino", 3, "exported", 0), ("contrastive", 7, "teacher", 3)]
    # A teacher hand-over from a stage without a teacher is refused before training.
    recipe.write_text("base: cpu\ntrain:\n  stages:\n    - contrastive\n    - {objective: byol, init: teacher}\n")
    with pytest.raises(ConfigError, match=r"train.stages\[1\].init"):
        resolve_pretrain_config(str(recipe))


def test_config_validation_reads_the_registry(monkeypatch):
    from tessera.objectives.base import Objective

    class Toy(Objective):
        name = "toy"

    monkeypatch.setitem(OBJECTIVES, "toy", Toy)
    assert resolve_pretrain_config("cpu", ["train.branch=toy"]).train.stages == ("toy",)


def test_anchor_strategies_are_validated_from_the_registry(monkeypatch):
    from tessera.views import anchors
    from tessera.views.config import AnchorConfig

    with pytest.raises(ConfigError, match="anchors.strategy"):
        AnchorConfig(strategy="brightest").validate()
    monkeypatch.setitem(anchors.ANCHOR_REGISTRY, "brightest", anchors.center_anchors)
    AnchorConfig(strategy="brightest").validate()  # a registered strategy is accepted by the config too
