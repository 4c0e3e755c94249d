"""The README tells the truth: its two commands, and every command it names, exist and have help."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from miner.cli import cli as miner_cli
from snapshotter.cli import cli as snapshotter_cli

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
PROGRAMS: dict[str, click.Group] = {"snapshotter": snapshotter_cli, "miner": miner_cli}


def quick_start_commands() -> list[str]:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def test_quick_start_has_exactly_two_commands_and_ci_runs_the_second() -> None:
    demo, tests = quick_start_commands()
    assert demo.endswith("snapshotter demo")
    assert tests.endswith("pytest")
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert tests in ci, ".ci/run must run the README's test command verbatim"


def _commands(group: click.Group) -> list[tuple[str, click.Command]]:
    return sorted(group.commands.items())


@pytest.mark.parametrize("program", sorted(PROGRAMS))
def test_every_command_has_help_text(program: str) -> None:
    group = PROGRAMS[program]
    assert group.help
    for name, command in _commands(group):
        assert command.help and command.help.strip(), f"{program} {name} has no help"
        result = CliRunner().invoke(group, [name, "--help"])
        assert result.exit_code == 0 and "Usage:" in result.output


def test_commands_named_in_the_readme_exist() -> None:
    named = set(re.findall(r"^(snapshotter|miner) ([a-z-]+)", README, flags=re.M))
    named |= set(re.findall(r"`(snapshotter|miner) ([a-z-]+)", README))
    assert ("snapshotter", "snapshot") in named and ("miner", "run") in named
    for program, command in named:
        assert command in PROGRAMS[program].commands, f"README names {program} {command}"


def test_the_readme_queries_are_the_ones_the_ocaml_test_runs() -> None:
    from tests.test_ocaml import MEDIAN_TIME_TO_REPAIR, MOST_FREQUENT_ERRORS

    assert MOST_FREQUENT_ERRORS in README
    assert MEDIAN_TIME_TO_REPAIR in README
