"""Readers: FITS HDUs/cubes/compressed, images 8/16-bit, arrays, and broken files."""

from __future__ import annotations

import warnings

import h5py
import numpy as np
import pytest
from astropy.io import fits
from PIL import Image

from tessera.corpus.readers import Plane, PlaneSkip, array_layout, iter_planes, read_image
from tessera.errors import TesseraError
from tests.corpus._synth import celestial_header, sky, write_fits


def test_fits_4d_cube_with_degenerate_axes_is_squeezed(tmp_path, rng):
    data = sky(rng, 40, 50)[None, None]  # (STOKES=1, FREQ=1, H, W)
    hdr = celestial_header(40, 50)
    hdr["CTYPE3"], hdr["CTYPE4"] = "FREQ", "STOKES"
    path = write_fits(tmp_path / "c4.fits", data, hdr)
    img = read_image(path)
    assert img.shape == (40, 50)
    np.testing.assert_array_equal(img, data[0, 0])
    planes = list(iter_planes(path))
    assert len(planes) == 1 and planes[0].data.shape == (1, 40, 50)
    assert planes[0].wcs is not None and planes[0].wcs.naxis == 2


def test_fits_3d_cube_gives_one_plane_per_slice(tmp_path, rng):
    data = np.stack([sky(rng, 30, 30) for _ in range(3)])
    path = write_fits(tmp_path / "c3.fits", data)
    planes = list(iter_planes(path))
    assert [p.plane for p in planes] == [0, 1, 2]
    for k, p in enumerate(planes):
        np.testing.assert_array_equal(p.data[0], data[k])
    assert read_image(path).shape == (3, 30, 30)


def test_fits_gz_and_tile_compressed(tmp_path, rng):
    data = sky(rng, 32, 48)
    gz = write_fits(tmp_path / "a.fits.gz", data)
    np.testing.assert_array_equal(read_image(gz), data)
    comp = tmp_path / "comp.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, compression_type="GZIP_1")]).writeto(comp)
    planes = [p for p in iter_planes(comp) if isinstance(p, Plane)]
    assert len(planes) == 1 and planes[0].hdu == 1
    np.testing.assert_allclose(planes[0].data[0], data, atol=1e-5)  # float tile compression quantizes


def test_fits_every_image_hdu_and_malformed_products(tmp_path, rng):
    a, b = sky(rng, 20, 20), sky(rng, 24, 24)
    table = fits.BinTableHDU.from_columns([fits.Column(name="x", format="E", array=np.arange(3.0))])
    path = tmp_path / "multi.fits"
    fits.HDUList([fits.PrimaryHDU(a), fits.ImageHDU(b), table, fits.ImageHDU(),
                  fits.ImageHDU(np.arange(5.0))]).writeto(path)
    items = list(iter_planes(path))
    planes = [i for i in items if isinstance(i, Plane)]
    skips = [i for i in items if isinstance(i, PlaneSkip)]
    assert [p.hdu for p in planes] == [0, 1]
    assert {(s.hdu, s.reason) for s in skips} == {(3, "no_data"), (4, "not_2d")}
    assert read_image(path, hdu=1).shape == (24, 24)
    with pytest.raises(TesseraError, match="HDU 2"):
        read_image(path, hdu=2)


def test_broken_files_raise_one_line_errors(tmp_path, rng):
    good = write_fits(tmp_path / "good.fits", sky(rng, 64, 64)).read_bytes()
    (tmp_path / "garbage.fits").write_bytes(b"not a fits file at all" * 50)
    (tmp_path / "garbage.png").write_bytes(b"\x89PNG" + b"x" * 50)
    (tmp_path / "empty.npy").write_bytes(b"")
    for name in ("garbage.fits", "garbage.png", "empty.npy", "missing.fits"):
        with pytest.raises(TesseraError, match=name) as info:
            read_image(tmp_path / name)
        assert "\n" not in str(info.value)
    # A FITS truncated inside its data unit: the header reads, the data does not.
    (tmp_path / "trunc.fits").write_bytes(good[: len(good) - 4000])
    items = list(iter_planes(tmp_path / "trunc.fits"))
    assert len(items) == 1 and isinstance(items[0], PlaneSkip) and items[0].reason == "read_error"
    with pytest.raises(TesseraError, match="trunc.fits"):
        read_image(tmp_path / "trunc.fits")


def test_png_8_and_16_bit_gray_and_rgb(tmp_path, rng):
    g8 = rng.integers(0, 255, size=(20, 30), dtype=np.uint8)
    g16 = rng.integers(0, 65535, size=(20, 30)).astype(np.uint16)
    rgb = rng.integers(0, 255, size=(20, 30, 3), dtype=np.uint8)
    Image.fromarray(g8).save(tmp_path / "g8.png")
    Image.fromarray(g16).save(tmp_path / "g16.png")
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(np.repeat(g8[..., None], 3, axis=2)).save(tmp_path / "gray_as_rgb.png")
    np.testing.assert_array_equal(read_image(tmp_path / "g8.png"), g8)
    np.testing.assert_array_equal(read_image(tmp_path / "g16.png"), g16)
    assert read_image(tmp_path / "g16.png").max() > 255  # 16-bit values kept, not squashed to 8 bits
    np.testing.assert_array_equal(read_image(tmp_path / "rgb.png"), np.moveaxis(rgb, -1, 0))
    assert read_image(tmp_path / "gray_as_rgb.png").shape == (20, 30)
    [plane] = iter_planes(tmp_path / "gray_as_rgb.png")
    assert plane.data.shape == (1, 20, 30)
    [gray] = iter_planes(tmp_path / "rgb.png", to_gray=True)
    assert gray.data.shape == (1, 20, 30)


def test_tiff_16bit_and_npy_and_hdf5(tmp_path, rng):
    import tifffile

    t16 = rng.integers(0, 65535, size=(16, 18)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "a.tif", t16)
    np.testing.assert_array_equal(read_image(tmp_path / "a.tif"), t16)
    stack = rng.normal(size=(4, 16, 16)).astype(np.float32)
    np.save(tmp_path / "s.npy", stack)
    assert [p.data.shape for p in iter_planes(tmp_path / "s.npy")] == [(1, 16, 16)] * 4
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f["images"] = rng.normal(size=(5, 12, 14))
        f["group/rgb"] = rng.normal(size=(2, 3, 12, 12))
        f["labels"] = np.arange(5)
        f["names"] = np.array([b"a", b"b"])
        f["strings2d"] = np.array([[b"a", b"b"], [b"c", b"d"]])
    items = list(iter_planes(tmp_path / "d.h5"))
    planes = [i for i in items if isinstance(i, Plane)]
    assert [(p.dataset, p.plane, p.data.shape) for p in planes] == [("group/rgb", 0, (3, 12, 12)), ("group/rgb", 1, (3,
        12, 12))] + [
        ("images", k, (1, 12, 14)) for k in range(5)
    ]
    assert [(s.dataset, s.reason) for s in items if isinstance(s, PlaneSkip)] == [("names", "non_numeric"),
        ("strings2d", "non_numeric")]
    assert read_image(tmp_path / "d.h5").shape == (2 * 3, 12, 12)


def test_array_layouts():
    assert array_layout((10, 12)) == ("hw", 1)
    assert array_layout((10, 12, 3)) == ("hwc", 1)
    assert array_layout((7, 10, 12)) == ("nhw", 7)
    assert array_layout((7, 10, 12, 3)) == ("nhwc", 7)
    assert array_layout((7, 3, 10, 12)) == ("nchw", 7)
    assert array_layout((2, 5, 10, 12)) == ("flat", 10)


def test_real_fits_with_unprintable_comments_reads_quietly(shared_data):
    path = shared_data / "frdeep_fits" / "FIRST" / "1408+0050_II.fits"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any astropy warning escaping the reader fails the test
        img = read_image(path)
        [plane] = iter_planes(path)
    assert img.shape == (150, 150) and np.isfinite(img).all()
    assert plane.wcs is not None
    ra, dec = plane.wcs.pixel_to_world_values(74.5, 74.5)
    assert ra == pytest.approx(212.135, abs=1e-3) and dec == pytest.approx(0.526091, abs=1e-3)


def test_real_ska_fits_and_first_png(shared_data):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        [ska] = iter_planes(shared_data / "ska_sdc1_crop" / "sdc1_560mhz_1000h_crop.fits")
    assert ska.data.shape == (1, 160, 174) and ska.wcs is not None
    png = next((shared_data / "first_radio_galaxies" / "FRI").glob("*.png"))
    img = read_image(png)
    assert img.shape == (300, 300) and img.max() <= 255 and img.min() >= 0


def test_read_image_is_the_first_product_of_iter_planes(tmp_path, rng):
    """One reader: read_image stacks the planes iter_planes gives for the first image product (ingest == evaluate)."""
    cube = np.stack([sky(rng, 20, 22) for _ in range(3)])
    fits_path = tmp_path / "two.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(cube), fits.ImageHDU(sky(rng, 8, 8))]).writeto(fits_path)
    np.save(tmp_path / "nhwc.npy", rng.normal(size=(2, 10, 12, 3)).astype(np.float32))
    for path in (fits_path, tmp_path / "nhwc.npy"):
        planes = [p for p in iter_planes(path) if isinstance(p, Plane)]
        first = [p.data for p in planes if (p.hdu, p.dataset) == (planes[0].hdu, planes[0].dataset)]
        np.testing.assert_array_equal(read_image(path), np.concatenate(first))
    assert read_image(fits_path, hdu=2).shape == (8, 8)
    with pytest.raises(TesseraError, match="HDU 0"):
        read_image(fits_path, hdu=0)  # an empty primary asked for by number is an error, not skipped
