"""Spectra from NPY, CSV and FITS tables (tessera.corpus.spectra): columns, units, flags, one grid per store."""

import numpy as np
import pandas as pd
import pytest
import torch
from astropy.io import fits
from astropy.table import Table

from tessera.align.spectrum_pretrain import SpectrumMaskedModel, masked_loss, segment_mask
from tessera.corpus.spectra import read_spectra_files, read_spectrum_table
from tessera.errors import TesseraError
from tessera.models.spectrum import SpectrumEncoder


def _fits_table(path, **cols):
    units = cols.pop("units", {})
    t = Table(cols)
    for name, unit in units.items():
        t[name].unit = unit
    t.write(path, format="fits")
    return path


def test_fits_table_in_ghz_with_flags_reads_in_mhz_with_nan_at_flags(tmp_path):
    nu = np.linspace(0.1, 10.0, 50)
    flags = np.zeros(50, dtype=np.int16)
    flags[10] = 1
    p = _fits_table(tmp_path / "s.fits", FREQ=nu[::-1], FLUX=2.0 * nu[::-1], FLAG=flags[::-1], units={"FREQ": "GHz"})
    t = read_spectrum_table(p)
    assert t.kind == "frequency" and t.x[0] == pytest.approx(100.0) and t.x[-1] == pytest.approx(10000.0)
    assert np.isnan(t.flux).sum() == 1 and np.isnan(t.flux[10])  # the flag follows its channel through the sort
    np.testing.assert_allclose(t.flux[~np.isnan(t.flux)], 2e-3 * t.x[~np.isnan(t.flux)], rtol=1e-6)


def test_store_grid_spans_all_files_and_marks_gaps_missing(tmp_path):
    a = _fits_table(tmp_path / "a.fits", frequency=np.array([100.0, 1000.0]), flux=np.array([1.0, 10.0]))
    pd.DataFrame({"freq_mhz": [300.0, 10000.0], "flux_jy": [3.0, 100.0]}).to_csv(tmp_path / "b.csv", index=False)
    arrays, grid = read_spectra_files([a, tmp_path / "b.csv"], 21, "test")
    assert grid[0] == pytest.approx(100.0) and grid[-1] == pytest.approx(10000.0) and len(grid) == 21
    assert np.allclose(np.diff(np.log(grid)), np.log(100) / 20)  # log-spaced
    sa, sb = arrays[0][0], arrays[1][0]
    inside_a, inside_b = grid <= 1000.0 + 1e-6, grid >= 300.0 - 1e-6
    assert np.isfinite(sa[inside_a]).all() and np.isnan(sa[~inside_a]).all()
    assert np.isfinite(sb[inside_b]).all() and np.isnan(sb[~inside_b]).all()
    np.testing.assert_allclose(sa[inside_a], 1.0 + 9.0 * (grid[inside_a] - 100.0) / 900.0, rtol=1e-5)


def test_wavelength_csv_with_ivar_and_sdss_loglam(tmp_path):
    pd.DataFrame({"wavelength": [4000.0, 5000.0, 6000.0], "flux": [1.0, 2.0, 3.0], "ivar": [1.0, 0.0, 2.0]}).to_csv(
        tmp_path / "w.csv", index=False)
    t = read_spectrum_table(tmp_path / "w.csv")
    assert t.kind == "wavelength" and np.isnan(t.flux[1]) and t.flux[2] == 3.0
    p = _fits_table(tmp_path / "sdss.fits", loglam=np.log10([4000.0, 8000.0]), flux=np.array([1.0, 2.0]),
                    and_mask=np.array([0, 0]))
    np.testing.assert_allclose(read_spectrum_table(p).x, [4000.0, 8000.0])


def test_one_row_of_array_columns_is_read_as_channels(tmp_path):
    cols = [fits.Column("WAVE", "5D", array=np.array([[1.0, 2.0, 3.0, 4.0, 5.0]])),
            fits.Column("FLUX", "5D", array=np.array([[5.0, 4.0, 3.0, 2.0, 1.0]]))]
    fits.BinTableHDU.from_columns(cols).writeto(tmp_path / "row.fits")
    t = read_spectrum_table(tmp_path / "row.fits")
    np.testing.assert_allclose(t.flux, [5, 4, 3, 2, 1])


def test_two_unnamed_csv_columns_are_x_and_flux(tmp_path):
    pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]}).to_csv(tmp_path / "s.csv", index=False)
    t = read_spectrum_table(tmp_path / "s.csv")
    np.testing.assert_allclose(t.flux, [3.0, 4.0])
    (tmp_path / "bare.csv").write_text("1.0,3.0\n2.0,4.0\n")  # no header line: both rows are channels
    np.testing.assert_allclose(read_spectrum_table(tmp_path / "bare.csv").flux, [3.0, 4.0])


def test_bad_tables_are_one_line_errors_naming_file_and_column(tmp_path):
    pd.DataFrame({"freq": [1.0, 2.0], "counts": [3.0, 4.0], "other": [0, 0]}).to_csv(tmp_path / "noflux.csv",
                                                                                      index=False)
    with pytest.raises(TesseraError, match=r"noflux.csv: no flux column.*columns: freq, counts, other"):
        read_spectrum_table(tmp_path / "noflux.csv")
    pd.DataFrame({"freq": ["x", "y"], "flux": [3.0, 4.0]}).to_csv(tmp_path / "text.csv", index=False)
    with pytest.raises(TesseraError, match=r"text.csv: column 'freq' is not numeric"):
        read_spectrum_table(tmp_path / "text.csv")
    p = _fits_table(tmp_path / "u.fits", FREQ=np.array([1.0, 2.0]), FLUX=np.array([1.0, 2.0]), units={"FREQ": "Jy"})
    with pytest.raises(TesseraError, match=r"u.fits: column 'FREQ' has unit 'Jy', not a frequency unit"):
        read_spectrum_table(p)
    fits.PrimaryHDU(np.zeros(4)).writeto(tmp_path / "img.fits")
    with pytest.raises(TesseraError, match="img.fits: no table HDU"):
        read_spectrum_table(tmp_path / "img.fits")


def test_a_store_mixing_frequency_and_wavelength_is_refused(tmp_path):
    pd.DataFrame({"freq": [1.0, 2.0], "flux": [3.0, 4.0]}).to_csv(tmp_path / "f.csv", index=False)
    pd.DataFrame({"wave": [1.0, 2.0], "flux": [3.0, 4.0]}).to_csv(tmp_path / "w.csv", index=False)
    with pytest.raises(TesseraError, match=r"pairs.csv path_b: .*w.csv gives flux against wavelength"):
        read_spectra_files([tmp_path / "f.csv", tmp_path / "w.csv"], 10, "pairs.csv path_b")


def test_masked_loss_ignores_missing_channels():
    torch.manual_seed(0)
    model = SpectrumMaskedModel(SpectrumEncoder(200, dim=16, depth=1, heads=2))
    x = torch.randn(3, 1, 200).cumsum(-1)
    mask, starts = segment_mask(3, 200, generator=torch.Generator().manual_seed(1))
    flagged = x.clone()
    lo = int(starts[0, 0])
    flagged[0, 0, lo : lo + 30] = float("nan")  # a hidden segment that is missing: no target there
    assert torch.isfinite(masked_loss(model, flagged, mask))
    # the flagged segment's values cannot matter: any other content of those (missing) channels gives the same loss
    other = flagged.clone()
    other[0, 0, lo : lo + 30] = float("inf")
    assert masked_loss(model, other, mask) == masked_loss(model, flagged, mask)
