"""Suppressions at build time: validation errors name the file and the field, the compiled copy
is current, ``suppressions check`` fails on an expired one and warns ahead, and replay reports
each suppression's events and the unused ones."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from chalicelib.core.rules import load_bundle
from chalicelib.core.suppressions import BUNDLE_PATH, bundle_json, load_suppressions
from mfawatch.cli import main
from mfawatch.paths import SUPPRESSIONS_DIR
from mfawatch.replay.readers import ReadStats
from mfawatch.replay.runner import TimedEvent, replay_timed
from mfawatch.rules.suppressions import (
    build_suppressions,
    check_suppressions,
    counts_report,
    load_suppressions_dir,
    rule_ids,
)
from tests.support.events import BASE, IAM_FAILURE, failed_mfa
from tests.support.suppressions import document, write

TODAY = BASE.date()
SOON = TODAY + timedelta(days=30)


def only_error(folder: Path) -> str:
    result = check_suppressions(folder, rule_ids(), TODAY)
    assert len(result.errors) == 1, result.errors
    return str(result.errors[0])


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"owner": None}, "$", "'owner' is a required property"),
        ({"expires": "next week"}, "$.expires", "does not match"),
        ({"expires": "2026-02-30"}, "$.expires", "not an ISO date"),
        ({"match": {}}, "$.match", "should be non-empty"),
        ({"match": {"accounts": ["1234"]}}, "$.match.accounts[0]", "does not match"),
        ({"match": {"source_cidrs": ["10.0.0.1/8"]}}, "$.match.source_cidrs[0]", "host bits"),
        ({"match": {"source_cidrs": ["2001:db8::/129"]}}, "$.match.source_cidrs[0]", ""),
        ({"match": {"rules": ["no-such-rule"]}}, "$.match.rules[0]", "no rule 'no-such-rule'"),
        ({"allow_critical": "yes"}, "$.allow_critical", "is not of type 'boolean'"),
        ({"colour": "red"}, "$", "Additional properties"),
    ],
)
def test_errors_name_the_file_and_the_field(
    tmp_path: Path, fields: dict[str, object], field: str, message: str
) -> None:
    merged = {**document("pentest", SOON), **fields}
    data = {k: v for k, v in merged.items() if v is not None}
    path = write(tmp_path, data)
    assert only_error(tmp_path).startswith(f"{path}: {field}: ")
    assert message in only_error(tmp_path)


def test_the_id_is_the_file_name(tmp_path: Path) -> None:
    path = write(tmp_path, document("pentest", SOON), name="other")
    assert only_error(tmp_path) == (f"{path}: $.id: id 'pentest' must equal the file name 'other'")


def test_expires_at_most_90_days_ahead_and_not_past(tmp_path: Path) -> None:
    write(tmp_path, document("ok", TODAY + timedelta(days=90)))
    assert check_suppressions(tmp_path, rule_ids(), TODAY).errors == ()
    write(tmp_path, document("ok", TODAY + timedelta(days=91)))
    assert "is more than 90 days ahead (latest 2027-01-31)" in only_error(tmp_path)
    write(tmp_path, document("ok", TODAY))
    assert only_error(tmp_path).endswith("$.expires: expired on 2026-11-02: remove it")


def test_an_unquoted_yaml_date_is_read_as_the_date_it_says(tmp_path: Path) -> None:
    path = tmp_path / "pentest.yaml"
    path.write_text(
        "id: pentest\nreason: external pen test, SEC-42\nowner: secops@example.com\n"
        "expires: 2026-11-20\nmatch:\n  source_cidrs: [203.0.113.0/24, '2001:db8::/32']\n",
        encoding="utf-8",
    )
    (found,) = load_suppressions_dir(tmp_path, rule_ids(), TODAY)
    assert found.expires.isoformat() == "2026-11-20"
    assert [str(n) for n in found.match.source_cidrs] == ["203.0.113.0/24", "2001:db8::/32"]


def test_the_compiled_bundle_round_trips(tmp_path: Path) -> None:
    write(tmp_path / "s", document("pentest", SOON, allow_critical=True))
    bundle = build_suppressions(tmp_path / "s", tmp_path / "suppressions.json", today=TODAY)
    (loaded,) = load_suppressions(bundle)
    assert loaded == load_suppressions_dir(tmp_path / "s")[0]


def test_compiled_suppressions_are_current() -> None:
    """chalicelib/suppressions.json is what suppressions/ compiles to (no date: expiry is the
    check's job, so this test does not start failing on a calendar day)."""
    expected = bundle_json(load_suppressions_dir(SUPPRESSIONS_DIR, rule_ids()))
    assert BUNDLE_PATH.read_text(encoding="utf-8") == expected, "stale: run `make rules`"


# --- mfawatch suppressions check ----------------------------------------------------------------


def check(folder: Path) -> tuple[int, str, str]:
    runner = CliRunner()
    result = runner.invoke(
        main,
        ["suppressions", "check", "--suppressions-dir", str(folder), "--today", str(TODAY)],
    )
    return result.exit_code, result.stdout, result.stderr


def test_check_fails_on_an_expired_suppression(tmp_path: Path) -> None:
    write(tmp_path, document("pentest", TODAY - timedelta(days=1)))
    code, out, err = check(tmp_path)
    assert code == 1
    assert "pentest.yaml: $.expires: expired on 2026-11-01: remove it" in out
    assert "1 error(s) in 1 of 1 file(s)" in err


def test_check_warns_14_days_ahead_and_passes(tmp_path: Path) -> None:
    write(tmp_path, document("soon", TODAY + timedelta(days=14)))
    write(tmp_path, document("later", TODAY + timedelta(days=15)))
    code, out, err = check(tmp_path)
    assert code == 0 and "2 suppression(s) valid on 2026-11-02" in out
    assert err.count("warning:") == 1
    assert "soon expires on 2026-11-16 (in 14 days; owner secops@example.com)" in err


def test_check_passes_without_suppressions(tmp_path: Path) -> None:
    assert check(tmp_path / "none")[0] == 0


# --- replay --------------------------------------------------------------------------------------


def test_replay_counts_each_suppressions_events_and_names_the_unused(tmp_path: Path) -> None:
    write(tmp_path / "s", document("pentest", SOON))
    write(tmp_path / "s", document("vendor", SOON, match={"principals": ["carol"]}))
    bundle = build_suppressions(tmp_path / "s", tmp_path / "suppressions.json", today=TODAY)
    events = [failed_mfa(f"a{i}", 10.0 * i) for i in range(3)] + [failed_mfa("b", 40, "bob")]
    timed = [TimedEvent(BASE + timedelta(seconds=10.0 * i), "t", e) for i, e in enumerate(events)]
    rules = load_bundle()
    result = replay_timed(timed, rules, ReadStats(), suppressions=load_suppressions(bundle))
    assert result.suppressed_by == {"pentest": 3}
    assert counts_report(result.suppressed_by, result.suppressions) == [
        "suppression pentest: 3 events matched",
        "suppression vendor: 0 events matched",
        "unused suppressions (no event matched): vendor",
    ]
    alerts = [n for n in result.notifications if n.kind == "alert"]
    assert [(n.rule_id, n.principal) for n in alerts] == [(IAM_FAILURE, "bob")]


def test_replay_command_reports_suppressions_on_stderr(tmp_path: Path) -> None:
    write(tmp_path / "s", document("pentest", SOON))
    bundle = build_suppressions(tmp_path / "s", tmp_path / "suppressions.json", today=TODAY)
    trail = tmp_path / "trail.json"
    records = [failed_mfa(f"a{i}", 10.0 * i)["detail"] for i in range(2)]
    trail.write_text(json.dumps({"Records": records}), encoding="utf-8")
    result = CliRunner().invoke(
        main, ["replay", str(trail), "--suppressions-bundle", str(bundle), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    assert "suppression pentest: 2 events matched" in result.stderr
    assert "unused" not in result.stderr
