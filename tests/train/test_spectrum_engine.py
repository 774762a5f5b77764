"""`tessera pretrain` on a spectrum store (issue 14, seed 003 §3.2): the spectrum-masked objective lowers its masked
loss, resumes exactly, exports a tower `tessera align` and `tessera.load` read; config errors name the key; the
engine keeps (C, L) spectra as they are and refuses a store of the other kind.

No real spectra exist in ../shared/data, so these tests run on synthetic power-law spectra only."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tessera.cli import main
from tessera.corpus.config import IngestConfig
from tessera.corpus.ingest import run_ingest
from tessera.corpus.store import CutoutStore
from tessera.errors import ConfigError, TesseraError
from tessera.train.engine import pretrain
from tessera.train.loader import ResidentImages, read_cutouts
from tessera.train.run import resolve_run_config
from tests.corpus._spectra import smooth_spectra, write_npy_spectra
from tests.train._hooks import StopRequested, stop_at

TINY = ["model.spectrum.dim=32", "model.spectrum.depth=1", "model.spectrum.heads=2",
        "objective.spectrum_masked.width=8", "objective.spectrum_masked.batch_size=16", "train.progress=false",
        "train.log_every=5", "train.lr=2e-3"]


@pytest.fixture(scope="module")
def spectrum_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("spectra")
    write_npy_spectra(root / "in", smooth_spectra(64, 200, seed=0))
    run_ingest([root / "in"], root / "store", IngestConfig(kind="spectrum"), progress=False)
    return root / "store"


def _cfg(out, *extra):
    return resolve_run_config("spectrum", TINY + list(extra), out)


def _losses(run) -> list[float]:
    return [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_pretrain_lowers_the_masked_loss_and_exports_an_align_tower(spectrum_store, tmp_path, capsys):
    from tessera.align.towers import load_backbone
    from tessera.models.load import load
    from tessera.models.spectrum import SpectrumEncoder

    run = tmp_path / "run"
    assert main(["pretrain", "--config", "spectrum", "--corpus", str(spectrum_store), "--out", str(run),
                 "train.max_steps=30", "train.monitor_data=mirabest:/nonexistent", *TINY]) == 0
    assert "train.monitor_data skipped: the k-NN monitor embeds labeled images" in capsys.readouterr().err
    losses = _losses(run)
    assert len(losses) == 6 and losses[-1] < 0.6 * losses[0]
    saved = resolve_run_config(None, [], run, resume=True)
    assert saved.model.spectrum.length == 200 and saved.model.in_channels == 1  # from the store
    tower = load_backbone(str(run))  # what `tessera align --b RUN` builds its tower from
    assert isinstance(tower, SpectrumEncoder) and (tower.length, tower.dim, tower.depth) == (200, 32, 1)
    state = torch.load(sorted((run / "checkpoints").glob("*.pt"))[-1], weights_only=True)["model"]
    weights = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
    assert all(torch.equal(tower.state_dict()[k], v) for k, v in weights.items())
    x = torch.from_numpy(smooth_spectra(3, 200, seed=1))
    loaded = load(str(run))  # tessera.load(RUN): the run's spectrum encoder
    emb = loaded.module(x).readout("mean_patch")
    assert emb.shape == (3, 32) and torch.allclose(emb, tower(x).readout("mean_patch"), atol=1e-6)


def test_interrupted_run_resumed_equals_the_uninterrupted_one(spectrum_store, tmp_path):
    cfg = _cfg(tmp_path / "full", "train.max_steps=6", "train.checkpoint_every=2")
    full = pretrain(cfg, spectrum_store, tmp_path / "full")
    with pytest.raises(StopRequested):
        pretrain(cfg, spectrum_store, tmp_path / "cut", after_step=stop_at(3))
    resumed = pretrain(cfg, spectrum_store, tmp_path / "cut", resume=True)
    from safetensors.torch import load_file

    a, b = load_file(str(full / "model" / "model.safetensors")), load_file(str(resumed / "model" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert _losses(full) == _losses(resumed)


def test_bad_spectrum_config_keys_are_one_line_errors_naming_the_key(spectrum_store, tmp_path):
    with pytest.raises(ConfigError, match=r"model\.spectrum\.heads"):
        _cfg(tmp_path / "a", "model.spectrum.heads=3")
    with pytest.raises(ConfigError, match=r"objective\.spectrum_masked\.segmentz"):
        _cfg(tmp_path / "b", "objective.spectrum_masked.segmentz=2")
    with pytest.raises(ConfigError, match=r"objective\.spectrum_masked\.batch_size"):
        _cfg(tmp_path / "c", "objective.spectrum_masked.batch_size=0")
    # 6 x 40 channels do not fit the store's 200: refused once the store gives the length, before RUN exists.
    cfg = _cfg(tmp_path / "d", "objective.spectrum_masked.width=40")
    with pytest.raises(ConfigError, match=r"objective\.spectrum_masked\.segments") as err:
        pretrain(cfg, spectrum_store, tmp_path / "d")
    assert "\n" not in str(err.value) and not (tmp_path / "d").exists()


def test_store_kind_and_objective_must_match(spectrum_store, blob_store, tmp_path, capsys):
    assert main(["views", str(blob_store), "--objective", "spectrum-masked", "--out", str(tmp_path / "v.png")]) == 2
    assert "--objective spectrum-masked: trains on spectrum data" in capsys.readouterr().err
    with pytest.raises(TesseraError, match=r"an image store, but train\.stages\[0\] \(spectrum-masked\)"):
        pretrain(_cfg(tmp_path / "y"), blob_store, tmp_path / "y")
    image_cfg = resolve_run_config("cpu", ["train.branch=reconstruction"], tmp_path / "x")
    with pytest.raises(TesseraError, match=r"a spectrum store, but train\.stages\[0\] \(reconstruction\)"):
        pretrain(image_cfg, spectrum_store, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_rank1_store_reads_as_c_l_and_resident_float32(spectrum_store):
    store = CutoutStore(spectrum_store)
    batch = read_cutouts(store, np.arange(4))
    assert batch.shape == (4, 1, 200) and batch.dtype == torch.float32
    assert torch.isnan(batch).any()  # missing channels travel as NaN
    resident = ResidentImages(store, torch.device("cpu"))
    got = resident.gather(torch.arange(4))
    assert resident.images.dtype == torch.float32 and torch.equal(torch.isnan(got), torch.isnan(batch))
    assert torch.equal(torch.nan_to_num(got), torch.nan_to_num(batch))
