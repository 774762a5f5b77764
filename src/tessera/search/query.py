"""Searching an embedding set (issue 13): by cutout id, by image, by vectors, by sky position.

``Index.open(EMB).query(images_or_ids, k)`` returns a table, one row per (query, neighbour): ``query``,
``rank``, ``row``, ``cutout_id``, ``similarity`` (cosine) or ``distance`` (l2), then the neighbour's
provenance (survey/source, file, HDU, plane, tile position, RA/Dec). A query by id or position never
returns the query cutout itself. An image query is embedded with the set's own model, and vectors or an
encoder of another model are refused with both fingerprints named.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tessera.errors import TesseraError
from tessera.search.embed import EmbeddingSet
from tessera.search.index import SearchIndex
from tessera.search.source import ID, EmbedSource, open_source

ARCSEC_PER_DEG = 3600.0


def angular_separation_deg(ra1, dec1, ra2, dec2) -> np.ndarray:
    """Great-circle separation in degrees (haversine, stable at small angles); inputs in degrees, broadcast."""
    ra1, dec1, ra2, dec2 = (np.radians(np.asarray(v, dtype=np.float64)) for v in (ra1, dec1, ra2, dec2))
    a = np.sin((dec2 - dec1) / 2) ** 2 + np.cos(dec1) * np.cos(dec2) * np.sin((ra2 - ra1) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(a, 0, 1))))


def parse_where(items: list[str] | None) -> dict[str, str]:
    """``["survey=FIRST", ...]`` -> {"survey": "FIRST"}; TesseraError for an item without ``=``."""
    out = {}
    for item in items or []:
        col, sep, value = item.partition("=")
        if not sep or not col:
            raise TesseraError(f"--where {item!r}: expected COLUMN=VALUE")
        out[col] = value
    return out


def read_query_image(path: str | Path, hdu: int | None = None) -> np.ndarray:
    """An image file normalized as ingest normalizes cutouts (ZScale to [0, 1], DESIGN §3.1): (C, H, W) float32."""
    from tessera.corpus.normalize import zscale_normalize
    from tessera.corpus.readers import read_image

    raw = read_image(path, hdu)
    if raw.ndim == 2:
        raw = raw[None]
    return zscale_normalize(raw).astype(np.float32)


class Index:
    """An embedding set with its search index (:func:`tessera.search.index.build_index`, or exact in memory)."""

    def __init__(self, emb: EmbeddingSet, search_index: SearchIndex):
        self.emb = emb
        self.index = search_index
        self.table = emb.table()
        self._row_of = {cid: i for i, cid in enumerate(self.table[ID].astype(str).tolist())}
        self._encoder = None
        self._source: EmbedSource | None = None

    @classmethod
    def open(cls, path: str | Path, metric: str = "cosine") -> "Index":
        """``path``: an embedding set (or an EMB folder with one); ``metric`` only matters without a saved index."""
        emb = EmbeddingSet.open(path)
        return cls(emb, SearchIndex.load(emb, metric))

    @property
    def fingerprint(self) -> str:
        return self.emb.fingerprint

    def __len__(self) -> int:
        return len(self.table)

    # -- the set's model and source ---------------------------------------------------------------------------
    def encoder(self):
        """The set's own model (``set.json`` ``model``), checked against the set's fingerprint."""
        if self._encoder is None:
            from tessera.models.load import load

            ref = self.emb.info.get("model")
            if not ref:
                raise TesseraError(f"{self.emb.path}: the set records no model reference; pass an encoder")
            encoder = load(ref)
            self.check_fingerprint(encoder.fingerprint, f"model {ref}")
            self._encoder = encoder
        return self._encoder

    def source(self) -> EmbedSource:
        """The store or data spec the set was embedded from (for thumbnails)."""
        if self._source is None:
            src = self.emb.info["source"]
            self._source = open_source(src["kind"], src["ref"], src.get("hdu"))
        return self._source

    def image_of(self, cutout_id: str) -> np.ndarray:
        """(C, H, W) float32 of a cutout of the set, read from its source."""
        position = self.source().position(cutout_id)
        if position is None:
            raise TesseraError(f"cutout {cutout_id!r} is no longer in {self.emb.info['source']['ref']}")
        return self.source().image(position)

    def check_fingerprint(self, fingerprint: str, what: str = "the query") -> None:
        if str(fingerprint) != self.fingerprint:
            raise TesseraError(
                f"{what} was embedded by encoder {fingerprint}, the set {self.emb.path} by {self.fingerprint}: "
                "embeddings of different models are not comparable"
            )

    # -- lookups ------------------------------------------------------------------------------------------------
    def row_of(self, cutout_id: str) -> int:
        row = self._row_of.get(str(cutout_id))
        if row is None:
            example = self.table[ID].iat[0] if len(self.table) else "none"
            raise TesseraError(f"--cutout {cutout_id}: no such cutout in {self.emb.path} (ids look like {example})")
        return row

    def _allowed(self, where: dict[str, str] | None) -> np.ndarray | None:
        if not where:
            return None
        mask = np.ones(len(self.table), dtype=bool)
        for col, value in where.items():
            if col not in self.table.columns:
                known = ", ".join(self.table.columns)
                raise TesseraError(f"--where {col}={value}: no column {col!r} (columns: {known})")
            mask &= self.table[col].astype(str).to_numpy() == value
        return mask

    # -- searching ----------------------------------------------------------------------------------------------
    def search_vectors(self, vectors: np.ndarray, k: int = 20, fingerprint: str | None = None,
                       exclude: list[int] | None = None, where: dict[str, str] | None = None,
                       names: list[str] | None = None) -> pd.DataFrame:
        """vectors (Q, D) -> result table (module docstring). ``exclude[i]``: a row never returned for query i."""
        if fingerprint is not None:
            self.check_fingerprint(fingerprint)
        if k <= 0:
            raise TesseraError(f"--k {k}: must be a positive integer")
        vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        allowed = self._allowed(where)
        names = names if names is not None else [str(i) for i in range(len(vectors))]
        exclude = exclude if exclude is not None else [-1] * len(vectors)
        frames = [self._one_query(v, k, ex, allowed, name) for v, ex, name in zip(vectors, exclude, names)]
        return pd.concat(frames, ignore_index=True)

    def _one_query(self, vector: np.ndarray, k: int, exclude: int, allowed: np.ndarray | None,
                   name: str) -> pd.DataFrame:
        """Ask for more neighbours until k survive the filters (or the whole set has been ranked)."""
        n = len(self.table)
        fetch = min(n, k + (exclude >= 0))
        while True:
            scores, rows = self.index.search(vector[None], fetch)
            scores, rows = scores[0], rows[0]
            keep = (rows >= 0) & (rows != exclude)
            if allowed is not None:
                keep &= allowed[np.where(rows >= 0, rows, 0)]
            if keep.sum() >= k or fetch >= n:
                break
            fetch = min(n, fetch * 4)
        return self._result_frame(name, scores[keep][:k], rows[keep][:k])

    def _result_frame(self, name: str, scores: np.ndarray, rows: np.ndarray) -> pd.DataFrame:
        score_col = "similarity" if self.index.metric == "cosine" else "distance"
        provenance = self.table.iloc[rows].drop(columns=["row", ID, "shard"], errors="ignore").reset_index(drop=True)
        head = pd.DataFrame({"query": name, "rank": np.arange(1, len(rows) + 1), "row": rows.astype(np.int64),
                             ID: self.table[ID].iloc[rows].to_numpy(), score_col: scores.astype(np.float64)})
        return pd.concat([head, provenance], axis=1)

    def query_ids(self, cutout_ids, k: int = 20, where: dict[str, str] | None = None) -> pd.DataFrame:
        rows = [self.row_of(c) for c in cutout_ids]
        vectors = self.emb.rows(np.asarray(rows))
        return self.search_vectors(vectors, k, exclude=rows, where=where, names=[str(c) for c in cutout_ids])

    def query_images(self, images, k: int = 20, encoder=None, where: dict[str, str] | None = None,
                     names: list[str] | None = None) -> pd.DataFrame:
        """images: (B, C, H, W) in [0, 1] (any size), embedded with ``encoder`` (default: the set's model)."""
        import torch

        encoder = encoder if encoder is not None else self.encoder()
        self.check_fingerprint(encoder.fingerprint, "the query image")
        x = torch.as_tensor(np.asarray(images, dtype=np.float32))
        info = self.emb.info
        feats = encoder.embed(x.to(encoder.device), readout=info["readout"], layer=int(info["layer"]))
        return self.search_vectors(feats.float().cpu().numpy(), k, where=where, names=names)

    def query_files(self, paths, k: int = 20, where: dict[str, str] | None = None,
                    hdu: int | None = None) -> pd.DataFrame:
        """Image files (FITS, PNG, NPY...), normalized like ingest, each embedded on its own (sizes may differ)."""
        frames = [self.query_images(read_query_image(p, hdu)[None], k, where=where, names=[str(p)]) for p in paths]
        return pd.concat(frames, ignore_index=True)

    def query(self, images_or_ids, k: int = 20, where: dict[str, str] | None = None) -> pd.DataFrame:
        """Cutout ids (strings) or an image batch (B, C, H, W) in [0, 1]."""
        if isinstance(images_or_ids, str):
            images_or_ids = [images_or_ids]
        if isinstance(images_or_ids, (list, tuple)) and all(isinstance(x, str) for x in images_or_ids):
            return self.query_ids(list(images_or_ids), k, where)
        return self.query_images(images_or_ids, k, where=where)

    # -- sky positions ------------------------------------------------------------------------------------------
    def cone(self, ra: float, dec: float, radius_arcsec: float | None = None) -> pd.DataFrame:
        """Cutouts whose footprint contains (ra, dec) (through their source file's WCS) or whose centre lies within
        ``radius_arcsec``; columns ``row``, ``cutout_id``, ``contains``, ``separation_arcsec``, nearest first."""
        if not (np.isfinite(ra) and np.isfinite(dec)) or not -90 <= dec <= 90:
            raise TesseraError(f"--ra {ra} --dec {dec}: not a sky position (degrees, -90 <= Dec <= 90)")
        if radius_arcsec is not None and radius_arcsec < 0:
            raise TesseraError(f"--radius {radius_arcsec}: must be >= 0 arcsec")
        t = self.table
        if "ra" not in t.columns or "dec" not in t.columns:
            raise TesseraError(f"{self.emb.path}: the set has no RA/Dec columns (no WCS in its source)")
        ra_c, dec_c = t["ra"].to_numpy(np.float64), t["dec"].to_numpy(np.float64)
        has_pos = np.isfinite(ra_c) & np.isfinite(dec_c)
        sep = np.full(len(t), np.inf)
        sep[has_pos] = angular_separation_deg(ra, dec, ra_c[has_pos], dec_c[has_pos]) * ARCSEC_PER_DEG
        contains = footprint_contains(t, ra, dec, has_pos)
        hit = contains | (sep <= radius_arcsec if radius_arcsec is not None else False)
        cone = pd.DataFrame({"row": t["row"].to_numpy()[hit], ID: t[ID].to_numpy()[hit], "contains": contains[hit],
                             "separation_arcsec": sep[hit]})
        return cone.sort_values(["separation_arcsec", "row"], kind="stable").reset_index(drop=True)

    def query_position(self, ra: float, dec: float, k: int = 20, radius_arcsec: float | None = None,
                       where: dict[str, str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Cone search, then a similarity search from the cone's cutout whose centre is nearest; returns
        (neighbours, cone)."""
        if k <= 0:
            raise TesseraError(f"--k {k}: must be a positive integer")
        cone = self.cone(ra, dec, radius_arcsec)
        if cone.empty:
            within = f"or lies within {radius_arcsec} arcsec of it" if radius_arcsec is not None else "(try --radius)"
            raise TesseraError(f"RA {ra} Dec {dec}: outside the footprint of {self.emb.path}: "
                               f"no cutout contains it {within}")
        seed = str(cone[ID].iat[0])
        return self.query_ids([seed], k, where), cone


def _celestial_wcs(path: str, hdu: int):
    """(celestial WCS, (NAXIS1, NAXIS2)) of a FITS HDU, or None when the file or its WCS cannot be read."""
    import warnings

    try:
        from astropy.io import fits
        from astropy.wcs import WCS

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            header = fits.getheader(path, hdu)
            wcs = WCS(header)
        if not wcs.has_celestial:
            return None
        return wcs.celestial, (int(header.get("NAXIS1", 0)), int(header.get("NAXIS2", 0)))
    except Exception:  # noqa: BLE001 - a moved or WCS-less file only means "use the radius"
        return None


def footprint_contains(table: pd.DataFrame, ra: float, dec: float, candidates: np.ndarray) -> np.ndarray:
    """(N,) bool: rows whose tile (x, y, w, h in their file's pixel grid; the whole image when absent) contains the
    position, by the source FITS file's celestial WCS. Files are read once per (path, HDU), headers only."""
    out = np.zeros(len(table), dtype=bool)
    if "path" not in table.columns:
        return out
    hdus = table["hdu"].fillna(0).astype(int) if "hdu" in table.columns else pd.Series(0, index=table.index)
    groups = pd.DataFrame({"path": table["path"].astype(str), "hdu": hdus})[candidates].groupby(["path", "hdu"]).groups
    for (path, hdu), index in groups.items():
        found = _celestial_wcs(path, int(hdu))
        if found is None:
            continue
        wcs, (nx, ny) = found
        px, py = (float(v) for v in wcs.world_to_pixel_values(ra, dec))
        rows = table.loc[index]
        x0 = rows["x"].to_numpy(float) if "x" in rows else np.zeros(len(rows))
        y0 = rows["y"].to_numpy(float) if "y" in rows else np.zeros(len(rows))
        w = rows["w"].to_numpy(float) if "w" in rows else np.full(len(rows), nx)
        h = rows["h"].to_numpy(float) if "h" in rows else np.full(len(rows), ny)
        # pixel centres are integers (0-based): tile [x0, x0 + w) spans x0 - 0.5 .. x0 + w - 0.5
        inside = (px >= x0 - 0.5) & (px < x0 + w - 0.5) & (py >= y0 - 0.5) & (py < y0 + h - 0.5)
        out[np.asarray(table.index.get_indexer(index))[inside]] = True
    return out
