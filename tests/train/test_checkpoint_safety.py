"""Checkpoints are data, never code: weights_only loading, a SHA-256 per file, fallback to the newest valid one."""

from __future__ import annotations

import logging
import random
import zipfile

import numpy as np
import pytest
import torch

from tessera.cli import main
from tessera.errors import TesseraError
from tessera.train.checkpoint import (
    checkpoint_path,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
    set_rng_state,
)


class _Exploit:
    """Unpickling this calls os.system: what a crafted RUN/checkpoints/*.pt would do under weights_only=False."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_crafted_checkpoint_does_not_execute(tmp_path):
    marker = tmp_path / "pwned"
    ckpt = tmp_path / "checkpoints"
    ckpt.mkdir()
    torch.save({"model": {}, "step": 1, "payload": _Exploit(marker)}, checkpoint_path(ckpt, 1))
    with pytest.raises(TesseraError, match="cannot read checkpoint"):
        load_checkpoint(checkpoint_path(ckpt, 1))
    with pytest.raises(TesseraError, match="no valid checkpoint"):
        latest_checkpoint(ckpt)
    assert not marker.exists()


def test_rng_state_round_trips_under_weights_only(tmp_path):
    random.seed(3), np.random.seed(4), torch.manual_seed(5)
    np.random.normal()  # leaves a cached Gaussian in the legacy state
    path = save_checkpoint(tmp_path, 1, {"w": torch.arange(3.0), "cfg": {"a": [1, 2.5, None, "x"]}})
    expected = (random.random(), np.random.normal(), np.random.rand(), torch.rand(1).item())
    state = torch.load(path, weights_only=True)  # the plain, safe loader reads it
    assert isinstance(state["rng"]["numpy"]["key"], list)
    set_rng_state(load_checkpoint(path)["rng"])
    assert (random.random(), np.random.normal(), np.random.rand(), torch.rand(1).item()) == expected


def _flip_inside_tensor(path, needle: bytes) -> None:
    """Flip one bit inside the stored bytes of a tensor (found by its content) so the file stays a valid zip."""
    raw = bytearray(path.read_bytes())
    at = raw.find(needle)
    assert at > 0
    raw[at + 5] ^= 0x10
    path.write_bytes(bytes(raw))


def test_bit_flip_and_random_bytes_fall_back_to_the_newest_valid(tmp_path, caplog):
    from tessera.train.checkpoint import verify_checkpoint

    weights = {i: torch.full((64,), float(i) + 0.123) for i in (1, 2, 3)}
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, step, {"w": weights[step]})
    _flip_inside_tensor(checkpoint_path(tmp_path, 3), weights[3].numpy().tobytes()[:16])
    assert "corrupt" in verify_checkpoint(checkpoint_path(tmp_path, 3))
    with caplog.at_level(logging.WARNING):
        assert latest_checkpoint(tmp_path) == checkpoint_path(tmp_path, 2)
    warning = [r.getMessage() for r in caplog.records]
    assert len(warning) == 1 and "step_00000003.pt" in warning[0] and "step_00000002.pt" in warning[0]
    assert "\n" not in warning[0]
    checkpoint_path(tmp_path, 2).write_bytes(np.random.default_rng(0).bytes(4096))
    assert latest_checkpoint(tmp_path) == checkpoint_path(tmp_path, 1)
    assert torch.equal(load_checkpoint(checkpoint_path(tmp_path, 1))["w"], weights[1])
    with pytest.raises(TesseraError, match="step_00000002.pt: cannot read checkpoint"):
        load_checkpoint(checkpoint_path(tmp_path, 2))


def test_a_checkpoint_without_integrity_record_is_refused(tmp_path):
    torch.save({"w": torch.zeros(2), "step": 1}, checkpoint_path(tmp_path, 1))
    with pytest.raises(TesseraError, match="no integrity record"):
        load_checkpoint(checkpoint_path(tmp_path, 1))
    assert zipfile.is_zipfile(checkpoint_path(tmp_path, 1))


@pytest.mark.slow
def test_resume_with_only_corrupt_checkpoints_is_one_line_exit_2(blob_store, tmp_path, capsys):
    from tests.train.test_engine import MICRO

    overrides = MICRO + ["train.branch=reconstruction", "train.max_steps=2", "train.checkpoint_every=1"]
    run = tmp_path / "run"
    assert main(["pretrain", "--corpus", str(blob_store), "--out", str(run), *overrides]) == 0
    for path in (run / "checkpoints").glob("step_*.pt"):
        path.write_bytes(b"\x00garbage" * 100)
    capsys.readouterr()
    assert main(["pretrain", "--corpus", str(blob_store), "--out", str(run), "--resume", *overrides]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no valid checkpoint" in err


def test_unstorable_state_is_refused_at_save(tmp_path):
    with pytest.raises(TypeError, match="ndarray"):
        save_checkpoint(tmp_path, 1, {"bad": np.zeros(2)})
