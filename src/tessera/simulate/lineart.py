"""Procedural construction sheets with known truth (issue 20; seed 002's motivating domain).

A sheet is a small floor plan drawn with matplotlib in pixel coordinates (y down): walls as thick double lines,
doors (a gap, the leaf and its swing arc), windows (three thin lines across a wall gap), a stair (parallel
treads), dimension lines with numbers, grid lines with lettered bubbles, room names and a title block, at
realistic line widths for the sheet's resolution (walls 1.5 px, the rest 1 px at the default 100 DPI).

Truth comes from the drawing itself: every artist belongs to a *layer* (walls, door, window, stair, text, grid,
dimension, title), and each layer is rendered alone on the same canvas. The wall mask is the ink of the walls
layer, so mask pixels are ink of the full sheet by construction; a tile's label is the dominant symbol by ink
pixels of the door, stair and window layers, else ``wall_junction`` when a wall corner or T lies inside it, else
``text`` when text ink is there, else ``empty``.

Output of :func:`simulate_lineart` (``OUT/``)::

    sheets/sheet_00000.pdf   the vector sheet (one page; page size = width/dpi x height/dpi inches)
    sheets/sheet_00000.png   the same sheet rasterized, black ink on white paper (what a scanner gives)
    masks/sheet_00000.png    wall mask of the sheet (255 = wall ink)
    tiles/sheet_00000_r00_c00.png       one tile, ink bright on dark (ingest's convention, corpus/pdf.py)
    tiles/sheet_00000_r00_c00_mask.png  its wall mask
    labels.csv               path,label,sheet,row,col,mask (+ ink pixels per layer): tessera evaluate reads it
    config.yaml              the resolved SimulateLineartConfig
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tessera.errors import ConfigError

TILE_CLASSES = ("door", "stair", "window", "wall_junction", "text", "empty")
SYMBOL_LAYERS = ("door", "stair", "window")  # the layers whose ink decides a tile's label, in this priority
LAYERS = ("walls", "door", "window", "stair", "text", "grid", "dimension", "title")
ROOM_NAMES = ("LIVING", "KITCHEN", "BED", "BATH", "HALL", "STORE", "OFFICE", "WC")


@dataclass
class SimulateLineartConfig:
    """Settings of ``tessera simulate lineart`` (config section ``simulate_lineart``)."""

    sheets: int = 8
    width: int = 640  # sheet width in pixels at `dpi`
    height: int = 512
    dpi: float = 100.0  # pixels per inch of the PNG; the PDF page is width/dpi x height/dpi inches
    tile: int = 64  # labeled tile side in pixels
    seed: int = 0
    wall_thickness: float = 6.0  # px between the two lines of a wall
    wall_line: float = 1.5  # px line width of walls
    thin_line: float = 1.0  # px line width of symbols, dimensions, grid lines
    door_width: float = 26.0  # px
    window_width: float = 34.0  # px
    min_symbol_px: int = 12  # ink pixels of a symbol layer needed to label a tile by it
    junction_margin: int = 4  # a junction labels a tile when it lies at least this far inside it

    def validate(self) -> None:
        if self.sheets < 1:
            raise ConfigError(f"config key 'simulate_lineart.sheets': must be >= 1, got {self.sheets}")
        if self.width < 256 or self.height < 256:
            raise ConfigError("config key 'simulate_lineart.width'/'height': a sheet needs at least 256 x 256 px")
        if self.tile < 8 or self.tile > min(self.width, self.height):
            raise ConfigError(f"config key 'simulate_lineart.tile': must be in [8, {min(self.width, self.height)}]")
        if not self.dpi > 0:
            raise ConfigError(f"config key 'simulate_lineart.dpi': must be > 0, got {self.dpi}")
        for name in ("wall_thickness", "wall_line", "thin_line", "door_width", "window_width"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"config key 'simulate_lineart.{name}': must be > 0")


# ---------------------------------------------------------------- the plan (pure geometry)


@dataclass
class Wall:
    """An axis-aligned wall from ``a`` to ``b`` (pixel (x, y)), with openings as (start, end) distances along it."""

    a: tuple[float, float]
    b: tuple[float, float]
    openings: list[tuple[float, float]] = field(default_factory=list)

    @property
    def horizontal(self) -> bool:
        return self.a[1] == self.b[1]

    @property
    def length(self) -> float:
        return abs(self.b[0] - self.a[0]) + abs(self.b[1] - self.a[1])

    def point(self, s: float) -> tuple[float, float]:
        """The point at distance ``s`` from ``a``."""
        if self.horizontal:
            return (self.a[0] + s, self.a[1])
        return (self.a[0], self.a[1] + s)

    def free_spans(self) -> list[tuple[float, float]]:
        """Intervals of the wall outside its openings."""
        spans, start = [], 0.0
        for lo, hi in sorted(self.openings):
            spans.append((start, lo))
            start = hi
        spans.append((start, self.length))
        return [(lo, hi) for lo, hi in spans if hi > lo]


@dataclass
class Plan:
    walls: list[Wall]
    junctions: list[tuple[float, float]]
    doors: list[dict]  # hinge (x, y), radius, angles (deg) of the swing arc, leaf end
    windows: list[dict]  # wall index, (start, end)
    stair: dict  # x, y, w, h, treads
    rooms: list[tuple[float, float, str]]
    box: tuple[float, float, float, float]  # the building's outer wall rectangle x0, y0, x1, y1
    cuts: tuple[float, float]  # interior wall positions: vertical x, horizontal y


def _place_opening(rng: np.random.Generator, wall: Wall, width: float, keep: float) -> tuple[float, float] | None:
    """A free interval of ``width`` on ``wall`` at least ``keep`` away from its ends and other openings."""
    for _ in range(20):
        lo = float(rng.uniform(keep, wall.length - keep - width))
        hi = lo + width
        if all(hi + keep < a or lo - keep > b for a, b in wall.openings):
            wall.openings.append((lo, hi))
            return lo, hi
    return None


def make_plan(cfg: SimulateLineartConfig, rng: np.random.Generator) -> Plan:
    """A random floor plan: an outer rectangle split by one vertical and one horizontal interior wall."""
    w, h = cfg.width, cfg.height
    x0, y0 = float(rng.uniform(50, 70)), float(rng.uniform(45, 60))
    x1, y1 = float(w - rng.uniform(60, 80)), float(h - rng.uniform(95, 110))
    xv = float(rng.uniform(x0 + 0.35 * (x1 - x0), x0 + 0.65 * (x1 - x0)))
    yh = float(rng.uniform(y0 + 0.35 * (y1 - y0), y0 + 0.65 * (y1 - y0)))
    left = bool(rng.random() < 0.5)  # the horizontal interior wall spans the left or the right part
    hx0, hx1 = (x0, xv) if left else (xv, x1)
    walls = [
        Wall((x0, y0), (x1, y0)), Wall((x0, y1), (x1, y1)), Wall((x0, y0), (x0, y1)), Wall((x1, y0), (x1, y1)),
        Wall((xv, y0), (xv, y1)), Wall((hx0, yh), (hx1, yh)),
    ]
    junctions = [(x0, y0), (x1, y0), (x0, y1), (x1, y1), (xv, y0), (xv, y1), ((x0 if left else x1), yh), (xv, yh)]
    keep = cfg.wall_thickness * 2
    doors = []
    for index in (4, 5, int(rng.choice([0, 1]))):  # both interior walls and one outer wall (the entrance)
        wall = walls[index]
        span = _place_opening(rng, wall, cfg.door_width, keep)
        if span is None:
            continue
        doors.append(_door(wall, span, cfg.door_width, rng))
    windows = []
    for index in rng.choice([0, 1, 2, 3], size=3, replace=False):
        span = _place_opening(rng, walls[int(index)], cfg.window_width, keep)
        if span is not None:
            windows.append({"wall": int(index), "span": span})
    # The stair: a rectangle of treads in the room on the other side of the vertical wall from the horizontal one.
    sx_lo, sx_hi = (xv, x1) if left else (x0, xv)
    sw, sh = 36.0, float(rng.uniform(60, 80))
    sx = float(rng.uniform(sx_lo + 12, sx_hi - sw - 12))
    sy = float(rng.uniform(y0 + 12, y1 - sh - 12))
    stair = {"x": sx, "y": sy, "w": sw, "h": sh, "treads": int(sh // 7)}
    names = list(rng.choice(ROOM_NAMES, size=3, replace=False))
    other = ((x0 + xv) / 2, (y0 + y1) / 2) if not left else ((xv + x1) / 2, (y0 + y1) / 2)
    rooms = [((hx0 + hx1) / 2, (y0 + yh) / 2, names[0]), ((hx0 + hx1) / 2, (yh + y1) / 2, names[1]),
             (other[0], other[1] + (sh / 2 + 20 if sy + sh / 2 < other[1] else -(sh / 2 + 20)), names[2])]
    return Plan(walls, junctions, doors, windows, stair, rooms, (x0, y0, x1, y1), (xv, yh))


def _door(wall: Wall, span: tuple[float, float], width: float, rng: np.random.Generator) -> dict:
    """Hinge at one end of the opening; the leaf stands perpendicular to the wall; the arc sweeps 90 degrees."""
    at_start = bool(rng.random() < 0.5)
    side = 1.0 if rng.random() < 0.5 else -1.0  # which side of the wall the door swings to
    hinge = wall.point(span[0] if at_start else span[1])
    along = 1.0 if at_start else -1.0  # from the hinge towards the other jamb
    if wall.horizontal:
        closed = np.degrees(np.arctan2(0.0, along))  # the closed leaf lies along the wall
        leaf_end = (hinge[0], hinge[1] + side * width)
    else:
        closed = np.degrees(np.arctan2(along, 0.0))
        leaf_end = (hinge[0] + side * width, hinge[1])
    opened = np.degrees(np.arctan2(leaf_end[1] - hinge[1], leaf_end[0] - hinge[0]))
    lo, hi = sorted((float(closed), float(opened)))
    if hi - lo > 180:  # the short way round
        lo, hi = hi, lo + 360
    return {"hinge": hinge, "radius": width, "theta": (lo, hi), "leaf_end": leaf_end}


# ---------------------------------------------------------------- drawing


def _pt(px: float, dpi: float) -> float:
    """A length in pixels as points (matplotlib line widths and font sizes are in points)."""
    return px * 72.0 / dpi


def _wall_lines(wall: Wall, t: float) -> list[tuple[tuple[float, float], tuple[float, float]]]:
    """The double lines of a wall's free spans (offset +-t/2), extended by t/2 at the wall's ends so corners
    close, and a cap across the thickness at each opening's jamb."""
    segs = []
    half = t / 2
    for lo, hi in wall.free_spans():
        lo_ext = lo - half if lo == 0 else lo
        hi_ext = hi + half if hi == wall.length else hi
        p, q = wall.point(lo_ext), wall.point(hi_ext)
        for off in (-half, half):
            if wall.horizontal:
                segs.append(((p[0], p[1] + off), (q[0], q[1] + off)))
            else:
                segs.append(((p[0] + off, p[1]), (q[0] + off, q[1])))
    for lo, hi in wall.openings:
        for s in (lo, hi):
            c = wall.point(s)
            segs.append(((c[0], c[1] - half), (c[0], c[1] + half)) if wall.horizontal
                        else ((c[0] - half, c[1]), (c[0] + half, c[1])))
    return segs


def draw_sheet(plan: Plan, cfg: SimulateLineartConfig, rng: np.random.Generator):
    """The matplotlib figure of a plan and its artists by layer: (figure, {layer: [artists]})."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Arc, Circle, Rectangle

    w, h, dpi = cfg.width, cfg.height, cfg.dpi
    fig = Figure(figsize=(w / dpi, h / dpi), dpi=dpi)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)  # pixel coordinates, y down
    ax.set_axis_off()
    layers: dict[str, list] = {name: [] for name in LAYERS}
    thick, thin = _pt(cfg.wall_line, dpi), _pt(cfg.thin_line, dpi)
    font = _pt(9.0, dpi)

    def line(layer, p, q, lw=thin, **kw):
        (artist,) = ax.plot([p[0], q[0]], [p[1], q[1]], color="black", lw=lw, solid_capstyle="butt", **kw)
        layers[layer].append(artist)

    def text(layer, x, y, s, size=font, **kw):
        layers[layer].append(ax.text(x, y, s, fontsize=size, ha="center", va="center", family="DejaVu Sans", **kw))

    for wall in plan.walls:
        for p, q in _wall_lines(wall, cfg.wall_thickness):
            line("walls", p, q, lw=thick)
    for door in plan.doors:
        line("door", door["hinge"], door["leaf_end"])
        r = door["radius"]
        arc = Arc(door["hinge"], 2 * r, 2 * r, theta1=door["theta"][0], theta2=door["theta"][1], color="black", lw=thin)
        ax.add_patch(arc)
        layers["door"].append(arc)
    half = cfg.wall_thickness / 2
    for win in plan.windows:
        wall = plan.walls[win["wall"]]
        p, q = wall.point(win["span"][0]), wall.point(win["span"][1])
        for off in (-half, 0.0, half):
            d = (0.0, off) if wall.horizontal else (off, 0.0)
            line("window", (p[0] + d[0], p[1] + d[1]), (q[0] + d[0], q[1] + d[1]))
    st = plan.stair
    rect = Rectangle((st["x"], st["y"]), st["w"], st["h"], fill=False, color="black", lw=thin)
    ax.add_patch(rect)
    layers["stair"].append(rect)
    for k in range(1, st["treads"]):
        y = st["y"] + k * st["h"] / st["treads"]
        line("stair", (st["x"], y), (st["x"] + st["w"], y))
    line("stair", (st["x"] + st["w"] / 2, st["y"] + st["h"] - 4), (st["x"] + st["w"] / 2, st["y"] + 4))
    for x, y, name in plan.rooms:
        text("text", x, y, name)
    _draw_annotations(plan, cfg, rng, line, text, ax, layers, Circle)
    return fig, layers


def _draw_annotations(plan, cfg, rng, line, text, ax, layers, circle_cls) -> None:
    """Dimension lines with numbers, grid lines with bubbles, and the title block."""
    from matplotlib.patches import Rectangle

    x0, y0, x1, y1 = plan.box
    xv, _ = plan.cuts
    yd = y1 + 28.0
    marks = [x0, xv, x1]
    line("dimension", (x0, yd), (x1, yd))
    for x in marks:
        line("dimension", (x - 4, yd + 4), (x + 4, yd - 4))  # architectural tick
        line("dimension", (x, y1 + 8), (x, yd + 6))  # extension line
    scale = float(rng.uniform(8, 14))  # "millimetres per pixel" of the plan, for the printed numbers
    for a, b in zip(marks[:-1], marks[1:]):
        text("text", (a + b) / 2, yd - 9, f"{int(round((b - a) * scale / 10) * 10)}", size=_pt(8.0, cfg.dpi))
    for x, letter in zip(marks, "ABC"):
        line("grid", (x, 30.0), (x, y0 - 10), linestyle=(0, (6, 2, 1, 2)))
        bubble = circle_cls((x, 18.0), 9.0, fill=False, color="black", lw=_pt(cfg.thin_line, cfg.dpi))
        ax.add_patch(bubble)
        layers["grid"].append(bubble)
        text("grid", x, 18.0, letter, size=_pt(8.0, cfg.dpi))
    tw, th = 150.0, 56.0
    tx, ty = cfg.width - tw - 8, cfg.height - th - 8
    box = Rectangle((tx, ty), tw, th, fill=False, color="black", lw=_pt(cfg.wall_line, cfg.dpi))
    ax.add_patch(box)
    layers["title"].append(box)
    line("title", (tx, ty + th / 2), (tx + tw, ty + th / 2))
    text("text", tx + tw / 2, ty + th / 4, f"PLAN {int(rng.integers(100, 999))}", size=_pt(10.0, cfg.dpi))
    text("text", tx + tw / 2, ty + 3 * th / 4, "SCALE 1:100", size=_pt(8.0, cfg.dpi))


def render(fig, layers: dict[str, list], visible: tuple[str, ...] | None = None) -> np.ndarray:
    """Rasterize the figure with only ``visible`` layers (None = all) -> ``(H, W)`` float32 ink in [0, 1]
    (1 = black ink, 0 = white paper)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    for name, artists in layers.items():
        for artist in artists:
            artist.set_visible(visible is None or name in visible)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    return 1.0 - rgba[..., 0].astype(np.float32) / 255.0


# ---------------------------------------------------------------- truth


def layer_ink(fig, layers: dict[str, list]) -> dict[str, np.ndarray]:
    """Ink masks ``(H, W)`` bool per layer (ink >= 0.5 when the layer is drawn alone)."""
    return {name: render(fig, layers, (name,)) >= 0.5 for name in LAYERS}


def tile_label(counts: dict[str, int], has_junction: bool, cfg: SimulateLineartConfig) -> str:
    """The dominant symbol of a tile (module docstring): symbol ink first, then a wall junction, then text."""
    symbols = {name: counts[name] for name in SYMBOL_LAYERS if counts[name] >= cfg.min_symbol_px}
    if symbols:
        return max(symbols, key=lambda name: (symbols[name], -SYMBOL_LAYERS.index(name)))
    if has_junction:
        return "wall_junction"
    if counts["text"] >= cfg.min_symbol_px:
        return "text"
    return "empty"


def tile_labels(ink: dict[str, np.ndarray], plan: Plan, cfg: SimulateLineartConfig) -> list[dict]:
    """One record per tile of the sheet grid (partial edge tiles dropped): row, col, label, ink per layer."""
    rows = []
    t, m = cfg.tile, cfg.junction_margin
    for r in range(cfg.height // t):
        for c in range(cfg.width // t):
            sl = (slice(r * t, (r + 1) * t), slice(c * t, (c + 1) * t))
            counts = {name: int(ink[name][sl].sum()) for name in LAYERS}
            junction = any(c * t + m <= x < (c + 1) * t - m and r * t + m <= y < (r + 1) * t - m
                           for x, y in plan.junctions)
            rows.append({"row": r, "col": c, "label": tile_label(counts, junction, cfg),
                         **{f"ink_{name}": counts[name] for name in LAYERS}})
    return rows


# ---------------------------------------------------------------- files


def _save_png(path: Path, arr: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(arr).save(path, optimize=False)


def _to_uint8(unit: np.ndarray) -> np.ndarray:
    return np.clip(np.round(unit * 255.0), 0, 255).astype(np.uint8)


def simulate_sheet(cfg: SimulateLineartConfig, index: int) -> tuple[object, dict, np.ndarray, dict, list[dict], Plan]:
    """Sheet ``index`` (random stream ``(seed, index)``): figure, layers, full ink (H, W), layer inks, tiles, plan."""
    rng = np.random.default_rng([cfg.seed, index])
    plan = make_plan(cfg, rng)
    fig, layers = draw_sheet(plan, cfg, rng)
    ink = layer_ink(fig, layers)
    full = render(fig, layers)
    return fig, layers, full, ink, tile_labels(ink, plan, cfg), plan


def simulate_lineart(cfg: SimulateLineartConfig, out_dir: str | Path, overwrite: bool = False) -> Path:
    """Write ``cfg.sheets`` sheets (PDF + PNG), their wall masks, labeled tiles and ``labels.csv``; return its path."""
    import pandas as pd

    from tessera.config import save_config
    from tessera.outputs import prepare_output_dir

    cfg.validate()
    out = prepare_output_dir(out_dir, overwrite=overwrite)
    save_config(cfg, out)
    for sub in ("sheets", "masks", "tiles"):
        (out / sub).mkdir()
    records, t = [], cfg.tile
    for i in range(cfg.sheets):
        fig, layers, full, ink, rows, _ = simulate_sheet(cfg, i)
        name = f"sheet_{i:05d}"
        render(fig, layers)  # every layer visible again for the PDF
        # No creation date: the same seed gives byte-identical PDFs.
        fig.savefig(out / "sheets" / f"{name}.pdf", format="pdf", metadata={"CreationDate": None, "Creator": None})
        _save_png(out / "sheets" / f"{name}.png", _to_uint8(1.0 - full))  # black ink on white paper
        walls = ink["walls"]
        _save_png(out / "masks" / f"{name}.png", walls.astype(np.uint8) * 255)
        for row in rows:
            r, c = row["row"], row["col"]
            sl = (slice(r * t, (r + 1) * t), slice(c * t, (c + 1) * t))
            rel = f"tiles/{name}_r{r:02d}_c{c:02d}.png"
            rel_mask = f"tiles/{name}_r{r:02d}_c{c:02d}_mask.png"
            _save_png(out / rel, _to_uint8(full[sl]))  # ink bright, as ingest stores sheets
            _save_png(out / rel_mask, walls[sl].astype(np.uint8) * 255)
            records.append({"path": rel, "label": row["label"], "sheet": name, "mask": rel_mask, **row})
    columns = ["path", "label", "sheet", "row", "col", "mask"] + [f"ink_{name}" for name in LAYERS]
    frame = pd.DataFrame(records)[columns]
    path = out / "labels.csv"
    frame.to_csv(path, index=False)
    return path


def config_fields() -> list[str]:
    """Names of the config keys (for the command's help)."""
    return [f.name for f in dataclasses.fields(SimulateLineartConfig)]
