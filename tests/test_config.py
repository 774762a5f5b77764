"""Layered typed configs: defaults -> preset/YAML -> key=value overrides, with errors that name the key."""

from __future__ import annotations

import dataclasses
from typing import Literal

import pytest
import yaml

from tessera.config import (
    apply_overrides,
    load_saved_config,
    parse_override,
    resolve_config,
    save_config,
)
from tessera.errors import ConfigError


@dataclasses.dataclass
class Optim:
    lr: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.95)


@dataclasses.dataclass
class Toy:
    name: str = "toy"
    steps: int = 10
    branch: Literal["reconstruction", "contrastive", "two-stage"] = "reconstruction"
    init: str | None = None
    fused: bool = False
    layers: list[int] = dataclasses.field(default_factory=lambda: [1, 2])
    optim: Optim = dataclasses.field(default_factory=Optim)

    def validate(self) -> None:
        if self.steps < 1:
            raise ConfigError(f"config key 'steps' must be >= 1, got {self.steps}")


def test_defaults_only():
    cfg = resolve_config(Toy)
    assert cfg == Toy()


def test_three_layers_in_order(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump({"steps": 50, "optim": {"lr": 1e-3}, "name": "from-file"}))
    cfg = resolve_config(Toy, str(path), ["steps=70", "optim.betas=[0.8, 0.99]"])
    assert cfg.steps == 70  # override beats the file
    assert cfg.name == "from-file"  # file beats the default
    assert cfg.optim.lr == pytest.approx(1e-3)  # nested file value, untouched by the overrides
    assert cfg.optim.betas == (0.8, 0.99)  # list coerced to the annotated tuple


def test_section_of_a_multi_section_file(tmp_path):
    path = tmp_path / "multi.yaml"
    path.write_text(yaml.safe_dump({"toy": {"steps": 3}, "other": {"x": 1}}))
    assert resolve_config(Toy, str(path), section="toy").steps == 3


@pytest.mark.parametrize(
    "text,path,value",
    [
        ("a.b.c=3", ["a", "b", "c"], 3),
        ("lr=1e-3", ["lr"], "1e-3"),  # YAML 1.1 keeps it a string; float fields coerce it
        ("x=true", ["x"], True),
        ("init=null", ["init"], None),
        ("name=hello world", ["name"], "hello world"),
        ("v=[1, 2]", ["v"], [1, 2]),
    ],
)
def test_parse_override(text, path, value):
    assert parse_override(text) == (path, value)


@pytest.mark.parametrize("bad", ["noequals", "=3", "a..b=1", ".a=1"])
def test_malformed_override_is_an_error(bad):
    with pytest.raises(ConfigError, match="key.path=value"):
        parse_override(bad)


def test_scientific_notation_becomes_float():
    assert apply_overrides(Toy(), ["optim.lr=1e-3"]).optim.lr == pytest.approx(1e-3)


def test_unknown_key_names_the_full_path():
    with pytest.raises(ConfigError, match="'optim.momentum'"):
        apply_overrides(Toy(), ["optim.momentum=0.9"])
    with pytest.raises(ConfigError, match="'stepz'"):
        apply_overrides(Toy(), ["stepz=3"])


@pytest.mark.parametrize(
    "override,key",
    [("steps=abc", "steps"), ("steps=1.5", "steps"), ("fused=3", "fused"), ("optim.lr=fast", "optim.lr"),
     ("branch=dino", "branch"), ("optim.betas=[0.9]", "optim.betas"), ("layers=[1, x]", "layers[1]")],
)
def test_wrong_type_names_the_key(override, key):
    with pytest.raises(ConfigError, match=f"'{key.replace('[', '.').replace(']', '.')}"):
        apply_overrides(Toy(), [override])


def test_optional_and_validation():
    assert apply_overrides(Toy(), ["init=facebook/vit-mae-base"]).init == "facebook/vit-mae-base"
    with pytest.raises(ConfigError, match="'steps' must be >= 1"):
        resolve_config(Toy, None, ["steps=0"])


def test_unknown_key_in_file_is_an_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("steps: 3\nbogus: 1\n")
    with pytest.raises(ConfigError, match="'bogus'"):
        resolve_config(Toy, str(path))


def test_missing_source_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="neither a preset"):
        resolve_config(Toy, "no-such-preset")
    bad = tmp_path / "broken.yaml"
    bad.write_text("steps: [1,\n")
    with pytest.raises(ConfigError, match="broken.yaml: not valid YAML"):
        resolve_config(Toy, str(bad))


def test_saved_config_round_trips(tmp_path):
    cfg = resolve_config(Toy, None, ["steps=7", "optim.betas=[0.5, 0.6]", "branch=two-stage"])
    save_config(cfg, tmp_path)
    assert (tmp_path / "config.yaml").exists()
    assert load_saved_config(Toy, tmp_path) == cfg


def test_command_line_flags_are_merged_as_typed_values():
    from tessera.corpus.config import IngestConfig

    # "on" and "null" are YAML booleans/None when round-tripped through key=value text; as flags they stay strings.
    for text in ("on", "null", "3"):
        cfg = resolve_config(IngestConfig, values={"source": text})
        assert cfg.source == text
    cfg = resolve_config(IngestConfig, overrides=["tile=128"], values={"tile": None, "stride": 64})
    assert (cfg.tile, cfg.stride) == (128, 64)  # None = flag not given; flags apply after the overrides
    with pytest.raises(ConfigError, match="config key 'tile'"):
        resolve_config(IngestConfig, values={"tile": "big"})


def test_view_errors_carry_the_full_dotted_key():
    from tessera.train.config import resolve_pretrain_config

    for override, key in (("views.output_size=0", "'views.output_size'"), ("views.mild.p_rot90=2",
                                                                           "'views.mild.p_rot90'"),
                          ("views.multicrop.global_crops=0", "'views.multicrop.global_crops'"),
                          ("views.anchors.z_grid=0", "'views.anchors.z_grid'")):
        with pytest.raises(ConfigError, match=key):
            resolve_pretrain_config("cpu", [override])


def test_view_size_follows_the_model_through_an_explicit_sentinel():
    from tessera.train.config import FOLLOW_MODEL, PretrainConfig, resolve_pretrain_config

    assert PretrainConfig().views.output_size is FOLLOW_MODEL
    small = resolve_pretrain_config("cpu", ["model.preset=vit_micro_patch8_32"])
    assert small.views.output_size == 32  # the preset's model changed: the views follow it
    assert resolve_pretrain_config("cpu", ["views.output_size=48"]).views.output_size == 48  # a number is kept
    assert resolve_pretrain_config("cpu", ["views.output_size=48", "views.output_size=null"]).views.output_size == 64
