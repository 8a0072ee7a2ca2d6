"""What the commands share (:mod:`mfawatch.cli.options`): option helpers, ``--rule`` selection,
list and time arguments, the error summary."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from chalicelib.core.rules import RuleSet
from mfawatch.cli.options import (
    IsoTime,
    exit_on_errors,
    path_option,
    select_rules,
    split_list,
    with_options,
)


def _options(command: click.Command) -> list[str]:
    return [opt for param in command.params for opt in getattr(param, "opts", [])]


def test_options_listed_once_appear_as_if_stacked_in_the_order_written(tmp_path: Path) -> None:
    first = click.option("--first")
    second = click.option("--second")

    @click.command()
    @with_options(first, second)
    @click.option("--third")
    def listed(first: str, second: str, third: str) -> None:
        """Listed."""

    @click.command()
    @first
    @second
    @click.option("--third")
    def stacked(first: str, second: str, third: str) -> None:
        """Stacked."""

    assert _options(listed) == _options(stacked) == ["--first", "--second", "--third"]


def test_a_path_option_takes_a_file_or_a_folder_as_declared(tmp_path: Path) -> None:
    seen: list[Path] = []

    @click.command()
    @path_option("--bundle", default=tmp_path / "missing.json", help_text="A file.")
    @path_option("--folder", default=tmp_path, help_text="A folder.", folder=True, exists=True)
    def command(bundle: Path, folder: Path) -> None:
        seen.extend([bundle, folder])

    runner = CliRunner()
    assert runner.invoke(command, []).exit_code == 0
    assert seen == [tmp_path / "missing.json", tmp_path]  # Path values, defaults as given
    assert "is a directory" in runner.invoke(command, ["--bundle", str(tmp_path)]).output
    (tmp_path / "f.txt").write_text("x")
    assert "is a file" in runner.invoke(command, ["--folder", str(tmp_path / "f.txt")]).output
    assert "does not exist" in runner.invoke(command, ["--folder", str(tmp_path / "no")]).output
    assert "[default:" in runner.invoke(command, ["--help"]).output


def test_errors_end_the_command_with_their_count_and_files(
    capsys: pytest.CaptureFixture[str],
) -> None:
    exit_on_errors([], 3, "rule file(s)")  # nothing to say, no exit
    with pytest.raises(SystemExit) as exited:
        exit_on_errors(["a.yaml", "a.yaml", "b.yaml"], 5, "rule file(s)")
    assert exited.value.code == 1
    assert capsys.readouterr().err == "3 error(s) in 2 of 5 rule file(s)\n"


def test_rule_selection_keeps_the_order_given_once_and_names_unknown_ids(rules: RuleSet) -> None:
    assert select_rules(rules, []) is rules
    first, second = rules.ids[1], rules.ids[0]
    selected = select_rules(rules, [first, second, first])
    assert [rule.id for rule in selected] == [first, second]
    with pytest.raises(click.BadParameter, match=r"no rule 'nope'; known: "):
        select_rules(rules, ["nope", first])


def test_split_list_drops_empty_parts() -> None:
    assert split_list(" a,b, ,c ,") == ["a", "b", "c"]
    assert split_list(None) == []


def test_iso_time_is_utc_and_a_bad_one_is_a_usage_error() -> None:
    iso = IsoTime()
    assert iso.convert("2026-11-02", None, None) == datetime(2026, 11, 2, tzinfo=UTC)
    assert iso.convert("2026-11-02T10:00:00+01:00", None, None) == datetime(
        2026, 11, 2, 9, 0, tzinfo=UTC
    )
    with pytest.raises(click.BadParameter, match="'yesterday' is not an ISO-8601 time"):
        iso.convert("yesterday", None, None)
