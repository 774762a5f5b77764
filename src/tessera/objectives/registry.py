"""The one registry of pretraining objectives. Config validation, the engine, ``tessera views --objective`` and
the recipes all read it; nothing else lists objective names.

API::

    OBJECTIVES: dict[str, type[Objective]]      name -> plug-in class (objectives/base.py)
    get_objective(name, key) -> type[Objective] ConfigError naming ``key`` for an unknown name
    list_objectives() -> list[str]              registered names, in registry order

Adding an objective: its module (a subclass of :class:`~tessera.objectives.base.Objective`), its head in
``tessera/models/heads.py`` if new, its crop groups, one line below, and its tests.
"""

from __future__ import annotations

from tessera.errors import ConfigError
from tessera.objectives.base import Objective
from tessera.objectives.contrastive import Contrastive
from tessera.objectives.distillation import BYOL, DINO
from tessera.objectives.reconstruction import Reconstruction
from tessera.objectives.spectrum import SpectrumMasked

OBJECTIVES: dict[str, type[Objective]] = {
    Reconstruction.name: Reconstruction,
    Contrastive.name: Contrastive,
    DINO.name: DINO,
    BYOL.name: BYOL,
    SpectrumMasked.name: SpectrumMasked,
}


def list_objectives() -> list[str]:
    """Names of the registered objectives."""
    return list(OBJECTIVES)


def get_objective(name: str, key: str = "objective") -> type[Objective]:
    """The plug-in class registered as ``name``; an unknown name is a ConfigError naming the config ``key``."""
    try:
        return OBJECTIVES[name]
    except KeyError:
        raise ConfigError(
            f"config key '{key}': unknown objective {name!r} (registered: {', '.join(OBJECTIVES)})"
        ) from None


__all__ = ["OBJECTIVES", "get_objective", "list_objectives"]
