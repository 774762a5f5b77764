import pickle
import tarfile

import h5py
import numpy as np
import pytest

from tessera.errors import TesseraError
from tessera.evaluate.benchmarks import (
    download,
    load_eval_data,
    load_first,
    load_mirabest,
    mirabest_class,
    parse_spec,
)
from tessera.evaluate.datasets import load_labeled

from tests.evaluate.doubles import write_synthetic_csv


def test_csv_paths_relative_extra_columns_and_normalization(tmp_path):
    csv = write_synthetic_csv(tmp_path, n_per_class=3)
    ls = load_labeled(csv)
    assert len(ls) == 9 and ls.classes == ["centre", "corner", "edge"]
    assert ls.meta["survey"].eq("SYN").all()  # extra column kept
    img = ls.images[0].astype(np.float32)
    assert img.shape == (1, 32, 32) and img.min() >= 0 and img.max() <= 1 and img.max() > 0.5  # ZScale to [0, 1]


def test_missing_files_listed_in_error(tmp_path):
    csv = write_synthetic_csv(tmp_path, n_per_class=2)
    csv.write_text(csv.read_text() + "img/nope_a.npy,edge,SYN\nimg/nope_b.npy,edge,SYN\n")
    with pytest.raises(TesseraError, match=r"2 listed file\(s\) do not exist: img/nope_a.npy, img/nope_b.npy"):
        load_labeled(csv)


def test_blank_and_unreadable_images_excluded_and_listed(tmp_path):
    csv = write_synthetic_csv(tmp_path, n_per_class=3)
    np.save(tmp_path / "img/blank.npy", np.zeros((32, 32), np.float32))
    np.save(tmp_path / "img/nan.npy", np.full((32, 32), np.nan, np.float32))
    (tmp_path / "img/broken.fits").write_bytes(b"not a fits file")
    csv.write_text(csv.read_text() + "img/blank.npy,edge,SYN\nimg/nan.npy,edge,SYN\nimg/broken.fits,edge,SYN\n")
    ls = load_labeled(csv)
    assert len(ls) == 9
    excluded = {e["path"]: e["reason"] for e in ls.excluded}
    assert set(excluded) == {"img/blank.npy", "img/nan.npy", "img/broken.fits"}
    assert excluded["img/blank.npy"].startswith("blank") and "unreadable" in excluded["img/broken.fits"]


def test_class_folders(tmp_path):
    for name in ("A", "B"):
        (tmp_path / name).mkdir()
        for i in range(3):
            np.save(tmp_path / name / f"{i}.npy", np.random.default_rng(i).random((16, 16)).astype(np.float32))
    ls = load_labeled(tmp_path)
    assert ls.classes == ["A", "B"] and np.bincount(ls.labels).tolist() == [3, 3]


def _write_mirabest(root, codes_per_batch):
    batches = root / "batches"
    batches.mkdir(parents=True)
    rng = np.random.default_rng(0)
    index_of = {c: i for i, c in enumerate((100, 102, 104, 110, 112, 200, 201, 210, 300, 310))}
    for name, codes in codes_per_batch.items():
        data = (rng.random((len(codes), 150 * 150)) * 255).astype(np.uint8)
        with open(batches / name, "wb") as f:
            pickle.dump({"data": data, "labels": [index_of[c] for c in codes],
                         "filenames": [f"{name}_{i}" for i in range(len(codes))]}, f)
    with open(batches / "batches.meta", "wb") as f:
        pickle.dump({"label_names": ["100", "102", "104", "110", "112", "200", "201", "210", "300", "310"]}, f)


def test_mirabest_selection_rules(tmp_path):
    assert [mirabest_class(c) for c in (100, 102, 104, 110, 112, 200, 201, 210, 300, 310)] == [
        "FRI", "FRI", "FRI", None, None, "FRII", "FRII", None, None, None]
    _write_mirabest(tmp_path / "mb", {"data_batch_1": [100, 110, 200, 300, 104], "data_batch_2": [201, 210, 310, 102],
                                      "test_batch": [200, 112, 100]})
    ls = load_mirabest(tmp_path / "mb")
    assert ls.classes == ["FRI", "FRII"]
    assert sorted(ls.meta["code"].tolist()) == [100, 100, 102, 104, 200, 200, 201]  # confident FR only, no hybrids
    assert ls.images[0].shape == (1, 150, 150)
    # the packed archive works too (CIFAR-style tar.gz as published)
    archive = tmp_path / "MiraBest_full_batches.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "mb" / "batches", arcname="batches")
    data = load_eval_data(f"mirabest:{archive}")
    assert len(data.train) == 7


def test_first_hdf5_layout(tmp_path):
    path = tmp_path / "galaxy_data_h5.h5"
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        for i, label in enumerate([0, 1, 2, 3, 1]):
            g = f.create_group(f"data_{i}")
            img = g.create_dataset("Img", data=(rng.random((300, 300)) * 255).astype(np.uint8))
            img.attrs["Source"], img.attrs["RA"], img.attrs["DEC"] = "Gendre", 10.0 + i, 20.0
            g.create_dataset("Label_literature", data=label)
            g.create_dataset("Split_literature", data="train")
    ls = load_first(path)
    assert ls.classes == ["FRI", "FRII", "Compact", "Bent"]
    assert ls.labels.tolist() == [0, 1, 2, 3, 1] and ls.meta["catalogue"].eq("Gendre").all()


def test_spec_parsing_and_offline_download_error(tmp_path):
    assert parse_spec("frdeep-cross:/x/y") == ("frdeep-cross", "/x/y")
    assert parse_spec("/data/labels.csv") == (None, "/data/labels.csv")
    with pytest.raises(TesseraError, match="cannot download http://127.0.0.1:9/"):
        download("http://127.0.0.1:9/MiraBest_full_batches.tar.gz", tmp_path / "x.tar.gz")
    assert not list(tmp_path.iterdir())  # no partial file left


@pytest.mark.realdata
def test_real_first_and_frdeep_cross_loading(shared_data):
    first = load_eval_data(f"first:{shared_data / 'first_radio_galaxies'}", max_per_class=5)
    assert first.train.classes == ["Bent", "Compact", "FRI", "FRII"] and len(first.train) == 20
    assert first.train.images[0].shape == (1, 300, 300)
    cross = load_eval_data(f"frdeep-cross:{shared_data / 'frdeep_fits'}", max_per_class=6)
    assert len(cross.train) == len(cross.test) == 12
    assert list(cross.train.meta["object"]) == list(cross.test.meta["object"])
    assert set(cross.train.meta["survey"]) == {"FIRST"} and set(cross.test.meta["survey"]) == {"NVSS"}
    assert np.array_equal(cross.train.labels, cross.test.labels)


def test_center_crop_keeps_the_centre_and_changes_the_cache_key():
    """center_crop cuts every image to its central N x N (smaller sides kept whole) and keys the feature cache."""
    import numpy as np
    import pandas as pd

    from tessera.evaluate.config import EvalConfig
    from tessera.evaluate.datasets import EvalData, LabeledSet
    from tessera.errors import ConfigError

    big = np.zeros((1, 10, 10), np.float16)
    big[0, 4:6, 4:6] = 1.0  # a centred 2 x 2 source
    small = np.ones((1, 3, 12), np.float16)
    ls = LabeledSet([big, small], np.array([0, 1]), ["a", "b"], ["x", "y"], pd.DataFrame(), [], "k0")
    out = EvalData("d", ls).center_cropped(4)
    assert out.train.images[0].shape == (1, 4, 4) and out.train.images[0][0, 1:3, 1:3].min() == 1.0
    assert out.train.images[0].sum() == big.sum()  # nothing of the source is lost
    assert out.train.images[1].shape == (1, 3, 4)
    assert out.train.data_key != ls.data_key and out.options["center_crop"] == 4
    assert ls.images[0].shape == (1, 10, 10)  # the input set is untouched
    with pytest.raises(ConfigError, match="center_crop"):
        EvalConfig(center_crop=2).validate()
