"""Issue 17 at the command line: --out never destroys an input, user errors are one line with exit 2, progress
suits a log file, and --quiet works for every command."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest

from tessera.cli import COMMANDS, build_parser, main


@pytest.fixture
def small_store(tmp_path):
    from tessera.corpus.config import IngestConfig
    from tessera.corpus.ingest import run_ingest

    rng = np.random.default_rng(0)
    (tmp_path / "in").mkdir()
    for k in range(2):
        np.save(tmp_path / "in" / f"a{k}.npy", rng.normal(size=(64, 64)).astype(np.float32))
    run_ingest([tmp_path / "in"], tmp_path / "store", IngestConfig(tile=32, min_tile=32), progress=False)
    return tmp_path / "store"


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize("where", ["equal", "inside", "containing"])
def test_pretrain_overwrite_never_deletes_the_corpus(small_store, capsys, where):
    out = {"equal": small_store, "inside": small_store / "run", "containing": small_store.parent}[where]
    code = main(["pretrain", "--corpus", str(small_store), "--out", str(out), "--overwrite", "train.max_steps=1"])
    assert code == 2 and "apart from the inputs" in _one_line_error(capsys)
    assert (small_store / "manifest.parquet").is_file()


@pytest.mark.parametrize("where", ["equal", "inside"])
def test_evaluate_overwrite_never_deletes_the_data(tmp_path, capsys, where):
    from tests.evaluate.doubles import write_synthetic_csv

    csv = write_synthetic_csv(tmp_path / "data", n_per_class=2)
    out = tmp_path / "data" if where == "equal" else tmp_path / "data" / "results"
    for data in (str(tmp_path / "data"), f"frdeep:{tmp_path / 'data'}"):
        code = main(["evaluate", "--model", "random:cpu", "--data", data, "--out", str(out), "--overwrite"])
        assert code == 2 and "apart from the inputs" in _one_line_error(capsys)
    assert csv.is_file() and len(list((tmp_path / "data" / "img").iterdir())) == 6


def test_views_with_a_non_image_out_is_one_line(small_store, tmp_path, capsys):
    assert main(["views", str(small_store), "--out", str(tmp_path / "v.txt")]) == 2
    err = _one_line_error(capsys)
    assert "v.txt" in err and ".png" in err and not (tmp_path / "v.txt").exists()


@pytest.mark.parametrize("device", ["gpu", "cuda"])
def test_unavailable_or_unknown_train_device_is_one_line(small_store, tmp_path, capsys, device):
    import torch

    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    code = main(["pretrain", "--corpus", str(small_store), "--out", str(tmp_path / "run"), f"train.device={device}"])
    assert code == 2 and "train.device" in _one_line_error(capsys)


def test_every_command_accepts_quiet():
    parser = build_parser()
    for name in COMMANDS:
        cmd = parser.command_parsers[name]
        leaves = [cmd]
        for action in cmd._actions:
            if hasattr(action, "choices") and isinstance(action.choices, dict):
                leaves = list(action.choices.values())
        for leaf in leaves:
            assert any("--quiet" in a.option_strings for a in leaf._actions), name


def test_simulate_quiet_prints_nothing(tmp_path, capsys):
    assert main(["simulate", "morphology", "--out", str(tmp_path / "m"), "--per-class", "1", "--size", "48",
                 "--quiet"]) == 0
    assert capsys.readouterr().out == ""


def test_plain_progress_lines_without_carriage_returns():
    from tessera.progress import PlainProgress, progress_bar

    stream = io.StringIO()  # not a terminal: plain lines
    bar = progress_bar(total=30, desc="stage", every=10, stream=stream)
    assert isinstance(bar, PlainProgress)
    with bar:
        for _ in range(30):
            bar.update(1)
            bar.set_postfix(loss=0.5)
    text = stream.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert len(lines) == 3 and lines[-1].startswith("stage: 30/30") and "loss=0.5" in lines[-1]
    # Iteration, and disable=None meaning "terminal only" as in tqdm.
    stream = io.StringIO()
    assert list(progress_bar(range(5), desc="x", every=2, stream=stream)) == list(range(5))
    assert stream.getvalue().splitlines()[-1].startswith("x: 5/5")
    quiet = io.StringIO()
    progress_bar(total=3, disable=None, stream=quiet).update(3)
    assert quiet.getvalue() == ""


def test_plain_progress_also_reports_by_time(monkeypatch):
    import types

    import tessera.progress as P
    from tessera.progress import PlainProgress

    clock = iter([0.0, 1.0, 20.0, 21.0, 22.0])  # construction, then one reading per update
    monkeypatch.setattr(P, "time", types.SimpleNamespace(monotonic=lambda: next(clock)))
    stream = io.StringIO()
    bar = PlainProgress(total=1000, every=500, seconds=10.0, stream=stream)
    bar.update(1)  # t = 1 s: nothing
    bar.update(1)  # t = 20 s: a line although only 2 of 500 steps passed
    assert stream.getvalue().count("\n") == 1


def test_quiet_mode_silences_and_then_restores_third_party_output(capsys):
    from tessera.progress import output_mode, progress_bar

    from huggingface_hub.utils import are_progress_bars_disabled
    from transformers.utils import logging as hf_logging

    before = (hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled(), are_progress_bars_disabled())
    with output_mode(quiet=True):
        assert not hf_logging.is_progress_bar_enabled() and are_progress_bars_disabled()
        assert hf_logging.get_verbosity() == hf_logging.ERROR
        warnings.warn("from a third party", UserWarning, stacklevel=1)  # module of this test: not tessera -> hidden
        bar = progress_bar(total=3, stream=io.StringIO())
        bar.update(3)
        bar.close()
        assert bar.stream.getvalue() == ""
    assert "from a third party" not in capsys.readouterr().err
    assert (hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled(), are_progress_bars_disabled()) == before
