"""Synthetic radio data with known truth: survey-like mosaics with a source catalogue, and labeled morphologies.

- :func:`simulate_radio` / :func:`render_mosaic`: FITS mosaics (Jy/beam, SIN/TAN WCS, restoring beam, thermal noise,
  compact + FRI/FRII/bent population, sidelobes, NaN borders, optional degenerate cube axes) and ``catalogue.csv``.
- :func:`simulate_morphology` / :func:`render_cutout`: labeled single-source cutouts (FRI, FRII, Compact, Bent).
"""

from tessera.simulate.config import (
    MORPHOLOGY_CLASSES,
    InstrumentConfig,
    SimulateMorphologyConfig,
    SimulateRadioConfig,
)
from tessera.simulate.morphology import render_cutout, simulate_morphology
from tessera.simulate.sky import render_mosaic, simulate_radio

__all__ = [
    "MORPHOLOGY_CLASSES",
    "InstrumentConfig",
    "SimulateMorphologyConfig",
    "SimulateRadioConfig",
    "render_cutout",
    "render_mosaic",
    "simulate_morphology",
    "simulate_radio",
]
