"""Argument helpers shared by the subcommands."""

from __future__ import annotations

import argparse


def add_config_arguments(
    parser: argparse.ArgumentParser, default: str | None = None, example: str = "section.key=value",
    default_help: str | None = None,
) -> None:
    """``--config PRESET_OR_YAML`` and trailing ``key=value`` overrides (dotted paths). ``default_help`` says what
    a missing ``--config`` means when that is not the literal ``default`` (e.g. None resolved later)."""
    parser.add_argument(
        "--config", default=default, metavar="PRESET_OR_YAML",
        help=f"a preset name or a YAML file (default: {default_help or '%(default)s'})",
    )
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help=f"config overrides (dotted paths), e.g. {example}")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


QUIET_HELP = "no progress bars, no third-party progress bars or warnings (transformers, huggingface_hub)"


def add_quiet_argument(parser: argparse.ArgumentParser, help_text: str = QUIET_HELP) -> None:
    """``--quiet`` (every command has one; ``tessera.cli`` acts on it before the command runs)."""
    if not any("--quiet" in action.option_strings for action in parser._actions):
        parser.add_argument("--quiet", action="store_true", help=help_text)


def check_figure_path(path: str) -> None:
    """Refuse, before any work, an output image whose extension matplotlib cannot write (``--out v.txt``)."""
    from pathlib import Path

    from tessera.errors import TesseraError

    suffix = Path(path).suffix.lower().lstrip(".")
    from matplotlib.figure import Figure

    formats = sorted(Figure().canvas.get_supported_filetypes())
    if suffix not in formats:
        raise TesseraError(
            f"--out {path}: not an image format matplotlib can write (use one of .{', .'.join(formats)})"
        )
