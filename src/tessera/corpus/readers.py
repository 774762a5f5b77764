"""Readers: FITS HDUs and cubes, ordinary images (PNG/JPEG/TIFF, 8/16-bit) and arrays (.npy, HDF5).

One reader, two entry points:

- :func:`read_image` returns ONE raw image (the contract other packages use for labeled data): the planes
  of the first image product of :func:`iter_planes`, stacked along C.
- :func:`iter_planes` yields every 2D plane of a file for ingestion (seed 000 §3.1: "When the input
  product is a cube, we iterate over its leading axes and extract cutouts from each 2D plane"),
  with its provenance (HDU, HDF5 dataset, plane index) and celestial WCS, plus a :class:`PlaneSkip`
  for every malformed product inside the file (no image array, empty array, non-numeric pixels).

Values are raw (physical units, not normalized); normalization happens per tile in
:mod:`tessera.corpus.normalize`. A file that cannot be opened at all raises
:class:`tessera.errors.TesseraError` naming the file and the reason.

Real survey FITS carry non-printable characters in COMMENT cards (FR-DEEP/SkyView) or keywords that
do not apply (BLANK on float data, SKA SDC1): astropy warns about them on header access. We read
them quietly by catching astropy's warnings locally around each astropy call, never globally, and
never around a ``yield`` (``warnings.catch_warnings`` is process-global state, and a suspended
generator would leak the filter into the caller).
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from tessera.errors import TesseraError

FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fz", ".fits.gz", ".fit.gz", ".fts.gz", ".fits.fz")
PIL_SUFFIXES = (".png", ".jpg", ".jpeg")
TIFF_SUFFIXES = (".tif", ".tiff")
NPY_SUFFIXES = (".npy",)
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".he5")
PDF_SUFFIXES = (".pdf",)  # construction sheets, rasterized by corpus/pdf.py (ingest only)
# The one list of readable file names, shared by ingest (directory inputs) and evaluate (class folders),
# so a format that one path reads is never silently skipped by the other.
READABLE_SUFFIXES = FITS_SUFFIXES + PIL_SUFFIXES + TIFF_SUFFIXES + NPY_SUFFIXES + HDF5_SUFFIXES


@dataclasses.dataclass
class Plane:
    """One 2D image of a file, ready for tiling.

    data: ``(C, H, W)`` float32 raw values (C = 1 for FITS planes and gray images).
    """

    data: np.ndarray
    hdu: int = -1  # FITS HDU index; -1 for other formats
    dataset: str = ""  # HDF5 dataset path; "" for other formats
    plane: int = 0  # index over the flattened leading axes of a cube / stack
    wcs: Any = None  # celestial astropy.wcs.WCS of this plane (pixel axes x, y), or None
    note: str = ""  # a non-fatal problem, e.g. a WCS that could not be parsed


@dataclasses.dataclass
class PlaneSkip:
    """A product inside a file that holds no usable image (seed 000 §3.1 "malformed products")."""

    reason: str  # short key: no_data, empty, non_numeric, not_2d, read_error
    detail: str
    hdu: int = -1
    dataset: str = ""
    plane: int = -1


def _has_suffix(name: str, suffixes: tuple[str, ...]) -> bool:
    name = name.lower()
    return any(name.endswith(s) for s in suffixes)


def has_readable_suffix(path: str | Path) -> bool:
    """True when the file name ends with one of :data:`READABLE_SUFFIXES` (case-insensitive)."""
    return _has_suffix(Path(path).name, READABLE_SUFFIXES)


def detect_format(path: str | Path) -> str | None:
    """``"fits" | "pil" | "tiff" | "npy" | "hdf5"`` from the file name, else by magic bytes; None if unknown."""
    name = Path(path).name
    for fmt, suffixes in (
        ("fits", FITS_SUFFIXES),
        ("pil", PIL_SUFFIXES),
        ("tiff", TIFF_SUFFIXES),
        ("npy", NPY_SUFFIXES),
        ("hdf5", HDF5_SUFFIXES),
        ("pdf", PDF_SUFFIXES),
    ):
        if _has_suffix(name, suffixes):
            return fmt
    try:
        with open(path, "rb") as fh:
            head = fh.read(80)
    except OSError:
        return None
    if head.startswith(b"SIMPLE  ="):
        return "fits"
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "hdf5"
    if head.startswith(b"\x89PNG") or head.startswith(b"\xff\xd8\xff"):
        return "pil"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if head.startswith(b"%PDF"):
        return "pdf"
    return None


def _unreadable(path: str | Path, exc: BaseException) -> TesseraError:
    """One line naming the file and the reason (first line of the library's message)."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    reason = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return TesseraError(f"{path}: unreadable ({reason})")


def _check_numeric(arr_dtype: np.dtype) -> str | None:
    """None when the dtype holds real numbers, else a reason."""
    if arr_dtype.fields is not None:
        return f"structured dtype {arr_dtype}"
    if np.issubdtype(arr_dtype, np.complexfloating):
        return f"complex dtype {arr_dtype}"
    if not (np.issubdtype(arr_dtype, np.number) or arr_dtype == np.bool_):
        return f"dtype {arr_dtype}"
    return None


def _collapse_identical_channels(img: np.ndarray) -> np.ndarray:
    """``(3, H, W)`` whose channels are equal (a gray image saved as RGB) -> ``(1, H, W)``."""
    if img.shape[0] > 1 and all(np.array_equal(img[0], img[c]) for c in range(1, img.shape[0])):
        return img[:1]
    return img


def _to_gray(img: np.ndarray) -> np.ndarray:
    """``(3, H, W)`` RGB -> ``(1, H, W)`` luma (ITU-R BT.601 weights); other C are returned as is."""
    if img.shape[0] != 3:
        return img
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)[:, None, None]
    return (img * weights).sum(axis=0, keepdims=True, dtype=np.float32)


# ---------------------------------------------------------------- FITS


@contextlib.contextmanager
def quiet_astropy():
    """Hide astropy's header-verification warnings (non-printable COMMENT cards) inside this block only."""
    from astropy.utils.exceptions import AstropyWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyWarning)
        yield


def _fits_open(path: str | Path):
    from astropy.io import fits

    try:
        with quiet_astropy():
            return fits.open(path, memmap=True, lazy_load_hdus=False)
    except Exception as exc:  # astropy raises OSError, ValueError, TypeError... on broken files
        raise _unreadable(path, exc) from exc


def _is_image_hdu(hdu) -> bool:
    from astropy.io import fits

    return isinstance(hdu, (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU))


def _fits_hdu_array(hdu, path: str | Path | None = None, index: int | None = None) -> np.ndarray | None:
    """The HDU's data (scaled by BSCALE/BZERO, BLANK -> NaN), quietly; None if it has none.

    astropy refuses to memory-map scaled integer images (BZERO/BSCALE/BLANK: int16 with BSCALE, the
    standard uint16 layout BZERO=32768, and their .fits.gz), which many archives serve; those HDUs are
    re-read without memory mapping, so the values are exactly astropy's scaled data.
    """
    try:
        with quiet_astropy():
            return hdu.data
    except ValueError as exc:
        if "memory-mapped" not in str(exc) or path is None or index is None:
            raise
    return _unmapped_hdu_data(path, index)


def _unmapped_hdu_data(path: str | Path, index: int) -> np.ndarray | None:
    """HDU ``index`` of ``path`` read into memory (astropy applies BSCALE/BZERO and maps BLANK to NaN)."""
    from astropy.io import fits

    with quiet_astropy():
        with fits.open(path, memmap=False, lazy_load_hdus=True) as hdul:
            data = hdul[index].data
            return None if data is None else np.array(data)


def _celestial_wcs(header) -> tuple[Any, str]:
    """(celestial WCS over the image axes, "") or (None, why not).

    The celestial axes must be FITS axes 1 and 2 (numpy's last two) so that a tile's pixel
    position maps to the sky; other layouts are rare and we do not guess.
    """
    from astropy.wcs import WCS

    try:
        with quiet_astropy():
            wcs = WCS(header)
    except Exception as exc:  # header-broken WCS: keep the pixels, record the reason
        return None, f"no WCS ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
    if not wcs.has_celestial:
        return None, ""
    if sorted([wcs.wcs.lng, wcs.wcs.lat]) != [0, 1]:
        return None, "celestial axes are not the image axes"
    return wcs.celestial, ""


def _leading_planes(data: np.ndarray) -> tuple[np.ndarray, int] | str:
    """Squeeze degenerate axes (length-1 FREQ/STOKES) and view leading axes as planes.

    data: ``(..., H, W)`` -> ``((N, H, W) view, N)``, or a reason string when no 2D image remains.
    """
    if data.size == 0:
        return "empty"
    squeezed = np.squeeze(data)
    if squeezed.ndim < 2:
        return "not_2d"
    n = int(np.prod(squeezed.shape[:-2])) if squeezed.ndim > 2 else 1
    return squeezed.reshape(n, *squeezed.shape[-2:]), n


def _requested_hdus(path: str | Path, hdul, hdu: int | None) -> range | list[int]:
    """All HDU indices, or ``[hdu]`` after checking that it exists and is an image HDU."""
    if hdu is None:
        return range(len(hdul))
    if hdu < 0 or hdu >= len(hdul):
        raise TesseraError(f"{path}: has no HDU {hdu} (it has {len(hdul)})")
    if not _is_image_hdu(hdul[hdu]):
        raise TesseraError(f"{path}: HDU {hdu} is not an image HDU")
    return [hdu]


def _iter_fits_planes(path: str | Path, only_hdu: int | None = None) -> Iterator[Plane | PlaneSkip]:
    hdul = _fits_open(path)
    try:
        n_hdus = len(hdul)
        for index in _requested_hdus(path, hdul, only_hdu):
            hdu = hdul[index]
            if not _is_image_hdu(hdu):
                continue
            try:
                data = _fits_hdu_array(hdu, path, index)
            except Exception as exc:  # truncated / corrupt data unit: skip this HDU, keep the others
                yield PlaneSkip("read_error", str(_unreadable(path, exc)), hdu=index)
                continue
            if data is None:
                # An empty primary HDU in front of extensions is normal; it is not an input problem.
                if index == 0 and n_hdus > 1 and only_hdu is None:
                    continue
                yield PlaneSkip("no_data", "HDU has no data array", hdu=index)
                continue
            why = _check_numeric(data.dtype)
            if why is not None:
                yield PlaneSkip("non_numeric", why, hdu=index)
                continue
            planes = _leading_planes(data)
            if isinstance(planes, str):
                yield PlaneSkip(planes, f"shape {data.shape}", hdu=index)
                continue
            stack, n = planes
            wcs, note = _celestial_wcs(hdu.header)
            for k in range(n):
                try:
                    plane = np.array(stack[k], dtype=np.float32)  # copy: the memmap closes with the file
                except Exception as exc:  # truncated data discovered when the pages are touched
                    yield PlaneSkip("read_error", str(_unreadable(path, exc)), hdu=index, plane=k)
                    break
                yield Plane(plane[None], hdu=index, plane=k, wcs=wcs, note=note)
    finally:
        hdul.close()


# ---------------------------------------------------------------- PIL / TIFF images


def _pil_array(path: str | Path) -> np.ndarray:
    """PNG/JPEG -> ``(C, H, W)`` raw values (uint8/uint16 kept as numbers); alpha dropped, palettes expanded."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode == "P":
                im = im.convert("RGB")
            elif mode in ("LA", "La"):
                im = im.getchannel("L")
            elif mode in ("RGBA", "RGBa", "CMYK", "YCbCr", "RGBX", "HSV", "LAB"):
                im = im.convert("RGB")
            elif mode == "1":
                im = im.convert("L")
            arr = np.asarray(im)
    except Exception as exc:  # PIL raises OSError/SyntaxError/ValueError on truncated or fake files
        raise _unreadable(path, exc) from exc
    if arr.ndim == 2:
        return arr[None]
    return np.moveaxis(arr, -1, 0)


def _tiff_array(path: str | Path) -> np.ndarray:
    import tifffile

    try:
        return tifffile.imread(path)
    except Exception as exc:  # tifffile raises TiffFileError/ValueError/OSError on broken files
        raise _unreadable(path, exc) from exc


# ---------------------------------------------------------------- arrays (npy, HDF5, TIFF stacks)


def array_layout(shape: tuple[int, ...]) -> tuple[str, int]:
    """How an array of images is laid out: ``(layout, number of images)``.

    2D ``(H, W)``: one image. 3D: ``(H, W, 3|4)`` with H > 4 is one channels-last color image,
    otherwise ``(N, H, W)`` is N images (issue: "a 3D/4D dataset of N images is N planes").
    4D: ``(N, H, W, C)`` when the last axis is 1/3/4 and axis 1 is not, ``(N, C, H, W)`` when axis 1 is
    1/3/4, otherwise the leading axes are flattened into planes (like a FITS cube).
    """
    nd = len(shape)
    if nd == 2:
        return "hw", 1
    if nd == 3:
        if shape[-1] in (3, 4) and shape[0] > 4:
            return "hwc", 1
        return "nhw", shape[0]
    if nd == 4:
        if shape[-1] in (1, 3, 4) and shape[1] > 4:
            return "nhwc", shape[0]
        if shape[1] in (1, 3, 4):
            return "nchw", shape[0]
    return "flat", int(np.prod(shape[:-2]))


def array_image(arr, layout: str, k: int) -> np.ndarray:
    """Image ``k`` of an array (numpy, memmap or h5py dataset) as float32 ``(C, H, W)``; reads only that image."""
    if layout == "hw":
        img = np.asarray(arr[...])[None]
    elif layout == "hwc":
        img = np.moveaxis(np.asarray(arr[...]), -1, 0)
    elif layout == "nhw":
        img = np.asarray(arr[k])[None]
    elif layout == "nhwc":
        img = np.moveaxis(np.asarray(arr[k]), -1, 0)
    elif layout == "nchw":
        img = np.asarray(arr[k])
    else:
        lead = np.unravel_index(k, arr.shape[:-2])
        img = np.asarray(arr[tuple(int(i) for i in lead)])[None]
    return np.array(img, dtype=np.float32)


def _iter_array_planes(arr, dataset: str = "") -> Iterator[Plane | PlaneSkip]:
    why = _check_numeric(np.dtype(arr.dtype))
    if why is not None:
        yield PlaneSkip("non_numeric", why, dataset=dataset)
        return
    if len(arr.shape) < 2:
        yield PlaneSkip("not_2d", f"shape {tuple(arr.shape)}", dataset=dataset)
        return
    if int(np.prod(arr.shape)) == 0:
        yield PlaneSkip("empty", f"shape {tuple(arr.shape)}", dataset=dataset)
        return
    layout, n = array_layout(tuple(arr.shape))
    for k in range(n):
        yield Plane(array_image(arr, layout, k), dataset=dataset, plane=k)


def _npy_open(path: str | Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:  # ValueError (pickled object arrays, bad header), OSError, EOFError
        raise _unreadable(path, exc) from exc


def _hdf5_datasets(path: str | Path) -> list[str]:
    import h5py

    names: list[str] = []
    try:
        with h5py.File(path, "r") as f:
            f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    except Exception as exc:  # OSError on truncated/non-HDF5 files
        raise _unreadable(path, exc) from exc
    return sorted(names)


def _iter_hdf5_planes(path: str | Path) -> Iterator[Plane | PlaneSkip]:
    import h5py

    names = _hdf5_datasets(path)
    if not names:
        yield PlaneSkip("no_data", "HDF5 file has no datasets")
        return
    with h5py.File(path, "r") as f:
        for name in names:
            dset = f[name]
            if len(dset.shape) < 2 and _check_numeric(np.dtype(dset.dtype)) is None:
                continue  # 1D numeric datasets (labels, coordinates) are tables, not images
            try:
                yield from _iter_array_planes(dset, dataset=name)
            except OSError as exc:  # a truncated chunk: skip the rest of this dataset
                yield PlaneSkip("read_error", str(_unreadable(path, exc)), dataset=name)


# ---------------------------------------------------------------- public API


def iter_planes(
    path: str | Path, to_gray: bool = False, fmt: str | None = None, hdu: int | None = None
) -> Iterator[Plane | PlaneSkip]:
    """Every 2D image of ``path`` as :class:`Plane` ``(C, H, W)`` float32, and a :class:`PlaneSkip` per
    malformed product.

    Raises TesseraError when the file cannot be opened or its format is unknown, or when ``hdu`` (FITS only:
    read that HDU alone) does not exist or is not an image HDU. Color images keep their channels (C = 3)
    unless ``to_gray``; a gray image saved with 3 identical channels becomes C = 1.
    """
    fmt = fmt or detect_format(path)
    if fmt is None:
        raise TesseraError(f"{path}: not a supported format (FITS, PNG, JPEG, TIFF, NPY, HDF5)")
    if fmt == "fits":
        yield from _iter_fits_planes(path, hdu)
        return
    if fmt == "pdf":  # pages at the default DPI; ingest passes its own (corpus/pdf.py)
        from tessera.corpus.pdf import iter_pdf_planes

        yield from iter_pdf_planes(path)
        return
    if fmt == "hdf5":
        source: Iterator[Plane | PlaneSkip] = _iter_hdf5_planes(path)
    elif fmt == "npy":
        source = _iter_array_planes(_npy_open(path))
    elif fmt == "tiff":
        source = _iter_array_planes(_tiff_array(path))
    else:
        source = iter([Plane(_pil_array(path).astype(np.float32))])
    for item in source:
        if isinstance(item, Plane):
            item.data = _collapse_identical_channels(item.data)
            if to_gray:
                item.data = _to_gray(item.data)
        yield item


def read_image(path: str | Path, hdu: int | None = None) -> np.ndarray:
    """Read one raw image: float32 ``(H, W)`` or ``(C, H, W)``, not normalized.

    The image is the first product of :func:`iter_planes` that holds planes (the first image HDU with data,
    or HDU ``hdu``; the first numeric HDF5 dataset with ndim >= 2, sorted by name; the array of a NPY/TIFF;
    the PNG/JPEG), with its planes stacked along C: a FITS cube's degenerate axes are squeezed and its
    remaining leading axes become C; color stays ``(3, H, W)``, a gray image saved as RGB is ``(H, W)``.
    Built on :func:`iter_planes` so that ingest and evaluation read every format the same way.
    Raises TesseraError naming the file and the reason when it cannot be read.
    """
    path = Path(path)
    if not path.is_file():
        raise TesseraError(f"{path}: no such file")
    if detect_format(path) == "pdf":
        raise TesseraError(f"{path}: a PDF is a sheet of pages; ingest it (tessera ingest --dpi) or use PNG tiles")
    planes: list[Plane] = []
    skips: list[PlaneSkip] = []
    for item in iter_planes(path, hdu=hdu):
        if planes and (item.hdu, item.dataset) != (planes[0].hdu, planes[0].dataset):
            break  # the next product: the image is complete
        if isinstance(item, Plane):
            planes.append(item)
        elif item.reason == "read_error":
            raise TesseraError(item.detail)  # the detail already names the file and the reason
        else:
            skips.append(item)
    if not planes:
        where = f"HDU {hdu}" if hdu is not None else "no image"
        why = "; ".join(f"{s.reason}: {s.detail}" for s in skips[:3])
        raise TesseraError(f"{path}: {where}" + (f" ({why})" if why else " in the file"))
    img = np.concatenate([p.data for p in planes]) if len(planes) > 1 else planes[0].data
    return img[0] if img.shape[0] == 1 else img
