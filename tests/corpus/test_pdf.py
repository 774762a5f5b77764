"""PDF / raster sheet ingest (issue 20): page size at a DPI, one plane per page, ink polarity, low-ink tiles,
corrupt and encrypted PDFs skipped with their reason."""

from __future__ import annotations

import json

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.backends.backend_pdf import PdfPages  # noqa: E402

from tessera.corpus.config import IngestConfig  # noqa: E402
from tessera.corpus.ingest import run_ingest  # noqa: E402
from tessera.corpus.pdf import ink_fraction, iter_pdf_planes, page_pixels  # noqa: E402
from tessera.corpus.readers import detect_format  # noqa: E402
from tessera.corpus.store import CutoutStore  # noqa: E402
from tessera.errors import ConfigError, TesseraError  # noqa: E402


def write_pdf(path, sizes_in, line=True):
    """A PDF with one page per (width, height) in inches, each with a black diagonal line on white."""
    with PdfPages(path) as pdf:
        for w, h in sizes_in:
            fig = plt.figure(figsize=(w, h))
            ax = fig.add_axes([0, 0, 1, 1])
            ax.set_axis_off()
            if line:
                ax.plot([0.1, 0.9], [0.1, 0.9], color="black", lw=3)
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1)
            pdf.savefig(fig)
            plt.close(fig)
    return path


def test_page_size_at_150_dpi_and_one_plane_per_page(tmp_path):
    pdf = write_pdf(tmp_path / "sheets.pdf", [(8.5, 11.0), (3.0, 2.0), (4.0, 4.0)])
    planes = list(iter_pdf_planes(pdf, dpi=150))
    assert [p.plane for p in planes] == [0, 1, 2]
    # 8.5 x 11 in = 612 x 792 pt -> 1275 x 1650 px at 150 DPI (points x 150 / 72)
    assert planes[0].data.shape == (1, 1650, 1275)
    assert planes[1].data.shape == (1, 300, 450)
    assert page_pixels(612, 792, 150) == (1650, 1275)
    p = planes[0].data
    assert p.dtype == np.float32 and p.min() == 0.0 and p.max() == 1.0  # black ink on white paper, not inverted
    assert np.mean(p > 0.5) > 0.95


def test_ingest_pdf_inverts_tiles_and_records_pages(tmp_path):
    pdf = write_pdf(tmp_path / "a.pdf", [(4.0, 4.0), (4.0, 4.0)])
    cfg = IngestConfig(tile=200, min_ink_fraction=0.002)
    report = run_ingest([pdf], tmp_path / "store", cfg, progress=False)
    store = CutoutStore(tmp_path / "store")
    m = store.manifest
    assert sorted(set(m["plane"])) == [0, 1] and set(m["format"]) == {"pdf"}
    # 600 x 600 px pages in 200 px tiles: 9 per page; the diagonal crosses 3 per page, the rest are blank
    assert report["tiles_written"] == 6
    dropped = report["tiles_dropped"]
    assert dropped["all_zero"] + dropped.get("low_ink", 0) == 12
    cut = np.asarray(store[0][0], dtype=np.float32)
    assert cut.max() == 1.0 and np.mean(cut == 0) > 0.8  # ink bright (1), paper dark (0), linear scale
    saved = json.loads((tmp_path / "store" / "report.json").read_text())
    assert saved["tiles_written"] == 6


def test_low_ink_tiles_are_counted(tmp_path):
    """A few specks of ink on a tile are below the ink-fraction threshold: dropped as low_ink, counted."""
    img = np.full((128, 128), 255, dtype=np.uint8)
    img[10, 10:14] = 0  # 4 ink pixels in the first 64 x 64 tile
    img[64:, 64:][::4] = 0  # a quarter of the last tile is ink
    from PIL import Image

    Image.fromarray(img).save(tmp_path / "scan.png")
    cfg = IngestConfig(tile=64, invert=True, min_ink_fraction=0.01)
    report = run_ingest([tmp_path / "scan.png"], tmp_path / "store", cfg, progress=False)
    assert report["tiles_written"] == 1
    assert report["tiles_dropped"]["low_ink"] == 1 and report["tiles_dropped"]["all_zero"] == 2
    assert ink_fraction(np.asarray(CutoutStore(tmp_path / "store")[0][0], dtype=np.float32)) == pytest.approx(0.25)


def test_corrupt_encrypted_and_empty_pdfs_are_skipped_with_reason(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    write_pdf(src / "good.pdf", [(2.0, 2.0)])
    (src / "broken.pdf").write_bytes(b"%PDF-1.4\n this is not a pdf body")
    (src / "truncated.pdf").write_bytes((src / "good.pdf").read_bytes()[:200])
    assert detect_format(src / "broken.pdf") == "pdf"
    report = run_ingest([src], tmp_path / "store", IngestConfig(tile=100), progress=False)
    reasons = {item["path"].split("/")[-1]: item["reason"] for item in report["skipped_inputs"]}
    assert set(reasons) == {"broken.pdf", "truncated.pdf"}
    assert "corrupt PDF" in reasons["broken.pdf"] and "broken.pdf" in reasons["broken.pdf"]
    assert report["inputs_read"] == 1 and report["tiles_written"] > 0


def test_encrypted_pdf_reason(tmp_path):
    pypdfium2 = pytest.importorskip("pypdfium2")
    del pypdfium2
    # A minimal PDF whose trailer names an /Encrypt dictionary (standard security handler, RC4 40-bit).
    body = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n"
            b"3 0 obj<</Filter/Standard/V 1/R 2/O(" + b"a" * 32 + b")/U(" + b"b" * 32 + b")/P -4>>endobj\n")
    xref_at = len(body)
    body += b"xref\n0 4\n0000000000 65535 f \n" + b"0000000009 00000 n \n" * 3
    body += b"trailer<</Size 4/Root 1 0 R/Encrypt 3 0 R/ID[<00><00>]>>\nstartxref\n"
    body += str(xref_at).encode() + b"\n%%EOF\n"
    (tmp_path / "locked.pdf").write_bytes(body)
    with pytest.raises(TesseraError, match="locked.pdf: (encrypted PDF|corrupt PDF|empty PDF)"):
        list(iter_pdf_planes(tmp_path / "locked.pdf"))


def test_bad_sheet_settings_are_config_errors():
    with pytest.raises(ConfigError, match="'dpi'"):
        IngestConfig(dpi=0).validate()
    with pytest.raises(ConfigError, match="'min_ink_fraction'"):
        IngestConfig(min_ink_fraction=2).validate()
    with pytest.raises(ConfigError, match="'stretch'"):
        IngestConfig(stretch="log").validate()


def test_cli_flags_reach_the_ingest(tmp_path, capsys):
    """`tessera ingest --dpi 72 --no-invert --min-ink-fraction F`: page at 72 DPI, paper kept bright."""
    from tessera.cli import main

    pdf = write_pdf(tmp_path / "a.pdf", [(4.0, 2.0)])  # 288 x 144 pt -> 288 x 144 px at 72 DPI
    rc = main(["ingest", str(pdf), "--out", str(tmp_path / "store"), "--tile", "144", "--dpi", "72", "--no-invert",
               "--min-ink-fraction", "0.001", "--quiet"])
    assert rc == 0
    store = CutoutStore(tmp_path / "store")
    assert len(store) == 2 and set(store.manifest["w"]) == {144}
    assert np.mean(np.asarray(store[0][0], dtype=np.float32) == 1.0) > 0.8  # not inverted: paper is 1
    saved = (tmp_path / "store" / "config.yaml").read_text()
    assert "dpi: 72" in saved and "invert: false" in saved
