"""`tessera simulate`: help, outputs, precedence of config sources, refused and invalid inputs (exit 2, one line)."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml
from astropy.io import fits

from tessera.cli import main
from tessera.config import load_saved_config
from tessera.simulate import SimulateRadioConfig


def _exit_code(argv, capsys):
    """Run the CLI in-process; return (exit code, stdout, stderr) whether it returns or raises SystemExit."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_help(capsys):
    code, out, _ = _exit_code(["simulate", "--help"], capsys)
    assert code == 0 and "radio" in out and "morphology" in out
    code, out, _ = _exit_code(["simulate", "radio", "--help"], capsys)
    assert code == 0
    for flag in ("--out", "--mosaics", "--size", "--seed", "--overwrite", "--config", "key=value", "precedence"):
        assert flag in out
    code, out, _ = _exit_code(["simulate", "morphology", "--help"], capsys)
    assert code == 0 and "--per-class" in out


def test_radio_writes_mosaics_catalogue_and_config(tmp_path, capsys):
    out = tmp_path / "sky"
    code, _, err = _exit_code(["simulate", "radio", "--out", str(out), "--mosaics", "2", "--size", "96",
                               "--seed", "3", "cube_axis_prob=0"], capsys)  # fmt: skip
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["catalogue.csv", "config.yaml", "mosaic_000.fits",
                                                     "mosaic_001.fits"]
    assert fits.getdata(out / "mosaic_000.fits").shape == (96, 96)
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["mosaics"] == 2 and cfg["size"] == 96 and cfg["seed"] == 3 and cfg["cube_axis_prob"] == 0
    # The saved config reproduces the run.
    saved = load_saved_config(SimulateRadioConfig, out)
    assert saved == SimulateRadioConfig(mosaics=2, size=96, seed=3, cube_axis_prob=0.0)
    assert {"ra_deg", "flux_jy", "peak_jy_beam", "class", "mosaic"} <= set(pd.read_csv(out / "catalogue.csv").columns)


def test_precedence_file_then_flags_then_overrides(tmp_path, capsys):
    config = tmp_path / "sim.yaml"
    config.write_text(yaml.safe_dump({"simulate_radio": {"size": 64, "seed": 1, "noise_rms_jy": 1e-4},
                                      "simulate_morphology": {"per_class": 1}}))  # fmt: skip
    out = tmp_path / "o"
    code, _, err = _exit_code(["simulate", "radio", "--out", str(out), "--config", str(config), "--seed", "7",
                               "seed=9", "cube_axis_prob=0"], capsys)  # fmt: skip
    assert code == 0, err
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["size"] == 64 and cfg["noise_rms_jy"] == 1e-4  # from the file
    assert cfg["seed"] == 9  # override beats flag beats file


def test_morphology_cli(tmp_path, capsys):
    out = tmp_path / "m"
    code, _, err = _exit_code(["simulate", "morphology", "--out", str(out), "--per-class", "2", "--size", "48"], capsys)
    assert code == 0, err
    labels = pd.read_csv(out / "labels.csv")
    assert len(labels) == 8 and labels["label"].value_counts().min() == 2


def test_non_empty_out_refused_then_overwrite(tmp_path, capsys):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    code, _, err = _exit_code(["simulate", "radio", "--out", str(out), "--size", "64"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--overwrite" in err and str(out) in err
    assert (out / "keep.txt").exists()
    code, _, err = _exit_code(["simulate", "radio", "--out", str(out), "--size", "64", "--overwrite"], capsys)
    assert code == 0, err
    assert not (out / "keep.txt").exists() and (out / "mosaic_000.fits").exists()


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["radio", "--size", "10"], "minimum is 40"),
        (["radio", "--size", "abc"], "--size"),
        (["radio", "--mosaics", "0"], "--mosaics"),
        (["radio", "--mosaics", "-3"], "--mosaics"),
        (["morphology", "--per-class", "0"], "--per-class"),
        (["morphology", "--size", "8"], "minimum"),
        (["radio", "no_such_key=1"], "no_such_key"),
    ],
)
def test_invalid_inputs_exit_2_with_one_line(tmp_path, capsys, argv, needle):
    out = tmp_path / "never"
    code, _, err = _exit_code(["simulate", argv[0], "--out", str(out), *argv[1:]], capsys)
    assert code == 2
    error_lines = [line for line in err.splitlines() if "error" in line]
    assert len(error_lines) == 1 and needle in error_lines[0]
    assert not out.exists()  # nothing is created for a rejected command
