"""Crop geometry as batched tensor ops: ROIs around anchors, square crops inside boxes, the IoA constraint
(seed 000 Eq. 7), affine jitter, and one fused crop + resize with ``grid_sample``.

Boxes are ``(x0, y0, x1, y1)`` in continuous pixel coordinates of their own parent cutout: pixel ``(i, j)``
covers ``[j, j+1) x [i, i+1)``, the cutout spans ``[0, W] x [0, H]``. All random draws take a
``torch.Generator`` and are made on the generator's device, then moved, so results depend only on the seed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def rand(generator: torch.Generator, shape: tuple[int, ...], device: torch.device | str) -> torch.Tensor:
    """Uniform [0, 1) draws of ``shape`` from ``generator`` (on its device), returned on ``device``."""
    return torch.rand(shape, generator=generator, device=generator.device).to(device)


def uniform(generator: torch.Generator, shape: tuple[int, ...], low: float, high: float, device) -> torch.Tensor:
    """Uniform draws in [low, high) of ``shape``."""
    return low + (high - low) * rand(generator, shape, device)


def box_side(boxes: torch.Tensor) -> torch.Tensor:
    """Width of square boxes. boxes: (..., 4) -> (...)."""
    return boxes[..., 2] - boxes[..., 0]


def full_boxes(hw: torch.Tensor) -> torch.Tensor:
    """The whole-cutout box of each sample. hw: (N, 2) (H, W) -> (N, 4)."""
    zeros = torch.zeros_like(hw[:, 0])
    return torch.stack([zeros, zeros, hw[:, 1], hw[:, 0]], dim=-1).float()


def roi_around_anchor(anchor: torch.Tensor, side_frac: torch.Tensor, hw: torch.Tensor) -> torch.Tensor:
    """Square ROI centred on the anchor, shifted to lie inside the cutout (seed 000 §6.1 item 2).

    anchor: (N, 2) (x, y) pixels; side_frac: (N,) fraction of the cutout's shorter side; hw: (N, 2) -> (N, 4).
    """
    h, w = hw[:, 0].float(), hw[:, 1].float()
    side = side_frac * torch.minimum(h, w)
    x0 = torch.minimum(torch.clamp(anchor[:, 0] - side / 2, min=0.0), w - side)
    y0 = torch.minimum(torch.clamp(anchor[:, 1] - side / 2, min=0.0), h - side)
    return torch.stack([x0, y0, x0 + side, y0 + side], dim=-1)


def square_in_box(outer: torch.Tensor, area_scale: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """A square crop covering ``area_scale`` of the (square) outer box's area, at a uniform position inside it.

    For a non-square outer box the side is relative to its shorter side. outer: (..., 4); area_scale: (...);
    u: (..., 2) uniform [0, 1) position draws -> (..., 4).
    """
    ow, oh = outer[..., 2] - outer[..., 0], outer[..., 3] - outer[..., 1]
    side = area_scale.sqrt() * torch.minimum(ow, oh)
    x0 = outer[..., 0] + u[..., 0] * (ow - side)
    y0 = outer[..., 1] + u[..., 1] * (oh - side)
    return torch.stack([x0, y0, x0 + side, y0 + side], dim=-1)


def box_ioa(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Intersection over the area of ``a`` (seed 000 Eq. 7): area(a & b) / area(a). a, b: (..., 4) -> (...)."""
    iw = (torch.minimum(a[..., 2], b[..., 2]) - torch.maximum(a[..., 0], b[..., 0])).clamp(min=0)
    ih = (torch.minimum(a[..., 3], b[..., 3]) - torch.maximum(a[..., 1], b[..., 1])).clamp(min=0)
    area = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    return iw * ih / area.clamp(min=1e-12)


def jitter_boxes(boxes: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Affine jitter of crop boxes: move the centre by ``shift`` x side and scale the side by ``scale``.

    Sampling a jittered box is the same as jittering the resized view (translation tau and isotropic
    scale delta of seed 000 Table 3), but costs nothing extra inside the fused grid_sample.
    boxes: (..., 4); shift: (..., 2) in units of the box side; scale: (...) -> (..., 4).
    """
    side = box_side(boxes)
    cx = (boxes[..., 0] + boxes[..., 2]) / 2 + shift[..., 0] * side
    cy = (boxes[..., 1] + boxes[..., 3]) / 2 + shift[..., 1] * side
    half = side * scale / 2
    return torch.stack([cx - half, cy - half, cx + half, cy + half], dim=-1)


def bright_integral(x: torch.Tensor, threshold: float, cell: int = 1) -> torch.Tensor:
    """Summed-area table of "bright pixel" counts (any channel above ``threshold``) on a grid of
    ``cell`` x ``cell`` pixel cells (cell = 1: exact per pixel; larger cells make it cheap for big inputs).

    x: (B, C, H, W) -> (B, ceil(H/cell) + 1, ceil(W/cell) + 1) float32 counts, zero first row and column.
    """
    # A few cutouts at a time: full-batch full-resolution temporaries (tens of MB) are freshly mapped
    # (page-faulted) memory on every call, which costs more than the arithmetic on CPU.
    return summed_area(torch.cat([bright_cell_counts(part, threshold, cell) for part in x.split(CHUNK)]))


def summed_area(counts: torch.Tensor) -> torch.Tensor:
    """Summed-area table with a zero first row and column. counts: (B, h, w) -> (B, h + 1, w + 1)."""
    # Both cumulative sums along the contiguous last dim (a strided cumsum is several times slower).
    sat = counts.cumsum(dim=2).transpose(1, 2).contiguous().cumsum(dim=2).transpose(1, 2)  # exact below 2**24
    return F.pad(sat, (1, 0, 1, 0))


CHUNK = 4  # cutouts per full-resolution temporary (4 x 512 x 512 float32 = 4 MiB, reused by the allocator)


def bright_cell_counts(x: torch.Tensor, threshold: float, cell: int) -> torch.Tensor:
    """Bright-pixel counts per ``cell`` x ``cell`` cell. x: (B, C, H, W) -> (B, ceil(H/cell), ceil(W/cell)).

    The mask stays one byte per pixel (bool viewed as uint8) and the row sums are taken in uint8
    (at most ``cell`` per sum, exact): a quarter of the memory traffic of a float mask.
    """
    peak = x[:, 0] if x.shape[1] == 1 else x.amax(dim=1)
    if peak.dtype == torch.float32 and threshold >= 0:
        # For t >= 0, x > t iff bits(x) > bits(t) as int32 (IEEE order for non-negative floats; negative
        # floats and -0.0 have negative int32 bits). The integer compare is ~20% faster on CPU.
        bits = int(torch.tensor(threshold, dtype=torch.float32).view(torch.int32))
        bright = (peak.contiguous().view(torch.int32) > bits).view(torch.uint8)  # (B, H, W)
    else:
        bright = (peak > threshold).view(torch.uint8)
    b, h, w = bright.shape
    if cell == 1:
        return bright.float()
    if h % cell or w % cell:
        bright = F.pad(bright, (0, (-w) % cell, 0, (-h) % cell))
        h, w = bright.shape[-2:]
    rows = bright.reshape(b, h // cell, cell, w).sum(2, dtype=torch.uint8 if cell < 256 else torch.int32)
    return rows.reshape(b, h // cell, w // cell, cell).sum(-1, dtype=torch.int32).float()


def bright_indicator(x: torch.Tensor, threshold: float) -> torch.Tensor:
    """Float 1.0 where ``x > threshold`` else 0.0, without a bool tensor: ceil(clamp(x - t, 0, 1)).

    Exact (x - t > 0 iff x > t for floats), and several times faster on CPU than a bool compare plus a
    bool -> float conversion, which matters on full-resolution inputs. x: any shape -> same shape.
    """
    return (x - threshold).clamp_(0.0, 1.0).ceil_()


def box_bright_fraction(sat: torch.Tensor, boxes: torch.Tensor, cell: int = 1) -> torch.Tensor:
    """Fraction of bright pixels inside each box, from the summed-area table in O(1) per box.

    Box edges are rounded to whole cells. sat: (B, h+1, w+1) from :func:`bright_integral`;
    boxes: (B, A, 4) pixels -> (B, A).
    """
    hp, wp = sat.shape[1] - 1, sat.shape[2] - 1
    x0 = (boxes[..., 0] / cell).round().long().clamp(0, wp)
    x1 = (boxes[..., 2] / cell).round().long().clamp(0, wp)
    y0 = (boxes[..., 1] / cell).round().long().clamp(0, hp)
    y1 = (boxes[..., 3] / cell).round().long().clamp(0, hp)
    flat = sat.flatten(1)
    stride = wp + 1

    def at(yy: torch.Tensor, xx: torch.Tensor) -> torch.Tensor:
        return torch.gather(flat, 1, yy * stride + xx)

    count = at(y1, x1) - at(y0, x1) - at(y1, x0) + at(y0, x0)
    area = ((x1 - x0) * (y1 - y0)).clamp(min=1).float() * (cell * cell)
    return count / area


_LAYOUTS: dict[str, torch.Tensor] = {}


def dihedral_layout(device) -> torch.Tensor:
    """:func:`dihedral_table` on ``device``, cached (no host-to-device copy per call)."""
    key = str(device)
    if key not in _LAYOUTS:
        _LAYOUTS[key] = dihedral_table().to(device)
    return _LAYOUTS[key]


def dihedral_table() -> torch.Tensor:
    """How each of the 8 dihedral elements (code = 2 k + flip: rot90 by k, then horizontal flip) permutes
    a separable sampling grid: (8, 3) bool (swap: the x coordinate varies along output rows; rev_x; rev_y).

    Derived by applying torch.rot90 / flip to index grids, so it matches :func:`augment.dihedral` by
    construction.
    """
    n = 3
    ii = torch.arange(n)[:, None].expand(n, n)  # source row index of output pixel (i, j)
    jj = torch.arange(n)[None, :].expand(n, n)  # source column index
    rows = []
    for code in range(8):
        k, f = code // 2, code % 2
        ti, tj = (torch.rot90(t, k, dims=(0, 1)) for t in (ii, jj))
        if f:
            ti, tj = ti.flip(-1), tj.flip(-1)
        swap = bool(tj[0, 0] != tj[1, 0])  # source column changes down the output rows
        if swap:
            rev_x, rev_y = bool(tj[0, 0] > tj[-1, 0]), bool(ti[0, 0] > ti[0, -1])
        else:
            rev_x, rev_y = bool(tj[0, 0] > tj[0, -1]), bool(ti[0, 0] > ti[-1, 0])
        rows.append([swap, rev_x, rev_y])
    return torch.tensor(rows, dtype=torch.bool)


def crop_resize(
    x: torch.Tensor,
    boxes: torch.Tensor,
    size: int,
    mode: str = "bilinear",
    k: torch.Tensor | None = None,
    flip: torch.Tensor | None = None,
) -> torch.Tensor:
    """Crop every box, resize it to ``size`` x ``size`` and (optionally) apply the dihedral transform
    (rot90 by ``k`` then horizontal flip), all in ONE grid_sample call.

    The V boxes of a sample are stacked vertically in one sampling grid, so the (large) input is never
    repeated. Sampling outside the cutout replicates its border (padding_mode="border"; inputs of
    different sizes are padded by replication, so the result equals sampling each cutout alone).
    The dihedral transform permutes the sampling grid instead of the output: every output pixel is
    interpolated from exactly the same coordinates, so the result equals torch.rot90/flip of the plain
    view bit for bit, at no extra pass over the views.
    x: (B, C, Hp, Wp); boxes: (B, V, 4) pixels; k: (B, V) long; flip: (B, V) bool -> (B, V, C, size, size).
    """
    b, c, hp, wp = x.shape
    v = boxes.shape[1]
    base = (torch.arange(size, device=x.device, dtype=torch.float32) + 0.5) / size  # output pixel centres
    side_x = (boxes[..., 2] - boxes[..., 0])[..., None]
    side_y = (boxes[..., 3] - boxes[..., 1])[..., None]
    px = boxes[..., 0:1] + base * side_x  # (B, V, S) input pixel coordinates
    py = boxes[..., 1:2] + base * side_y
    nx, ny = (2 * px / wp - 1).to(x.dtype), (2 * py / hp - 1).to(x.dtype)
    if k is None:
        swap = torch.zeros(b, v, 1, device=x.device, dtype=x.dtype)
    else:
        layout = dihedral_layout(x.device)[k * 2 + flip.long()]  # (B, V, 3)
        swap, rev_x, rev_y = (layout[..., i, None] for i in range(3))
        nx = torch.where(rev_x, nx.flip(-1), nx)  # (B, V, S): small, so the bool select is cheap
        ny = torch.where(rev_y, ny.flip(-1), ny)
        swap = swap.to(x.dtype)
    # Separable grid: grid[i, j] = row[i] + col[j] per (x, y) component, where for each component one
    # of the two terms is zero (adding 0.0 is exact). One broadcast add writes the contiguous grid.
    # Component planes (x then y) are written contiguously (vectorized) and handed to grid_sample as a
    # strided (n, V*S, S, 2) view: an interleaved (..., 2) layout would cost a slow inner-2 write.
    keep = 1 - swap
    row = torch.stack([nx * swap, ny * keep], 1)  # (B, 2, V, S): terms varying down the output rows
    col = torch.stack([nx * keep, ny * swap], 1)  # terms varying along the output columns
    out = torch.empty(b, v, c, size, size, device=x.device, dtype=x.dtype)
    # Chunks of samples on CPU: a full-batch grid (tens of MB) would be freshly page-faulted memory on
    # every call, costing more than the sampling; small chunks are reused by the allocator.
    step = b if x.device.type != "cpu" else max(1, CROP_CHUNK // v)
    for lo in range(0, b, step):
        hi = min(b, lo + step)
        n = hi - lo
        planes = row[lo:hi, :, :, :, None] + col[lo:hi, :, :, None, :]  # (n, 2, V, S, S)
        grid = planes.permute(0, 2, 3, 4, 1).flatten(1, 2)  # (n, V*S, S, 2) view, no copy
        if x.device.type != "cpu":
            grid = grid.contiguous()  # cheap there; keeps accelerator kernels on their usual layout
        part = F.grid_sample(x[lo:hi], grid, mode=mode, padding_mode="border", align_corners=False)  # (n, C, V*S, S)
        out[lo:hi] = part.reshape(n, c, v, size, size).transpose(1, 2)
    return out


# Views per grid_sample call on CPU (grid 4 x 224 x 224 x 2 float32 = 1.5 MiB): temporaries well below the
# output's size are reused by the allocator instead of being freshly page-faulted on every call.
CROP_CHUNK = 4
