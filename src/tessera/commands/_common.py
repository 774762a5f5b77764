"""Argument helpers shared by the subcommands."""

from __future__ import annotations

import argparse


def add_config_arguments(
    parser: argparse.ArgumentParser, default: str | None = None, example: str = "section.key=value"
) -> None:
    """``--config PRESET_OR_YAML`` and trailing ``key=value`` overrides (dotted paths)."""
    parser.add_argument(
        "--config", default=default, metavar="PRESET_OR_YAML", help="a preset name or a YAML file (default: %(default)s)"
    )
    parser.add_argument("overrides", nargs="*", metavar="key=value", help=f"config overrides (dotted paths), e.g. {example}")


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
