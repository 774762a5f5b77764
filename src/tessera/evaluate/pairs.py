"""``frdeep-pairs:PATH``: the paired FIRST/NVSS images of FR-DEEP for cross-survey retrieval (issue 11).

The two surveys see the same galaxy at very different scales: FIRST at 1.8"/px and NVSS at 15"/px over the same
150 px, so an NVSS cutout covers about 8x the field of the FIRST one. Matching a 4.5' FIRST field against a
37.5' NVSS field mostly tests whether the encoder ignores the other sources in the NVSS field. By default
(``retrieval.common_field``) both images are cut to their common sky field using their WCS headers (astropy)
before normalization and embedding: in practice the NVSS image is cut to the ~18 px that the FIRST image covers,
and the encoder resizes both to its input size. The choice is recorded in the results (``data_options``).
"""

from __future__ import annotations

import warnings

import numpy as np

from tessera.errors import TesseraError
from tessera.evaluate.datasets import EvalData, Record, build_labeled_set, records_from_csv, subset_records


def _read_fits_with_wcs(path, hdu: int | None):
    """(2-D image (H, W) float32, celestial WCS) of a FITS file; TesseraError when unreadable or without WCS."""
    from astropy.io import fits
    from astropy.utils.exceptions import AstropyWarning
    from astropy.wcs import WCS

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyWarning)  # FR-DEEP headers carry unprintable COMMENT cards
            with fits.open(path, memmap=False) as hdul:
                index = hdu if hdu is not None else next(i for i, h in enumerate(hdul) if h.data is not None)
                data = np.asarray(hdul[index].data, dtype=np.float32)
                wcs = WCS(hdul[index].header).celestial
    except (OSError, StopIteration, IndexError, ValueError) as exc:
        raise TesseraError(f"{path}: unreadable FITS image ({exc})") from None
    data = np.squeeze(data)
    if data.ndim != 2 or not wcs.has_celestial:
        raise TesseraError(f"{path}: need a 2-D image with a celestial WCS for the common-field cut")
    return data, wcs


def footprint_box(inner_shape, inner_wcs, outer_shape, outer_wcs) -> tuple[int, int, int, int]:
    """Pixel box (y0, y1, x0, x1) of ``outer`` covered by the field of ``inner`` (clipped to outer's extent).

    The corners of inner's pixel grid (pixel edges, -0.5 .. n-0.5) go to the sky and back into outer's pixels;
    the box is their bounding box, rounded outwards to whole pixels."""
    h, w = inner_shape
    corners = np.array([[-0.5, -0.5], [w - 0.5, -0.5], [-0.5, h - 0.5], [w - 0.5, h - 0.5]])  # (x, y)
    sky = inner_wcs.pixel_to_world_values(corners[:, 0], corners[:, 1])
    ox, oy = outer_wcs.world_to_pixel_values(*sky)
    H, W = outer_shape
    x0, x1 = int(np.floor(np.min(ox) + 0.5)), int(np.ceil(np.max(ox) + 0.5))
    y0, y1 = int(np.floor(np.min(oy) + 0.5)), int(np.ceil(np.max(oy) + 0.5))
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, W), min(y1, H)
    if x1 - x0 < 2 or y1 - y0 < 2:
        raise TesseraError("the two images share no sky field")
    return y0, y1, x0, x1


def common_field_pair(a_path, b_path, hdu: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Both images cut to their common sky field: (a_cut (h_a, w_a), b_cut (h_b, w_b)) raw pixel values."""
    a, wa = _read_fits_with_wcs(a_path, hdu)
    b, wb = _read_fits_with_wcs(b_path, hdu)
    ay0, ay1, ax0, ax1 = footprint_box(b.shape, wb, a.shape, wa)  # part of a inside b's field
    by0, by1, bx0, bx1 = footprint_box(a.shape, wa, b.shape, wb)  # part of b inside a's field
    return a[ay0:ay1, ax0:ax1], b[by0:by1, bx0:bx1]


def load_frdeep_pairs(path, hdu=None, max_per_class=None, seed=0, name="frdeep-pairs",
                      common_field: bool = True) -> EvalData:
    """Paired FIRST (train) and NVSS (test) images of FR-DEEP, in the same object order, for retrieval.

    A pair whose images cannot be read or cut (or that is blank after the cut) is dropped from both sides and
    listed in ``excluded``."""
    from tessera.evaluate.benchmarks import _frdeep_csv

    records = records_from_csv(_frdeep_csv(path))
    by_survey: dict[str, dict] = {"FIRST": {}, "NVSS": {}}
    for r in records:
        survey = str(r.extra.get("survey"))
        if survey in by_survey:
            by_survey[survey][r.extra.get("object")] = r
    objects = [o for o in by_survey["FIRST"] if o in by_survey["NVSS"]]
    if not objects:
        raise TesseraError(f"{path}: no object has both a FIRST and an NVSS image")
    chosen = subset_records([by_survey["FIRST"][o] for o in objects], max_per_class, seed)
    first_recs, nvss_recs, excluded = [], [], []
    for rf in chosen:
        rn = by_survey["NVSS"][rf.extra.get("object")]
        if common_field:
            try:
                a, b = common_field_pair(rf.path, rn.path, hdu)
            except TesseraError as exc:
                excluded += [{"path": rf.source, "reason": str(exc)}, {"path": rn.source, "reason": str(exc)}]
                continue
            rf = Record(source=rf.source, label=rf.label, array=a, extra=rf.extra)
            rn = Record(source=rn.source, label=rn.label, array=b, extra=rn.extra)
        first_recs.append(rf)
        nvss_recs.append(rn)
    if not first_recs:
        raise TesseraError(f"{path}: no usable FIRST/NVSS pair")
    from tessera.evaluate.benchmarks import _signature

    # array records carry no file signature of their own: put the files' in the data key (feature cache)
    paths = [r.path for r in chosen] + [by_survey["NVSS"][r.extra.get("object")].path for r in chosen]
    key = f"frdeep-pairs;common_field={common_field};" + _signature(paths)
    train = build_labeled_set(first_recs, hdu=hdu, extra_key=key)
    test = build_labeled_set(nvss_recs, hdu=hdu, classes=train.classes, extra_key=key)
    both = set(train.meta["object"]) & set(test.meta["object"])
    from tessera.evaluate.benchmarks import _select_objects

    train, test = _select_objects(train, both), _select_objects(test, both)
    train.excluded = excluded + train.excluded
    return EvalData(name, train, test, survey_names=("FIRST", "NVSS"),
                    test_description="NVSS images of the same objects"
                    + (", cut to the FIRST field" if common_field else ""),
                    options={"common_field": bool(common_field)})
