"""Named benchmarks with their published selection rules, read from a local copy.

Spec strings (``--data``): ``first:PATH`` (Griese et al. FIRST radio galaxies: the HDF5 file, or the
class-folder PNG copy with ``labels.csv``), ``frdeep:PATH`` (FR-DEEP FIRST FITS), ``frdeep-cross:PATH``
(train on FIRST, test on NVSS images of held-out objects), ``frdeep-pairs:PATH`` (the same pairs for
retrieval, cut to their common sky field; ``evaluate/pairs.py``), ``mirabest:PATH`` (CIFAR-style batches, FR I vs
FR II, confident only, hybrids excluded; seed 000 §4.2), or a plain CSV/folder path.
RGZ DR1 (seed 000 §4.4) and LoTSS DR2 (§4.3) need catalogue queries and cutout downloads: not built yet.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from tessera.errors import ConfigError, TesseraError
from tessera.evaluate.datasets import (
    EvalData,
    Record,
    build_labeled_set,
    load_labeled,
    records_from_csv,
    subset_records,
)
from tessera.io import files_signature, temp_path

BENCHMARKS = ("first", "frdeep", "frdeep-cross", "frdeep-pairs", "mirabest")

# Published archives (the URLs used by the datasets' own loaders).
MIRABEST_URL = "http://www.jb.man.ac.uk/research/MiraBest/full_dataset/MiraBest_full_batches.tar.gz"
FIRST_GRIESE_URL = "https://zenodo.org/record/7689127/files/galaxy_data_h5.zip?download=1"

# MiraBest label index -> three-digit code (Porter & Scaife 2023): first digit 1 FRI, 2 FRII, 3 hybrid;
# second digit 0 confident, 1 uncertain; third digit the subtype.
MIRABEST_CODES = (100, 102, 104, 110, 112, 200, 201, 210, 300, 310)
# Griese et al. (2023) FIRST dataset label encoding.
FIRST_GRIESE_CLASSES = {0: "FRI", 1: "FRII", 2: "Compact", 3: "Bent"}


def parse_spec(spec: str) -> tuple[str | None, str]:
    """``name:PATH`` -> (name, PATH) for a known benchmark name, else (None, spec)."""
    name, sep, rest = spec.partition(":")
    if sep and name.lower() in BENCHMARKS:
        return name.lower(), rest
    return None, spec


def load_eval_data(spec: str, hdu: int | None = None, max_per_class: int | None = None, seed: int = 0,
                   common_field: bool = True, max_nan_fraction: float | None = None,
                   stretch: str = "zscale") -> EvalData:
    """The labeled data named by ``spec`` (see module docstring); ``common_field`` applies to frdeep-pairs.

    ``max_nan_fraction`` (ingest's rule, issue 17): images with more than that fraction of blanked pixels are
    excluded (None: kept, ZScale on the finite pixels, blanks 0). Not for paired or archive benchmarks: a threshold
    there could drop one image of a pair."""
    name, path = parse_spec(spec)
    if stretch != "zscale":  # ``stretch`` (issue 16): CSV/folder sets only; the benchmarks keep the seed's ZScale
        if name is not None:
            raise ConfigError(f"config key 'stretch': {stretch!r} applies to CSV/folder data, not {name}:")
        return EvalData(spec, load_labeled(path, hdu=hdu, max_per_class=max_per_class, seed=seed,
                                           max_nan_fraction=max_nan_fraction, stretch=stretch))
    if max_nan_fraction is not None and name not in (None, "frdeep"):
        raise ConfigError(f"config key 'max_nan_fraction': applies to CSV/folder data and frdeep:, not {name}:")
    if max_nan_fraction is not None:
        if name == "frdeep":
            return EvalData(spec, load_frdeep(path, survey="FIRST", hdu=hdu, max_per_class=max_per_class, seed=seed,
                                              max_nan_fraction=max_nan_fraction))
        return EvalData(spec, load_labeled(path, hdu=hdu, max_per_class=max_per_class, seed=seed,
                                           max_nan_fraction=max_nan_fraction))
    if name == "frdeep-pairs":
        from tessera.evaluate.pairs import load_frdeep_pairs

        return load_frdeep_pairs(path, hdu=hdu, max_per_class=max_per_class, seed=seed, name=spec,
                                 common_field=common_field)
    if name is None:
        return EvalData(spec, load_labeled(path, hdu=hdu, max_per_class=max_per_class, seed=seed))
    if name == "mirabest":
        return EvalData(spec, load_mirabest(path, max_per_class=max_per_class, seed=seed))
    if name == "first":
        return EvalData(spec, load_first(path, max_per_class=max_per_class, seed=seed))
    if name == "frdeep":
        return EvalData(spec, load_frdeep(path, survey="FIRST", hdu=hdu, max_per_class=max_per_class, seed=seed))
    return load_frdeep_cross(path, hdu=hdu, max_per_class=max_per_class, seed=seed, name=spec)


# ---------------------------------------------------------------- downloads


def download(url: str, dest: str | Path) -> Path:
    """Fetch ``url`` to ``dest`` (atomic rename); offline or HTTP failure -> TesseraError naming the URL."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as out:
            while chunk := response.read(1 << 20):
                out.write(chunk)
    except (urllib.error.URLError, OSError) as exc:
        tmp.unlink(missing_ok=True)
        reason = getattr(exc, "reason", exc)
        raise TesseraError(f"cannot download {url} ({reason}); fetch it by hand and pass the local copy") from None
    tmp.replace(dest)
    return dest


def download_mirabest(root: str | Path, url: str = MIRABEST_URL) -> Path:
    """Download and unpack the MiraBest batches under ``root``; returns the ``batches`` folder."""
    root = Path(root)
    archive = download(url, root / "MiraBest_full_batches.tar.gz")
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(root, filter="data")
    return _mirabest_batches_dir(root)


def download_first(root: str | Path, url: str = FIRST_GRIESE_URL) -> Path:
    """Download and unpack the Griese et al. HDF5 (``galaxy_data_h5.h5``) under ``root``."""
    root = Path(root)
    archive = download(url, root / "galaxy_data_h5.zip")
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(root)
    found = sorted(root.rglob("*.h5"))
    if not found:
        raise TesseraError(f"{archive}: no .h5 file inside")
    return found[0]


# ---------------------------------------------------------------- MiraBest

# The only globals a MiraBest batch needs: NumPy arrays (and their dtypes/scalars) and the codec that
# protocol-2 pickles use for bytes. Anything else (os.system, builtins.eval, ...) in a crafted archive is
# refused instead of run: the format is pickled, so it is read with a restricted unpickler
# (https://docs.python.org/3/library/pickle.html#restricting-globals).
_MIRABEST_GLOBALS = frozenset(
    {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),
        ("collections", "OrderedDict"),
    }
)


class _BatchUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`_MIRABEST_GLOBALS`; any other global is an error."""

    def find_class(self, module: str, name: str):
        if (module, name) in _MIRABEST_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a MiraBest batch")


def load_batch(path: str | Path):
    """One pickled MiraBest/CIFAR-style batch, read with the restricted unpickler; a refused or broken
    pickle is a TesseraError naming the file."""
    try:
        with open(path, "rb") as f:
            return _BatchUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, OSError, EOFError, ValueError, TypeError, AttributeError, ImportError, IndexError,
            KeyError) as exc:
        raise TesseraError(f"{path}: not a MiraBest batch ({type(exc).__name__}: {exc})") from None


def cache_root() -> Path:
    """Where archives are extracted: ``$TESSERA_CACHE`` or ``$XDG_CACHE_HOME/tessera`` (default ``~/.cache/tessera``).

    Never next to the archive: the data may sit on a read-only disk, and ``--out`` is the user's results only."""
    env = os.environ.get("TESSERA_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "tessera"


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


_COMPLETE = ".complete"


def extract_archive_cached(archive: str | Path, cache: str | Path | None = None) -> Path:
    """Extract a .tar.gz into ``CACHE/extracted/<sha256 of the archive>/`` once; returns that folder.

    The extraction goes to a temporary sibling and is renamed after a ``.complete`` marker is written, so a
    killed extraction is redone (a folder without the marker is removed) and a changed archive gets a new key.
    """
    archive = Path(archive)
    root = Path(cache) if cache is not None else cache_root()
    target = root / "extracted" / file_sha256(archive)
    if (target / _COMPLETE).is_file():
        return target
    if target.exists():
        shutil.rmtree(target)  # a partial extraction from an interrupted run
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(target)  # a directory: extracted whole under the temp name, then renamed
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(tmp, filter="data")
        (tmp / _COMPLETE).write_text(str(archive.resolve()))
        os.replace(tmp, target)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise TesseraError(f"{archive}: cannot extract ({type(exc).__name__}: {exc})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target



def _mirabest_batches_dir(path: Path) -> Path:
    for candidate in (path, path / "batches"):
        if candidate.is_dir() and any(candidate.glob("data_batch_*")):
            return candidate
    raise TesseraError(f"{path}: no MiraBest batches (expected batches/data_batch_* and test_batch)")


def _mirabest_codes(batches: Path) -> tuple[int, ...]:
    """Label index -> three-digit code: from ``batches.meta`` label_names when they are codes, else the published
    table."""
    meta = batches / "batches.meta"
    if meta.is_file():
        names = load_batch(meta).get("label_names")
        try:
            codes = tuple(int(str(n).strip()) for n in names)
            if all(100 <= c <= 399 for c in codes):
                return codes
        except (TypeError, ValueError):
            pass  # descriptive names: fall back to the published index order below
    return MIRABEST_CODES


def mirabest_class(code: int) -> str | None:
    """FRI/FRII for confident FR codes, None for uncertain or hybrid (seed 000 §4.2)."""
    family, confidence = code // 100, (code // 10) % 10
    if confidence != 0 or family not in (1, 2):
        return None
    return "FRI" if family == 1 else "FRII"


def load_mirabest(path: str | Path, max_per_class: int | None = None, seed: int = 0, cache: str | Path | None = None):
    """MiraBest (all batches pooled for K-fold CV): confident FR I vs FR II, hybrids and uncertain excluded.

    ``path`` is the batches folder or the .tar.gz archive (extracted once into the hash-keyed ``cache``)."""
    path = Path(path)
    if path.is_file() and path.name.endswith((".tar.gz", ".tgz")):
        path = extract_archive_cached(path, cache)
    batches = _mirabest_batches_dir(path)
    codes = _mirabest_codes(batches)
    files = sorted(batches.glob("data_batch_*")) + sorted(batches.glob("test_batch*"))
    records = []
    for file in files:
        entry = load_batch(file)
        if not isinstance(entry, dict) or "data" not in entry or "labels" not in entry:
            raise TesseraError(f"{file}: not a MiraBest batch (expected a dict with data and labels)")
        data = np.asarray(entry["data"])
        side = int(round(np.sqrt(data.shape[1]))) if data.ndim == 2 else data.shape[-1]
        images = data.reshape(len(data), side, side)  # published batches: (N, 150*150) uint8, one channel
        names = entry.get("filenames", [None] * len(images))
        for i, (image, label) in enumerate(zip(images, entry["labels"])):
            cls = mirabest_class(codes[int(label)])
            if cls is None:
                continue
            records.append(
                Record(source=f"{file.name}#{i}", label=cls, array=image, extra={"code": codes[int(label)],
                    "name": names[i]})
            )
    records = subset_records(records, max_per_class, seed)
    return build_labeled_set(records, classes=["FRI", "FRII"], extra_key=files_signature(files))


_signature = files_signature  # the old private name, still imported by evaluate/pairs.py


# ---------------------------------------------------------------- FIRST (Griese et al.)


def load_first(path: str | Path, max_per_class: int | None = None, seed: int = 0):
    """Griese et al. FIRST radio galaxies (FRI/FRII/Compact/Bent): the HDF5 file (all splits pooled) or the
    class-folder PNG copy with ``labels.csv``."""
    path = Path(path)
    if path.is_dir() and not (path / "labels.csv").is_file():
        h5s = sorted(path.glob("*.h5"))
        if h5s:
            path = h5s[0]
    if path.suffix in (".h5", ".hdf5"):
        records = _first_h5_records(path)
        return build_labeled_set(
            subset_records(records, max_per_class, seed), classes=list(FIRST_GRIESE_CLASSES.values()),
            extra_key=files_signature([path])
        )
    return load_labeled(path, max_per_class=max_per_class, seed=seed)


def _first_h5_records(path: Path) -> list[Record]:
    """One record per HDF5 group with ``Img`` and ``Label_literature`` (attrs Source, RA, DEC; a split name)."""
    import h5py

    records = []
    with h5py.File(path, "r") as f:
        for key in f.keys():
            group = f[key]
            if "Img" not in group or "Label_literature" not in group:
                raise TesseraError(f"{path}: group '{key}' lacks Img/Label_literature (not the Griese et al. layout)")
            img = group["Img"]
            label = int(np.asarray(group["Label_literature"]))
            if label not in FIRST_GRIESE_CLASSES:
                raise TesseraError(f"{path}: group '{key}' has unknown label {label}")
            attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in img.attrs.items()}
            split = group["Split_literature"].asstr()[()] if "Split_literature" in group else ""
            extra = {"catalogue": attrs.get("Source"), "ra_deg": attrs.get("RA"), "dec_deg": attrs.get("DEC"),
                     "split": split}
            records.append(Record(source=f"{path.name}#{key}", label=FIRST_GRIESE_CLASSES[label],
                                  array=np.asarray(img), extra=extra))
    return records


# ---------------------------------------------------------------- FR-DEEP


def _frdeep_csv(path: str | Path) -> Path:
    path = Path(path)
    csv = path / "labels.csv" if path.is_dir() else path
    if not csv.is_file():
        raise TesseraError(
            f"{path}: FR-DEEP needs a local copy with labels.csv (path,label,survey,object); there is no download of "
            "the FITS set"
        )
    return csv


def load_frdeep(path, survey: str = "FIRST", hdu=None, max_per_class=None, seed=0, max_nan_fraction=None):
    """FR-DEEP FRI/FRII, the images of one survey."""
    records = [r for r in records_from_csv(_frdeep_csv(path)) if str(r.extra.get("survey")) == survey]
    if not records:
        raise TesseraError(f"{path}: no rows with survey == {survey!r}")
    return build_labeled_set(subset_records(records, max_per_class, seed), hdu=hdu, max_nan_fraction=max_nan_fraction)


def load_frdeep_cross(path, hdu=None, max_per_class=None, seed=0, name="frdeep-cross") -> EvalData:
    """Paired FIRST/NVSS images per object: train on FIRST, test on NVSS (folds over objects by the protocol).

    An object whose FIRST or NVSS image is unusable is dropped from both sides (and listed)."""
    records = records_from_csv(_frdeep_csv(path))
    table = pd.DataFrame({"i": range(len(records)), "object": [r.extra.get("object") for r in records],
                          "survey": [r.extra.get("survey") for r in records]})
    first = {o: i for o, i in zip(table.object[table.survey == "FIRST"], table.i[table.survey == "FIRST"])}
    nvss = {o: i for o, i in zip(table.object[table.survey == "NVSS"], table.i[table.survey == "NVSS"])}
    objects = [o for o in first if o in nvss]
    if not objects:
        raise TesseraError(f"{path}: no object has both a FIRST and an NVSS image")
    pairs = subset_records([records[first[o]] for o in objects], max_per_class, seed)
    keep = {r.extra.get("object") for r in pairs}
    objects = [o for o in objects if o in keep]
    train = build_labeled_set([records[first[o]] for o in objects], hdu=hdu)
    test = build_labeled_set([records[nvss[o]] for o in objects], hdu=hdu, classes=train.classes)
    both = set(train.meta["object"]) & set(test.meta["object"])
    return EvalData(name, _select_objects(train, both), _select_objects(test, both),
                    test_description="NVSS images of the same objects (paired with the FIRST training images)",
                    survey_names=("FIRST", "NVSS"))


def _select_objects(ls, objects: set):
    """Keep the samples whose ``object`` is in ``objects`` (order kept); the others are listed as excluded."""
    keep = [i for i, o in enumerate(ls.meta["object"]) if o in objects]
    dropped = [{"path": ls.sources[i], "reason": "its paired image in the other survey was excluded"}
               for i in range(len(ls)) if i not in set(keep)]
    ls.images = [ls.images[i] for i in keep]
    ls.labels = ls.labels[keep]
    ls.sources = [ls.sources[i] for i in keep]
    ls.meta = ls.meta.iloc[keep].reset_index(drop=True)
    ls.excluded = ls.excluded + dropped
    return ls
