"""The README cannot drift from the code: every `tessera ...` command it shows must parse with today's CLI."""

from __future__ import annotations

import re
import shlex

import pytest

from tessera.cli import COMMANDS, build_parser, parse_arguments
from tests.conftest import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()


def readme_commands() -> list[str]:
    """Lines of the README's code blocks that run tessera (line continuations joined, prompts stripped)."""
    blocks = re.findall(r"```(?:bash|sh|console)?\n(.*?)```", README, flags=re.S)
    commands = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip().removeprefix("$ ")
            for part in re.split(r"&&|;", line):
                part = part.strip()
                match = re.match(r"^(?:\S*/)?(?:\.venv/bin/)?tessera\s+(.*)$", part)
                if match:
                    commands.append(match.group(1))
    return commands


COMMAND_LINES = readme_commands()


def test_readme_shows_every_subcommand():
    shown = {shlex.split(c)[0] for c in COMMAND_LINES}
    assert set(COMMANDS) <= shown, f"README has no example for: {sorted(set(COMMANDS) - shown)}"


@pytest.mark.parametrize("command", COMMAND_LINES)
def test_readme_command_parses(command):
    argv = shlex.split(command, comments=True)
    args = parse_arguments(build_parser(), argv)
    assert args.command == argv[0]
