"""The ``mfawatch`` command never lets a mistake pass quietly: exit codes and the messages that
name the input and the fix (issue 17)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from mfawatch.cli import main
from mfawatch.paths import RULES_DIR
from mfawatch.rules.build import RuleCase
from tests.conftest import load_event
from tests.support.rules import shipped_rule_files

MFA_FAILURE = load_event("iam-consolelogin-failure-mfa-yes")


def replay(*args: str, stdin: str | bytes | None = None) -> click.testing.Result:
    return CliRunner().invoke(main, ["replay", "--jobs", "1", "--output", "jsonl", *args], stdin)


def test_replay_of_a_missing_path_exits_2_naming_it(tmp_path: Path) -> None:
    (tmp_path / "ok.json").write_text(json.dumps(MFA_FAILURE))
    result = replay(str(tmp_path / "ok.json"), "/no/such/folder")
    assert result.exit_code == 2
    assert "/no/such/folder: no such file or folder" in result.stderr
    assert "- to read stdin" in result.stderr
    assert result.stdout == ""  # nothing replayed when an input is wrong


def test_replay_of_a_folder_with_nothing_readable_exits_1(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a log")
    (tmp_path / "broken.json").write_text("{")
    result = replay(str(tmp_path))
    assert result.exit_code == 1
    assert f"error: nothing readable in {tmp_path}: 1 file(s), 1 unreadable" in result.stderr


def test_replay_counts_a_bad_file_by_default_and_strict_fails_on_it(tmp_path: Path) -> None:
    (tmp_path / "ok.json").write_text(json.dumps(MFA_FAILURE))
    (tmp_path / "bad.json.gz").write_bytes(b"garbage")
    (tmp_path / "lines.jsonl").write_text(json.dumps(MFA_FAILURE) + "\n{oops\n")
    default = replay(str(tmp_path))
    assert default.exit_code == 0
    assert "unreadable files 1, malformed records 1" in default.stderr
    strict = replay("--strict", str(tmp_path))
    assert strict.exit_code == 1
    assert "--strict: 1 unreadable file(s) and 1 malformed record(s)" in strict.stderr
    assert strict.stdout == default.stdout  # the alerts are still printed


def test_replay_dash_reads_records_and_envelopes_from_stdin() -> None:
    envelope = {
        "version": "0",
        "id": "e-1",
        "detail-type": "AWS Console Sign In via CloudTrail",
        "source": "aws.signin",
        "account": MFA_FAILURE["recipientAccountId"],
        "time": MFA_FAILURE["eventTime"],
        "region": MFA_FAILURE["awsRegion"],
        "resources": [],
        "detail": dict(MFA_FAILURE, eventID="second-event"),
    }
    lines = json.dumps(MFA_FAILURE) + "\n" + json.dumps(envelope) + "\n"
    result = replay("-", stdin=lines)
    assert result.exit_code == 0, result.output
    notifications = [json.loads(line) for line in result.stdout.splitlines()]
    # The record alerts; the envelope's event (same principal, next attempt) is summarised.
    assert [(n["kind"], n["event_ids"]) for n in notifications] == [
        ("alert", [MFA_FAILURE["eventID"]]),
        ("summary", ["second-event"]),
    ]
    assert "files 1, records 2, matched 2" in result.stderr


def test_replay_dash_with_nothing_readable_names_stdin() -> None:
    result = replay("-", stdin=b"")
    assert result.exit_code == 1
    assert "nothing readable in <stdin>" in result.stderr


def _cases() -> Iterator[RuleCase]:
    for rule_file in shipped_rule_files():
        yield from rule_file.cases


@pytest.mark.parametrize("case", list(_cases()), ids=lambda c: f"{c.rule_id}:{c.name}")
def test_test_pattern_rule_agrees_with_every_rule_case(case: RuleCase, tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps(case.event))
    result = CliRunner().invoke(
        main, ["test-pattern", "--rule", case.rule_id, "--event", f"@{event}"]
    )
    expected = case.expect == "match"
    assert (result.exit_code, result.stdout) == ((0, "true\n") if expected else (1, "false\n")), (
        result.output
    )


def test_every_rule_has_cases_for_test_pattern() -> None:
    ids = {rule_file.rule.id for rule_file in shipped_rule_files()}
    assert ids == {case.rule_id for case in _cases()}


def test_test_pattern_names_an_unknown_rule_and_the_known_ones() -> None:
    result = CliRunner().invoke(main, ["test-pattern", "--rule", "nope", "--event", "{}"])
    assert result.exit_code == 2
    assert (
        "--rule 'nope': no such rule; known: console-password-failure, iam-console-mfa-failure"
        in result.stderr
    )


def test_test_pattern_points_a_rule_file_given_as_a_pattern_to_rule() -> None:
    rule_file = RULES_DIR / "iam-console-mfa-failure.yaml"
    result = CliRunner().invoke(
        main, ["test-pattern", "--pattern", f"@{rule_file}", "--event", "{}"]
    )
    assert result.exit_code == 2
    assert "a rule file, not an event pattern: use --rule <its id>" in result.stderr


def test_test_pattern_needs_exactly_one_of_pattern_and_rule() -> None:
    result = CliRunner().invoke(main, ["test-pattern", "--event", "{}"])
    assert result.exit_code == 2
    assert "give either --pattern or --rule" in result.stderr


def _commands(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from _commands(sub, (*path, name))
    else:
        yield path


@pytest.mark.parametrize("path", list(_commands(main)), ids=" ".join)
def test_every_command_help_shows_an_example(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0
    assert "Example:\n    mfawatch " + " ".join(path) in result.stdout
