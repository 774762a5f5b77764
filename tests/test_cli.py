"""The `tessera` command lists every subcommand, in-process and as an installed script."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tessera.cli import COMMANDS, main

SUBCOMMANDS = ("simulate", "ingest", "views", "pretrain", "evaluate", "demo")


def test_help_lists_all_subcommands(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name in SUBCOMMANDS:
        assert name in out
    assert set(SUBCOMMANDS) <= set(COMMANDS)


def test_no_command_prints_help(capsys):
    assert main([]) == 0
    assert "simulate" in capsys.readouterr().out


def test_help_in_a_fresh_process():
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-m", "tessera.cli", "--help"], capture_output=True, text=True,
                            env=env, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    for name in SUBCOMMANDS:
        assert name in result.stdout
