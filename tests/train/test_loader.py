"""The read-ahead loader (train/loader.py) and the device-side pool resampling: the same batches for any number of
workers, kill -9 + resume with workers equals an uninterrupted run, worker errors name the cutout and its file,
spares replace empty samples without host syncs, and a training step makes no .item()/.cpu()/.tolist() call
outside the non-finite guard and logging."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from tessera.corpus.store import CutoutStore
from tessera.errors import ConfigError, TesseraError
from tessera.train import distributed as D
from tessera.train.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
from tessera.train.config import resolve_pretrain_config
from tessera.train.engine import StageSpec, StageTrainer, StepSampler, pretrain
from tessera.train.loader import MicroBatchReads, MicroBatchStream, ResidentImages, spare_count
from tessera.train.logging import MetricsLogger
from tessera.views.config import ViewConfig
from tessera.views.generator import ViewGenerator
from tessera.views.sampling import pool_rows, views_from_pool

MICRO = [
    "model.preset=vit_micro_patch8_32", "model.proj_hidden=32", "model.proj_dim=16",
    "train.batch_size_reconstruction=8", "train.batch_size_contrastive=4", "train.progress=false",
    "train.log_every=1",
]


def reads_of(store, batch=4, spares=2, seed=3):
    sampler = StepSampler(len(store), batch, 1, 0, seed)
    return MicroBatchReads(store, sampler.indices, spares, seed, rank=0, stage=0)


def trainer_for(store_path, tmp_path, *overrides, objective="reconstruction"):
    cfg = resolve_pretrain_config("cpu", MICRO + ["train.max_steps=4", *overrides])
    spec = StageSpec(0, objective, tmp_path / "stage", step_offset=0, max_steps=4)
    info = D.setup_distributed("cpu")
    return StageTrainer(cfg, spec, CutoutStore(store_path), info, MetricsLogger([], enabled=False))


def test_same_batches_for_0_1_and_4_workers_bitwise(blob_store):
    store = CutoutStore(blob_store)
    runs = {}
    for workers in (0, 1, 4):
        stream = MicroBatchStream(reads_of(store), torch.device("cpu"), stop=12, workers=workers, prefetch_factor=2)
        # In order (prefetched), then a jump back (the loader restarts at micro-batch 3, as a resume does).
        got = [stream.get(m) for m in (*range(10), 3, 4)]
        stream.close()
        runs[workers] = got
        assert [g.micro for g in got] == [*range(10), 3, 4]
        assert all(g.images.shape == (6, 1, 64, 64) and g.batch == 4 for g in got)
    for workers in (1, 4):
        for a, b in zip(runs[0], runs[workers]):
            assert torch.equal(a.indices, b.indices) and torch.equal(a.images, b.images)
    # The images are the store's cutouts of the sampler's indices, then the spares.
    first = runs[0][0]
    assert first.indices[:4].tolist() == StepSampler(len(store), 4, 1, 0, 3).indices(0)
    assert torch.equal(first.images[5], torch.from_numpy(store.get_array(int(first.indices[5]))))
    assert torch.equal(runs[0][10].images, runs[0][3].images)


def test_trainer_views_do_not_depend_on_the_worker_count(blob_store, tmp_path):
    views = []
    for workers in (0, 2):
        trainer = trainer_for(blob_store, tmp_path, f"train.loader_workers={workers}")
        views.append([trainer.micro_batch(step, 0) for step in range(3)])
        trainer.data_stream().close()
    assert all(torch.equal(a, b) for a, b in zip(*views))
    assert views[0][0].shape == (8, 1, 1, 32, 32)


def test_resident_store_gives_the_loader_batches(blob_store, tmp_path):
    store = CutoutStore(blob_store)
    loaded = MicroBatchStream(reads_of(store), torch.device("cpu"), stop=4)
    resident = MicroBatchStream(reads_of(store), torch.device("cpu"), stop=4,
                                resident=ResidentImages(store, torch.device("cpu")))
    for m in range(3):
        a, b = loaded.get(m), resident.get(m)
        assert torch.equal(a.indices, b.indices) and torch.equal(a.images, b.images)  # float16 shards: exact
    trainers = [trainer_for(blob_store, tmp_path, f"train.resident_store={flag}") for flag in ("false", "true")]
    assert torch.equal(trainers[0].micro_batch(1, 0), trainers[1].micro_batch(1, 0))


class FailingStore:
    """A store whose cutout 5 cannot be read, with a manifest row naming its source file."""

    def __init__(self, n=12):
        self.n = n

    def __len__(self):
        return self.n

    def get_array(self, i):
        if i == 5:
            raise OSError("truncated shard")
        return np.full((1, 8, 8), i / self.n, np.float32)

    def row(self, i):
        return {"path": f"/data/survey/field_{i:03d}.fits"}


@pytest.mark.parametrize("workers", [0, 2])
def test_an_exception_in_a_worker_names_the_cutout_index_and_source_file(workers):
    reads = MicroBatchReads(FailingStore(), lambda m: [m * 2, m * 2 + 1], spares=0, seed=0, rank=0, stage=0)
    stream = MicroBatchStream(reads, torch.device("cpu"), stop=6, workers=workers)
    assert stream.get(0).indices.tolist() == [0, 1] and stream.get(1).indices.tolist() == [2, 3]
    with pytest.raises(TesseraError) as info:
        stream.get(2)  # cutouts 4 and 5
    message = str(info.value)
    assert "cutout 5" in message and "/data/survey/field_005.fits" in message and "truncated shard" in message
    stream.close()


def test_pool_rows_refills_empty_samples_from_non_empty_spares_in_order():
    ok = torch.tensor([True, False, True, False, False, True, False, True, True])  # 5 samples, 4 spares
    rows, resampled, gave_up = pool_rows(ok, 5)
    # empty slots 1, 3, 4 take the non-empty spares 5, 7, 8 in order; spare 6 is empty and skipped
    assert rows.tolist() == [0, 5, 2, 7, 8] and int(resampled) == 3 and int(gave_up) == 0
    rows, resampled, gave_up = pool_rows(torch.tensor([False, False, True, False, True]), 3)
    assert rows.tolist() == [4, 1, 2] and int(resampled) == 1 and int(gave_up) == 1
    rows, resampled, gave_up = pool_rows(torch.tensor([False, True]), 2)  # no spares: kept as drawn
    assert rows.tolist() == [0, 1] and int(resampled) == 0 and int(gave_up) == 1


@pytest.mark.parametrize("branch", ["reconstruction", "contrastive"])
def test_views_from_pool_replaces_blank_cutouts_by_spares(branch):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:48, :48]
    blob = np.exp(-((yy - 24.0) ** 2 + (xx - 20.0) ** 2) / 60.0).astype(np.float32)[None]
    bright = blob + 0.01 * rng.random((1, 48, 48))
    images = torch.from_numpy(np.stack([bright, np.zeros_like(bright), bright, bright, bright]).astype(np.float32))
    gen = ViewGenerator(ViewConfig(output_size=16), branch)
    views, stats = views_from_pool(gen, images, 3, torch.Generator().manual_seed(0))
    assert views.shape[:2] == (3, gen.num_views) and int(stats["resampled"]) == 1 and int(stats["gave_up"]) == 0
    assert stats["rows"].tolist() == [0, 3, 2]
    full = gen(images, torch.Generator().manual_seed(0))
    assert torch.equal(views, full.views[[0, 3, 2]])  # one generator call: the spare's views as generated
    assert stats["batch"].nonempty.all()


class CallCounter:
    """Counts Tensor.item / .cpu / .tolist calls (the host syncs of a device step) while installed, except those
    made inside torch.optim: CPU AdamW reads its step counters with .item(); on CUDA the engine uses the fused
    AdamW (train/optim.py), which does not."""

    NAMES = ("item", "cpu", "tolist")

    def __init__(self, monkeypatch):
        self.calls: list[str] = []
        for name in self.NAMES:
            original = getattr(torch.Tensor, name)

            def counted(self_tensor, *args, _name=name, _original=original, **kwargs):
                caller = sys._getframe(1).f_code.co_filename
                if f"torch{os.sep}optim{os.sep}" not in caller:
                    self.calls.append(_name)
                return _original(self_tensor, *args, **kwargs)

            monkeypatch.setattr(torch.Tensor, name, counted)


@pytest.mark.parametrize("objective", ["reconstruction", "contrastive"])
def test_a_training_step_makes_no_item_cpu_or_tolist_call(blob_store, tmp_path, monkeypatch, objective):
    """The CPU proxy of torch.cuda.set_sync_debug_mode (issue 15): views, masking and the loss of one step
    (a resident store, so nothing is read) call none of .item()/.cpu()/.tolist(); the non-finite guard and the
    metrics use float() once per scalar, which this does not count."""
    trainer = trainer_for(blob_store, tmp_path, "train.resident_store=true", "views.regime=paper",
                          objective=objective)
    trainer.train_step(0)  # warm-up: caches, lazily built stream
    counter = CallCounter(monkeypatch)
    metrics = trainer.train_step(1)
    assert counter.calls == [], counter.calls
    assert np.isfinite(metrics["loss"])
    # The counter does see such calls (so an empty list above means something).
    torch.zeros(2).tolist()
    assert counter.calls == ["tolist"]


def test_loader_config_keys_are_validated():
    for key, value, message in [
        ("train.loader_workers", "-1", "train.loader_workers"),
        ("train.prefetch_factor", "0", "train.prefetch_factor"),
        ("train.spare_fraction", "1.5", "train.spare_fraction"),
        ("model.attn_implementation", "flash", "model.attn_implementation"),
    ]:
        with pytest.raises(ConfigError, match=message):
            resolve_pretrain_config("cpu", [f"{key}={value}"])
    assert spare_count(64, 0.125) == 8 and spare_count(5, 0.125) == 1 and spare_count(8, 0.0) == 0


RESUME_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from tessera.train.config import resolve_pretrain_config
    from tessera.train.engine import pretrain

    store, out, kill_at, workers = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    overrides = {micro!r} + ["train.branch=reconstruction", "train.max_steps=4", "train.checkpoint_every=2",
                              "train.monitor_every=3", "train.loader_workers=" + workers]

    def monitor(encoder, step):
        if step == kill_at:  # after step 3, whose checkpoint is not due: the last one on disk is step 2
            os.kill(os.getpid(), signal.SIGKILL)
        return {{}}

    resume = os.path.exists(os.path.join(out, "config.yaml"))
    pretrain(resolve_pretrain_config("cpu", overrides), store, out, resume=resume, monitor=monitor)
    """
).format(micro=MICRO)


@pytest.mark.slow
def test_kill_9_and_resume_with_workers_equals_an_uninterrupted_run(blob_store, tmp_path):
    script = tmp_path / "run.py"
    script.write_text(RESUME_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src"), "OMP_NUM_THREADS": "1",
           "HF_HUB_OFFLINE": "1"}

    killed = subprocess.run([sys.executable, str(script), str(blob_store), str(tmp_path / "b"), "3", "2"],
                            env=env, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert [step for step, _ in list_checkpoints(tmp_path / "b" / "checkpoints")] == [2]
    # Resumed here with 2 workers; the uninterrupted run reads in the training process (0 workers).
    overrides = MICRO + ["train.branch=reconstruction", "train.max_steps=4", "train.checkpoint_every=2",
                         "train.monitor_every=3"]
    pretrain(resolve_pretrain_config("cpu", overrides + ["train.loader_workers=2"]), blob_store, tmp_path / "b",
             resume=True)
    pretrain(resolve_pretrain_config("cpu", overrides), blob_store, tmp_path / "a")
    a = load_checkpoint(latest_checkpoint(tmp_path / "a" / "checkpoints"))
    b = load_checkpoint(latest_checkpoint(tmp_path / "b" / "checkpoints"))
    assert a["step"] == b["step"] == 4
    assert a["model"].keys() == b["model"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
