"""Every command of ``mfawatch`` answers ``--help``: the whole click tree, walked from the root."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from mfawatch.cli import main


def _command_paths(command: click.Command, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [path]
    if isinstance(command, click.Group):
        for name in sorted(command.commands):
            paths += _command_paths(command.commands[name], (*path, name))
    return paths


PATHS = _command_paths(main)


def test_the_tree_has_every_command_group() -> None:
    top = {path[0] for path in PATHS if path}
    assert {"replay", "rules", "test-pattern", "athena-ddl", "athena-sql", "policy"} <= top
    assert {"check-stage", "deploy-config", "deploy-template", "init", "deploy"} <= top
    assert {"destroy", "selftest", "forwarder-template", "audit"} <= top
    assert ("rules", "test") in PATHS
    assert ("deploy-template", "merge") in PATHS


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "mfawatch")
def test_every_command_prints_its_help(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Usage: ")
    assert "Show this message and exit." in result.output
