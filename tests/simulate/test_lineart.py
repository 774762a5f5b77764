"""The line-art simulator (issue 20): labels and masks agree with what it drew."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy.ndimage import binary_dilation

from tessera.corpus.pdf import iter_pdf_planes
from tessera.simulate.lineart import TILE_CLASSES, SimulateLineartConfig, simulate_lineart, simulate_sheet


@pytest.fixture(scope="module")
def sheet():
    cfg = SimulateLineartConfig(sheets=1, seed=1)
    return cfg, simulate_sheet(cfg, 0)


def test_wall_mask_pixels_are_ink(sheet):
    cfg, (_, _, full, ink, _, _) = sheet
    walls = ink["walls"]
    assert walls.shape == (cfg.height, cfg.width) and walls.sum() > 1000
    assert (full[walls] >= 0.5).all()  # every mask pixel is ink of the full sheet
    # and the mask is not all of the ink: symbols, text and annotations are not walls
    assert ((full >= 0.5) & ~walls).sum() > 500


def test_door_tiles_contain_the_door_arc(sheet):
    cfg, (_, _, _, ink, rows, plan) = sheet
    t = cfg.tile
    doors = [r for r in rows if r["label"] == "door"]
    assert doors
    for row in doors:
        r, c = row["row"], row["col"]
        assert ink["door"][r * t:(r + 1) * t, c * t:(c + 1) * t].sum() >= cfg.min_symbol_px
        # the tile intersects the arc's geometry: some point of some door's swing arc lies inside it
        hit = False
        for door in plan.doors:
            theta = np.radians(np.linspace(*door["theta"], 64))
            xs = door["hinge"][0] + door["radius"] * np.cos(theta)
            ys = door["hinge"][1] + door["radius"] * np.sin(theta)
            hit |= bool(((xs >= c * t) & (xs < (c + 1) * t) & (ys >= r * t) & (ys < (r + 1) * t)).any())
        assert hit, (r, c)
    # and every tile holding most of an arc is labeled door: the tile with the arc's midpoint is a door tile
    door = plan.doors[0]
    mid = np.radians(np.mean(door["theta"]))
    x, y = door["hinge"][0] + door["radius"] * np.cos(mid), door["hinge"][1] + door["radius"] * np.sin(mid)
    label = {(r["row"], r["col"]): r["label"] for r in rows}[(int(y // t), int(x // t))]
    assert label in ("door", "window", "stair")


def test_junction_tiles_hold_a_junction(sheet):
    cfg, (_, _, _, _, rows, plan) = sheet
    t = cfg.tile
    for row in rows:
        if row["label"] == "wall_junction":
            r, c = row["row"], row["col"]
            assert any(c * t <= x < (c + 1) * t and r * t <= y < (r + 1) * t for x, y in plan.junctions)


def test_files_agree_with_the_drawing(tmp_path):
    cfg = SimulateLineartConfig(sheets=2, seed=4)
    labels = pd.read_csv(simulate_lineart(cfg, tmp_path / "sim"))
    assert set(labels["label"]) <= set(TILE_CLASSES) and {"door", "text", "empty"} <= set(labels["label"])
    assert len(labels) == 2 * (cfg.height // cfg.tile) * (cfg.width // cfg.tile)
    sheet = np.asarray(Image.open(tmp_path / "sim" / "sheets" / "sheet_00000.png"))
    mask = np.asarray(Image.open(tmp_path / "sim" / "masks" / "sheet_00000.png")) > 0
    assert (sheet[mask] < 128).all()  # mask pixels are dark ink on the written sheet
    row = labels.iloc[13]
    tile = np.asarray(Image.open(tmp_path / "sim" / row["path"]))
    t = cfg.tile
    r, c = row["row"], row["col"]
    np.testing.assert_array_equal(tile, 255 - sheet[r * t:(r + 1) * t, c * t:(c + 1) * t])
    # The vector PDF rasterized at the sheet's DPI has the PNG's size and the same drawing.
    (page,) = list(iter_pdf_planes(tmp_path / "sim" / "sheets" / "sheet_00000.pdf", dpi=cfg.dpi))
    assert page.data.shape == (1, cfg.height, cfg.width)
    ink_pdf, ink_png = page.data[0] < 0.5, sheet < 128
    near_pdf = binary_dilation(ink_pdf, iterations=1)  # the two rasterizers anti-alias 1 px lines differently
    assert (near_pdf & ink_png).sum() / ink_png.sum() > 0.97
    # The same seed gives byte-identical files.
    simulate_lineart(cfg, tmp_path / "again")
    for rel in ("sheets/sheet_00001.pdf", "sheets/sheet_00001.png", "labels.csv"):
        assert (tmp_path / "sim" / rel).read_bytes() == (tmp_path / "again" / rel).read_bytes()
