"""Replay reads CloudTrail as AWS delivers it, never crashes, and sends what production would."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from click.testing import CliRunner

from chalicelib.core.rules import RuleSet
from mfawatch.cli import main
from mfawatch.paths import DEMO_SCENARIO
from mfawatch.replay.archive import local_files, ordered_events
from mfawatch.replay.readers import ReadStats
from mfawatch.replay.runner import ReplayResult, replay_timed
from tests.conftest import load_event
from tests.reference import replay_jsonl

MFA_FAIL = load_event("iam-consolelogin-failure-mfa-yes")
ROOT_ENV = load_event("eventbridge-root-consolelogin-failure")
IDC_FAIL = load_event("idc-new-credentialverification-totp-failure")


def _read(*paths: Path) -> tuple[list[str], ReadStats]:
    """The origins of the events the replay reads (in event-time order), and its counts."""
    stats = ReadStats()
    origins = [e.origin for e in ordered_events(local_files(paths, stats), stats)]
    return origins, stats


def _replay(path: Path, rules: RuleSet) -> tuple[ReplayResult, ReadStats]:
    stats = ReadStats()
    return replay_timed(ordered_events(local_files([path], stats), stats), rules, stats), stats


def test_s3_gzip_records_file(tmp_path: Path) -> None:
    path = tmp_path / "a.json.gz"
    path.write_bytes(gzip.compress(json.dumps({"Records": [MFA_FAIL, IDC_FAIL]}).encode()))
    origins, stats = _read(path)
    assert origins == [f"{path}[0]", f"{path}[1]"]
    assert (stats.files, stats.records, stats.malformed_records) == (1, 2, 0)


def test_plain_json_record_list_envelope_and_jsonl(tmp_path: Path) -> None:
    (tmp_path / "one.json").write_text(json.dumps(MFA_FAIL))
    (tmp_path / "list.json").write_text(json.dumps([MFA_FAIL, IDC_FAIL]))
    (tmp_path / "env.json").write_text(json.dumps(ROOT_ENV))
    (tmp_path / "lines.jsonl").write_text(
        json.dumps(MFA_FAIL) + "\n\n" + json.dumps(ROOT_ENV) + "\n"
    )
    origins, stats = _read(tmp_path)
    assert stats.records == 6 and stats.files == 4 and not stats.problems
    assert f"{tmp_path / 'lines.jsonl'}:3" in origins


def test_folders_are_walked_recursively(tmp_path: Path) -> None:
    deep = tmp_path / "AWSLogs" / "111122223333" / "CloudTrail" / "us-east-1" / "2026" / "11" / "02"
    deep.mkdir(parents=True)
    (deep / "x.json.gz").write_bytes(gzip.compress(json.dumps({"Records": [MFA_FAIL]}).encode()))
    (deep / "README.txt").write_text("not a log")
    _, stats = _read(tmp_path)
    assert (stats.files, stats.records) == (1, 1)


def test_corrupt_input_is_reported_by_name_and_counted(tmp_path: Path) -> None:
    (tmp_path / "bad.json.gz").write_bytes(b"\x1f\x8b not really gzip")
    (tmp_path / "empty.json").write_text("")
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "mixed.jsonl").write_text(
        json.dumps(MFA_FAIL) + "\n{oops\n" + json.dumps({"x": 1}) + "\n"
    )
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe\x00garbage")
    missing = tmp_path / "missing.json"
    origins, stats = _read(tmp_path, missing)
    assert origins == [f"{tmp_path / 'mixed.jsonl'}:1"]
    assert stats.unreadable_files == 5
    assert stats.malformed_records == 2
    joined = "\n".join(stats.problems)
    for name in (
        "bad.json.gz",
        "empty.json",
        "broken.json",
        "mixed.jsonl:2",
        "mixed.jsonl:3",
        "binary.json",
        "missing.json",
    ):
        assert name in joined


def test_replay_sends_one_alert_per_matched_event(tmp_path: Path, rules: RuleSet) -> None:
    (tmp_path / "x.json").write_text(json.dumps([MFA_FAIL, IDC_FAIL, load_event("iam-checkmfa")]))
    result, _stats = _replay(tmp_path, rules)
    assert [(n.kind, n.rule.id, n.event_ids) for n in result.notifications] == [
        ("alert", "iam-console-mfa-failure", ("0b6a3c1e-5a7d-4c43-9f1e-6f4d2a9b8c01",)),
        ("alert", "identity-center-mfa-failure", ("a1b2c3d4-0000-4000-8000-000000000104",)),
    ]
    assert result.matched == 2


def test_aws_login_after_failed_mfa_escalates_and_a_policy_denial_is_not_a_failure(
    tmp_path: Path, rules: RuleSet
) -> None:
    failures = [
        dict(MFA_FAIL, eventID=f"mfa-fail-{i}", eventTime=f"2026-11-02T09:0{i}:08Z")
        for i in range(3)
    ]
    denied = load_event("iam-consolelogin-failure-rcp-denied-mfa-yes")  # MFAUsed Yes, 09:30
    refresh = dict(load_event("signin-createoauth2token-iamuser"), eventTime="2026-11-02T09:04:00Z")
    login = dict(
        load_event("signin-authorizeoauth2access-iamuser"), eventTime="2026-11-02T09:05:00Z"
    )
    (tmp_path / "trail.json").write_text(json.dumps([*failures, denied, refresh, login]))
    result, _stats = _replay(tmp_path, rules)
    escalations = [n for n in result.notifications if n.kind == "escalation"]
    assert [(n.rule.id, n.severity, n.count, n.source_ip, n.title) for n in escalations] == [
        (
            "sign-in-success",
            "CRITICAL",
            3,
            "198.51.100.77",
            # From another address than the failures: a takeover, which stands in for the
            # MFA fatigue success it also is (docs/design.md).
            "Possible account takeover: ops-admin signed in from 198.51.100.77 after 3 failed "
            "MFA attempts from 203.0.113.7",
        )
    ]
    published = {event_id for n in result.notifications for event_id in n.event_ids}
    assert denied["eventID"] not in published and refresh["eventID"] not in published
    assert result.matched_by_rule == {"iam-console-mfa-failure": 3, "sign-in-success": 1}


def test_replay_orders_by_event_time_across_files(tmp_path: Path, rules: RuleSet) -> None:
    later = dict(MFA_FAIL, eventTime="2026-11-02T10:00:00Z", eventID="later")
    (tmp_path / "a.json").write_text(json.dumps(later))
    (tmp_path / "b.json").write_text(json.dumps(MFA_FAIL))
    result, _stats = _replay(tmp_path, rules)
    assert [n.event_ids[0] for n in result.notifications] == [MFA_FAIL["eventID"], "later"]


def test_record_with_bad_time_is_counted_not_fatal(tmp_path: Path, rules: RuleSet) -> None:
    (tmp_path / "x.json").write_text(json.dumps([dict(MFA_FAIL, eventTime="XXXX"), IDC_FAIL]))
    result, stats = _replay(tmp_path, rules)
    assert len(result.notifications) == 1 and stats.malformed_records == 1
    assert "'XXXX' is not an ISO-8601 time" in stats.problems[0]


# The bundled scenario: what the README's main command prints, in the order it goes out.
EXPECTED_DEMO = [
    ("alert", "iam-console-mfa-failure", "ops-admin", 1),
    ("escalation", "iam-console-mfa-failure", "ops-admin", 10),
    ("escalation", "sign-in-success", "ops-admin", 12),
    ("alert", "mfa-device-removed", "ops-admin", 1),
    ("escalation", "mfa-takeover-steps", "ops-admin", 12),
    ("summary", "iam-console-mfa-failure", "ops-admin", 11),
    ("summary", "mfa-device-removed", "ops-admin", 1),
    ("alert", "iam-console-success-without-mfa", "build-bot", 1),
    ("alert", "root-console-failure", "root", 1),
    ("alert", "root-console-success-without-mfa", "root", 1),
    ("alert", "identity-center-mfa-failure", "jane@example.com", 1),
    ("summary", "identity-center-mfa-failure", "jane@example.com", 1),
    ("alert", "iam-console-mfa-failure", "dev-lead", 1),
    # The campaign of 15:30: an MFA spray, a takeover chain, root across accounts.
    ("alert", "iam-console-mfa-failure", "alice", 1),
    ("alert", "iam-console-mfa-failure", "bob", 1),
    ("escalation", "iam-console-mfa-failure", "3 principals", 3),
    ("alert", "iam-console-mfa-failure", "carol", 1),
    ("alert", "iam-console-mfa-failure", "dave", 1),
    ("escalation", "mfa-takeover-steps", "carol", 1),
    ("summary", "iam-console-mfa-failure", "4 principals", 0),  # the spray's trailing summary
    ("alert", "root-console-failure", "root", 1),
    ("escalation", "root-console-failure", "2 accounts", 2),
    ("alert", "root-console-failure", "root", 1),
    ("summary", "root-console-failure", "2 accounts", 0),  # its trailing summary
]


def test_demo_scenario_jsonl() -> None:
    result = replay_jsonl()
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(i["kind"], i["rule"], i["principal"], i["count"]) for i in lines] == EXPECTED_DEMO
    for item in lines:
        assert set(item) >= {
            "kind",
            "rule",
            "severity",
            "account",
            "region",
            "principal",
            "source_ip",
            "event_ids",
            "count",
            "subject",
        }
        assert len(item["subject"]) < 100
    summary = lines[5]
    assert (
        summary["subject"]
        == "[HIGH] summary: 11 more failed MFA attempts for ops-admin from 203.0.113.7"
    )
    assert (summary["first_seen"], summary["last_seen"]) == (
        "2026-11-02T09:00:27Z",
        "2026-11-02T09:04:00Z",
    )
    assert len(summary["event_ids"]) == 11
    fatigue = lines[2]
    assert fatigue["severity"] == "CRITICAL"
    assert fatigue["subject"].startswith("[CRITICAL] MFA fatigue success: ops-admin signed in")
    assert "files 280, records 419" in result.stderr
    assert "unreadable files 0, malformed records 0" in result.stderr


def test_demo_scenario_accounts_for_every_matched_event(rules: RuleSet) -> None:
    result, _stats = _replay(DEMO_SCENARIO, rules)
    counted: dict[str, int] = {}
    covered: dict[str, set[str]] = {}
    for n in result.notifications:
        if n.kind in ("alert", "summary", "storm"):
            counted[n.rule.id] = counted.get(n.rule.id, 0) + n.count
            covered.setdefault(n.rule.id, set()).update(n.event_ids)
    alerting = {r.id for r in rules if r.mode == "alert"}
    expected = {k: v for k, v in result.distinct_matched_by_rule.items() if k in alerting}
    assert counted == expected
    assert {k: len(v) for k, v in covered.items()} == expected
    assert len(result.sent_at) == len(result.notifications)
    assert result.sent_at == sorted(result.sent_at)


def test_demo_scenario_table_shows_the_alerts() -> None:
    result = CliRunner().invoke(main, ["replay", "--jobs", "1"])
    assert result.exit_code == 0
    assert (
        "[CRITICAL] Root signed in to account 444455556666 WITHOUT MFA from 192.0.2.44"
        in result.stdout
    )
    assert "[HIGH] Failed MFA sign-in for IAM user ops-admin from 203.0.113.7" in result.stdout
    assert f"Replaying the bundled scenario {DEMO_SCENARIO}" in result.stderr


def test_cli_reports_corrupt_files_and_still_exits_zero(tmp_path: Path) -> None:
    (tmp_path / "ok.json").write_text(json.dumps(MFA_FAIL))
    (tmp_path / "bad.json.gz").write_bytes(b"garbage")
    result = replay_jsonl(str(tmp_path))
    assert result.exit_code == 0
    assert len(result.stdout.splitlines()) == 1
    assert "bad.json.gz: unreadable" in result.stderr
    assert "unreadable files 1" in result.stderr


def test_demo_scenario_files_match_their_generator(tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen", DEMO_SCENARIO.parent / "generate_demo.py")
    assert spec and spec.loader
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    written = gen.write(gen.story(), tmp_path / "demo")
    committed = sorted(p.relative_to(DEMO_SCENARIO) for p in DEMO_SCENARIO.rglob("*.json.gz"))
    assert sorted(p.relative_to(tmp_path / "demo") for p in written) == committed
    for rel in committed:
        assert (tmp_path / "demo" / rel).read_bytes() == (DEMO_SCENARIO / rel).read_bytes(), rel
