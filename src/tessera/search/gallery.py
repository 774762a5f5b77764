"""Galleries of a search (issue 13): a matplotlib figure (the query and its neighbours, captioned with survey,
position and similarity) and a static HTML page (thumbnails + a table sortable by any column) that opens from
disk without a server. Thumbnails are PNG files next to the page, linked relatively."""

from __future__ import annotations

import html
import io
import math
from pathlib import Path

import numpy as np
import pandas as pd

from tessera.io import atomic_write_bytes, atomic_write_text

THUMBS = "thumbs"
# The table columns shown on the page, when present (the CSV keeps every column).
PAGE_COLUMNS = ("rank", "cutout_id", "similarity", "distance", "source", "survey", "label", "path", "hdu", "plane",
                "x", "y", "ra", "dec")


def display_plane(image: np.ndarray) -> np.ndarray:
    """(C, H, W) in [0, 1] -> (H, W) or (H, W, 3) for display (3 channels as RGB, otherwise the first)."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 2:
        return np.clip(image, 0, 1)
    if image.shape[0] == 3:
        return np.clip(np.moveaxis(image, 0, -1), 0, 1)
    return np.clip(image[0], 0, 1)


def thumbnail_png(image: np.ndarray) -> bytes:
    """PNG bytes of a cutout (C, H, W) in [0, 1], gray or RGB, at its own resolution."""
    from matplotlib import image as mpimg

    buf = io.BytesIO()
    plane = display_plane(image)
    mpimg.imsave(buf, plane, cmap="gray" if plane.ndim == 2 else None, vmin=0, vmax=1, format="png")
    return buf.getvalue()


def caption(row: dict, score_col: str | None = None) -> str:
    """"survey  RA, Dec" (+ score) for a result or provenance row."""
    parts = [str(row.get("survey") or row.get("source") or "")]
    ra, dec = row.get("ra"), row.get("dec")
    if ra is not None and dec is not None and np.isfinite(ra) and np.isfinite(dec):
        parts.append(f"{float(ra):.4f} {float(dec):+.4f}")
    if score_col and score_col in row:
        parts.append(f"{score_col[:3]} {float(row[score_col]):.3f}")
    return "\n".join(p for p in parts if p)


def gallery_figure(query_image: np.ndarray, query_caption: str, images: list[np.ndarray], captions: list[str],
                   path: str | Path, ncols: int = 6) -> Path:
    """Save a grid: the query first (red frame), then the neighbours in rank order; returns ``path``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cells = [(query_image, "query\n" + query_caption)] + list(zip(images, captions))
    ncols = max(1, min(ncols, len(cells)))
    nrows = math.ceil(len(cells) / ncols)
    fig = Figure(figsize=(2.2 * ncols, 3.0 * nrows))
    FigureCanvasAgg(fig)
    for i, (img, text) in enumerate(cells):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        plane = display_plane(img)
        ax.imshow(plane, cmap="gray" if plane.ndim == 2 else None, vmin=0, vmax=1, origin="lower")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(text if i == 0 else f"#{i}\n{text}", fontsize=7)
        if i == 0:
            for spine in ax.spines.values():
                spine.set_edgecolor("red")
                spine.set_linewidth(2)
    fig.tight_layout()
    path = Path(path)
    suffix = path.suffix.lstrip(".") or "png"
    buf = io.BytesIO()
    fig.savefig(buf, format=suffix, dpi=100)
    atomic_write_bytes(path, buf.getvalue())
    return path


_SORT_JS = """
function sortTable(col) {
  var table = document.getElementById('results'), body = table.tBodies[0];
  var rows = Array.prototype.slice.call(body.rows);
  var asc = table.getAttribute('data-col') != col || table.getAttribute('data-dir') != 'asc';
  rows.sort(function (a, b) {
    var x = a.cells[col].getAttribute('data-v'), y = b.cells[col].getAttribute('data-v');
    var nx = parseFloat(x), ny = parseFloat(y);
    var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
    return asc ? c : -c;
  });
  rows.forEach(function (r) { body.appendChild(r); });
  table.setAttribute('data-col', col); table.setAttribute('data-dir', asc ? 'asc' : 'desc');
}
"""


def _cell(value) -> str:
    if isinstance(value, float):
        text = f"{value:.6g}"
    else:
        text = str(value)
    return f'<td data-v="{html.escape(text)}">{html.escape(text)}</td>'


def html_page(title: str, query_thumb: str, query_caption: str, results: pd.DataFrame, thumbs: list[str]) -> str:
    """The page's text: the query thumbnail, one figure per neighbour, and the sortable table (one row each)."""
    cols = [c for c in PAGE_COLUMNS if c in results.columns]
    figures = "\n".join(
        f'<figure class="neighbour"><img src="{html.escape(t)}" alt="rank {int(r["rank"])}">'
        f'<figcaption>#{int(r["rank"])} {html.escape(caption(r.to_dict()).replace(chr(10), " "))}</figcaption></figure>'
        for t, (_, r) in zip(thumbs, results.iterrows())
    )
    head = "".join(f'<th onclick="sortTable({i})">{html.escape(c)}</th>' for i, c in enumerate(["thumbnail", *cols]))
    body = "\n".join(
        "<tr>" + f'<td data-v="{int(r["rank"])}"><img class="small" src="{html.escape(t)}" alt=""></td>'
        + "".join(_cell(r[c]) for c in cols) + "</tr>"
        for t, (_, r) in zip(thumbs, results.iterrows())
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 1em; }} figure {{ display: inline-block; margin: 4px; text-align: center; }}
img {{ width: 128px; height: 128px; image-rendering: pixelated; }} img.small {{ width: 48px; height: 48px; }}
figure.query img {{ outline: 3px solid red; }} figcaption {{ font-size: 11px; max-width: 128px; }}
table {{ border-collapse: collapse; font-size: 12px; }} td, th {{ border: 1px solid #ccc; padding: 2px 6px; }}
th {{ cursor: pointer; background: #eee; }}
</style><script>{_SORT_JS}</script></head>
<body><h1>{html.escape(title)}</h1>
<figure class="query"><img src="{html.escape(query_thumb)}" alt="query">
<figcaption>query {html.escape(query_caption)}</figcaption></figure>
<div id="neighbours">
{figures}
</div>
<table id="results"><thead><tr>{head}</tr></thead><tbody>
{body}
</tbody></table></body></html>
"""


def write_gallery(out_dir: str | Path, results: pd.DataFrame, query_image: np.ndarray, query_caption: str,
                  images: list[np.ndarray], title: str = "tessera search") -> dict[str, str]:
    """Write ``results.csv``, ``gallery.png``, ``index.html`` and ``thumbs/*.png`` into ``out_dir``.

    ``results``: one query's table (Index.query...); ``images``: the neighbours' cutouts in its row order."""
    out = Path(out_dir)
    (out / THUMBS).mkdir(parents=True, exist_ok=True)
    score_col = "similarity" if "similarity" in results.columns else "distance"
    atomic_write_bytes(out / "results.csv", results.to_csv(index=False).encode())
    atomic_write_bytes(out / THUMBS / "query.png", thumbnail_png(query_image))
    thumbs = []
    for (_, row), img in zip(results.iterrows(), images):
        name = f"{THUMBS}/rank{int(row['rank']):03d}.png"
        atomic_write_bytes(out / name, thumbnail_png(img))
        thumbs.append(name)
    captions = [caption(r.to_dict(), score_col) for _, r in results.iterrows()]
    gallery_figure(query_image, query_caption, images, captions, out / "gallery.png")
    atomic_write_text(out / "index.html", html_page(title, f"{THUMBS}/query.png", query_caption, results, thumbs))
    return {"csv": str(out / "results.csv"), "figure": str(out / "gallery.png"), "html": str(out / "index.html")}
