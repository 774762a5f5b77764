"""The commands end to end (embed -> index -> search) and the galleries they write (figure, CSV, HTML page)."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from tessera.cli import main
from tests.search.conftest import MODEL

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chromium-headless-shell")


class _Page(HTMLParser):
    """Counts neighbour thumbnails, table header cells and body rows of a gallery page."""

    def __init__(self):
        super().__init__()
        self.figures, self.neighbour_imgs, self.headers, self.rows, self.images = 0, 0, [], 0, []
        self._in_neighbour = self._in_body = self._in_th = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "figure" and a.get("class") == "neighbour":
            self.figures += 1
            self._in_neighbour = True
        elif tag == "img":
            self.images.append(a.get("src"))
            self.neighbour_imgs += self._in_neighbour
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self.rows += 1
        elif tag == "th":
            self._in_th = True

    def handle_endtag(self, tag):
        if tag == "figure":
            self._in_neighbour = False
        elif tag == "th":
            self._in_th = False

    def handle_data(self, data):
        if self._in_th:
            self.headers.append(data)


@pytest.fixture(scope="module")
def cli_emb(tmp_path_factory, store) -> Path:
    out = tmp_path_factory.mktemp("cli") / "emb"
    assert main(["embed", "--model", MODEL, "--corpus", str(store), "--out", str(out), "--batch", "16", "--quiet"]) == 0
    assert main(["index", str(out), "--kind", "flat", "--center"]) == 0
    return out


def test_search_by_cutout_writes_csv_figure_and_html(cli_emb, tmp_path, capsys):
    table = pd.read_parquet(next(cli_emb.glob("*/table.parquet")))
    cid = table["cutout_id"].iat[3]
    out = tmp_path / "g"
    assert main(["search", str(cli_emb), "--cutout", cid, "--k", "6", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "similarity" in printed and "index.html" in printed
    res = pd.read_csv(out / "results.csv")
    assert len(res) == 6 and cid not in set(res["cutout_id"])
    assert (out / "gallery.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = _Page()
    page.feed((out / "index.html").read_text())
    assert page.figures == 6 and page.neighbour_imgs == 6 and page.rows == 6
    assert {"rank", "cutout_id", "similarity", "ra", "dec"} <= set(page.headers)
    for src in page.images:  # every thumbnail is a file next to the page (opens from disk)
        assert (out / src).is_file(), src


def test_search_by_position_and_image_through_the_cli(cli_emb, store, tmp_path, capsys):
    table = pd.read_parquet(next(cli_emb.glob("*/table.parquet")))
    row = table.iloc[20]
    assert main(["search", str(cli_emb), "--ra", str(row["ra"]), "--dec", str(row["dec"]), "--k", "3"]) == 0
    printed = capsys.readouterr().out
    assert f"searching from {row['cutout_id']}" in printed
    npy = tmp_path / "q.npy"
    import numpy as np

    from tessera.corpus.store import CutoutStore

    np.save(npy, CutoutStore(store).get_array(0)[0])
    assert main(["search", str(cli_emb), "--image", str(npy), "--k", "2", "--out", str(tmp_path / "g")]) == 0
    assert len(pd.read_csv(tmp_path / "g" / "results.csv")) == 2


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--cutout", "nope:1"], "no such cutout"),
        (["--ra", "10", "--dec", "-40"], "outside the footprint"),
        (["--cutout", "x", "--k", "0"], "--k 0: must be a positive integer"),
        (["--ra", "10"], "--ra and --dec go together"),
    ],
)
def test_bad_searches_are_one_line_errors(cli_emb, capsys, argv, message):
    assert main(["search", str(cli_emb), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_embed_of_a_missing_store_is_one_line_error(tmp_path, capsys):
    assert main(["embed", "--model", MODEL, "--corpus", str(tmp_path / "none"), "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err.strip()
    assert "not a cutout store" in err and len(err.splitlines()) == 1


def _browser() -> str | None:
    return next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)


def test_gallery_page_renders_in_a_headless_browser(cli_emb, tmp_path):
    browser = _browser()
    if browser is None:
        pytest.skip(f"no headless browser on this machine (looked for {', '.join(BROWSERS)}; "
                    "install the distribution's chromium package)")
    table = pd.read_parquet(next(cli_emb.glob("*/table.parquet")))
    out = tmp_path / "g"
    assert main(["search", str(cli_emb), "--cutout", table["cutout_id"].iat[0], "--k", "4", "--out", str(out)]) == 0
    dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                          (out / "index.html").resolve().as_uri()], capture_output=True, text=True, timeout=60).stdout
    page = _Page()
    page.feed(dom)
    assert page.figures == 4 and page.rows == 4
