"""Issue 17 in evaluate: labels that silently make wrong classes, formats skipped without a word, scaled-integer
FITS, and the MiraBest pickles (restricted unpickler, hash-keyed extraction cache)."""

from __future__ import annotations

import pickle
import tarfile

import numpy as np
import pytest
from astropy.io import fits

from tessera.cli import main
from tessera.corpus.normalize import zscale_normalize
from tessera.errors import TesseraError
from tessera.evaluate.benchmarks import load_mirabest
from tessera.evaluate.datasets import load_labeled
from tests.evaluate.doubles import write_synthetic_csv


def _csv_with(tmp_path, extra_rows: str):
    csv = write_synthetic_csv(tmp_path, n_per_class=2)
    csv.write_text(csv.read_text() + extra_rows)
    return csv


def test_labels_are_stripped_so_a_trailing_space_is_not_a_new_class(tmp_path):
    csv = write_synthetic_csv(tmp_path, n_per_class=2)
    lines = csv.read_text().splitlines()
    header, rows = lines[0], lines[1:]
    rows = [r.replace(",edge,", ",edge ,", 1) if i % 2 else r for i, r in enumerate(rows)]
    csv.write_text("\n".join([header, *rows]) + "\n")
    ls = load_labeled(csv)
    assert ls.classes == ["centre", "corner", "edge"] and np.bincount(ls.labels).tolist() == [2, 2, 2]


def test_empty_label_cells_are_refused_with_their_lines(tmp_path):
    csv = _csv_with(tmp_path, "img/centre_0.npy,,SYN\nimg/edge_0.npy,  ,SYN\n")
    with pytest.raises(TesseraError, match=r"2 row\(s\) with an empty label \(line\(s\) 8, 9\)"):
        load_labeled(csv)


def test_na_like_labels_stay_text(tmp_path):
    """``NA`` / ``None`` are class names a user may choose; pandas would turn them into NaN -> 'nan'."""
    csv = write_synthetic_csv(tmp_path, n_per_class=2)
    text = csv.read_text().replace(",centre,", ",NA,")
    csv.write_text(text)
    assert "NA" in load_labeled(csv).classes


def test_a_single_class_is_refused(tmp_path):
    csv = write_synthetic_csv(tmp_path, n_per_class=2)
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join([lines[0]] + [line for line in lines[1:] if ",edge," in line]) + "\n")
    with pytest.raises(TesseraError, match="has 1 class \\(edge\\).*at least two"):
        load_labeled(csv)


def test_an_empty_labels_csv_is_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "labels.csv").write_text("")
    with pytest.raises(TesseraError, match="not a readable label CSV"):
        load_labeled(tmp_path / "labels.csv")
    (tmp_path / "header.csv").write_text("path,label\n")
    with pytest.raises(TesseraError, match="no rows"):
        load_labeled(tmp_path / "header.csv")
    code = main(["evaluate", "--model", "random:cpu", "--data", str(tmp_path / "labels.csv"), "--out",
                 str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "labels.csv" in err


def _scaled_images(rng, n: int):
    """int16 with BSCALE/BZERO/BLANK and the standard uint16 layout (BZERO = 32768): what archives serve."""
    out = []
    for i in range(n):
        if i % 2 == 0:
            raw = rng.integers(-2000, 30000, size=(32, 32)).astype(np.int16)
            raw[3, 4] = -32768
            hdu = fits.PrimaryHDU(raw)
            hdu.header["BSCALE"], hdu.header["BZERO"], hdu.header["BLANK"] = 2.5e-5, 0.01, -32768
        else:
            hdu = fits.PrimaryHDU(rng.integers(0, 60000, size=(32, 32)).astype(np.uint16))
            assert hdu.header["BZERO"] == 32768
        out.append(hdu)
    return out


def test_scaled_integer_and_compressed_fits_in_class_folders(tmp_path):
    """Class folders read .fits.gz, .fits.fz and .fz (one shared list of formats) with astropy's scaled values."""
    rng = np.random.default_rng(0)
    expected = {}
    for cls in ("FRI", "FRII"):
        (tmp_path / cls).mkdir()
        for hdu, name in zip(_scaled_images(rng, 4), ("a.fits", "b.fits.gz", "c.fits.fz", "d.fz")):
            path = tmp_path / cls / name
            if name.endswith("fz"):
                fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(hdu.data, header=hdu.header)]).writeto(path)
            else:
                hdu.writeto(path)
            with fits.open(path, memmap=False) as f:
                data = next(h.data for h in f if h.data is not None)
            expected[f"{cls}/{name}"] = zscale_normalize(np.asarray(data, dtype=np.float32))
    ls = load_labeled(tmp_path)
    assert ls.excluded == [] and sorted(ls.sources) == sorted(expected)
    for src, img in zip(ls.sources, ls.images):
        np.testing.assert_allclose(img[0].astype(np.float32), expected[src], atol=1e-3)
    blank = ls.sources.index("FRI/a.fits")
    assert ls.images[blank][0, 3, 4] == 0  # BLANK -> NaN -> 0 after normalization


def _mirabest(root, payload=None):
    batches = root / "batches"
    batches.mkdir(parents=True)
    data = (np.random.default_rng(0).random((4, 150 * 150)) * 255).astype(np.uint8)
    entry = payload if payload is not None else {"data": data, "labels": [0, 5, 0, 5], "filenames": list("abcd")}
    with open(batches / "data_batch_1", "wb") as f:
        pickle.dump(entry, f, protocol=2)
    return batches


class _Exploit:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_crafted_mirabest_batch_does_not_execute(tmp_path):
    from tessera.evaluate.benchmarks import load_batch

    marker = tmp_path / "pwned"
    batches = _mirabest(tmp_path / "mb", {"data": _Exploit(marker), "labels": [0]})
    with pytest.raises(TesseraError, match=r"data_batch_1: not a MiraBest batch .*(posix|os)\.system"):
        load_mirabest(tmp_path / "mb")
    assert not marker.exists()
    assert load_batch(_mirabest(tmp_path / "ok") / "data_batch_1")["labels"] == [0, 5, 0,
        5]  # a real (protocol 2) batch still loads
    assert batches.exists()


def test_archives_extract_into_a_hash_keyed_cache_and_partial_ones_are_redone(tmp_path):
    from tessera.evaluate.benchmarks import extract_archive_cached

    _mirabest(tmp_path / "mb")
    archive = tmp_path / "data" / "MiraBest_full_batches.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "mb" / "batches", arcname="batches")
    ls = load_mirabest(archive, cache=tmp_path / "cache")
    # The data may sit on a read-only disk: nothing is written next to the archive.
    assert len(ls) == 4 and sorted(p.name for p in archive.parent.iterdir()) == [archive.name]
    target = extract_archive_cached(archive, tmp_path / "cache")
    assert target.parent == tmp_path / "cache" / "extracted" and len(target.name) == 64
    # A partial extraction (killed run: no completion marker, a batch missing) is redone.
    (target / ".complete").unlink()
    (target / "batches" / "data_batch_1").unlink()
    assert len(load_mirabest(archive, cache=tmp_path / "cache")) == 4
    assert (target / ".complete").is_file()


def test_blanked_pixels_follow_the_ingest_rule(tmp_path):
    """A few NaN pixels: ZScale on the finite pixels, blanks 0 (as ingest keeps them); a threshold excludes."""
    csv = write_synthetic_csv(tmp_path, n_per_class=2)
    img = np.random.default_rng(3).random((32, 32)).astype(np.float32)
    img[2, 2] = img[7, 9] = np.nan
    np.save(tmp_path / "img" / "blanked.npy", img)
    csv.write_text(csv.read_text() + "img/blanked.npy,edge,SYN\n")
    kept = load_labeled(csv)
    i = kept.sources.index("img/blanked.npy")
    np.testing.assert_allclose(kept.images[i][0].astype(np.float32), zscale_normalize(img), atol=1e-3)
    assert kept.images[i][0, 2, 2] == 0
    strict = load_labeled(csv, max_nan_fraction=0.0)
    assert "img/blanked.npy" not in strict.sources
    assert "max_nan_fraction=0.0" in {e["path"]: e["reason"] for e in strict.excluded}["img/blanked.npy"]
    assert strict.data_key != kept.data_key and len(load_labeled(csv, max_nan_fraction=0.01)) == len(kept)


def test_eval_config_max_nan_fraction_reaches_the_loader(tmp_path):
    from tessera.config import apply_overrides
    from tessera.errors import ConfigError
    from tessera.evaluate.config import EvalConfig
    from tessera.evaluate.protocol import resolve_data

    csv = write_synthetic_csv(tmp_path, n_per_class=2)
    img = np.random.default_rng(3).random((32, 32)).astype(np.float32)
    img[2, 2] = np.nan
    np.save(tmp_path / "img" / "blanked.npy", img)
    csv.write_text(csv.read_text() + "img/blanked.npy,edge,SYN\n")
    assert "img/blanked.npy" in resolve_data(str(csv), EvalConfig()).train.sources
    strict = resolve_data(str(csv), apply_overrides(EvalConfig(), ["max_nan_fraction=0.0"]))
    assert "img/blanked.npy" not in strict.train.sources
    with pytest.raises(ConfigError, match="max_nan_fraction"):
        resolve_data("frdeep-cross:" + str(tmp_path), apply_overrides(EvalConfig(), ["max_nan_fraction=0.1"]))
