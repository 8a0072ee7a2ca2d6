"""Replay at scale: event-time order with bounded memory, time and rule filters, the prefilter."""

from __future__ import annotations

import copy
import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.core.records import as_envelope
from chalicelib.core.rules import RuleSet
from mfawatch.cli import main
from mfawatch.paths import DEMO_SCENARIO
from mfawatch.patterns.engine import compile_pattern
from mfawatch.replay.archive import (
    Prefilter,
    TimeRange,
    delivery_stamp,
    local_files,
    ordered_events,
    path_day,
    required_alternatives,
)
from mfawatch.replay.readers import ReadStats
from mfawatch.replay.runner import replay_timed
from tests.conftest import EVENTS, examples, load_event
from tests.reference import in_time_order, read_paths, replay_events, replay_jsonl

MFA_FAIL = load_event("iam-consolelogin-failure-mfa-yes")
SIGNIN = "signin.amazonaws.com"


def _stream(paths: list[Path], rules: RuleSet, **kwargs: Any) -> tuple[list[Any], ReadStats]:
    stats = ReadStats()
    files = local_files(paths, stats, kwargs.get("time_range", TimeRange()))
    events = list(ordered_events(files, stats, prefilter=Prefilter.for_rules(rules), **kwargs))
    return events, stats


def _write(folder: Path, account: str, stamp: str, records: list[dict[str, Any]]) -> Path:
    day = folder / "AWSLogs" / account / "CloudTrail" / "us-east-1" / stamp[:4] / stamp[4:6]
    path = day / stamp[6:8] / f"{account}_CloudTrail_us-east-1_{stamp}_abc.json.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(json.dumps({"Records": records}).encode()))
    return path


def _failure(at: str, event_id: str, account: str = "111122223333") -> dict[str, Any]:
    return dict(MFA_FAIL, eventTime=at, eventID=event_id, recipientAccountId=account)


def test_file_names_give_delivery_stamp_and_day() -> None:
    folder = "x/AWSLogs/1/CloudTrail/eu-west-1/2026/11/02/"
    name = folder + "1_CloudTrail_eu-west-1_20261102T0905Z_ab.json.gz"
    assert delivery_stamp(name) == datetime(2026, 11, 2, 9, 5, tzinfo=UTC)
    assert path_day(name) == datetime(2026, 11, 2).date()
    assert delivery_stamp("records.json") is None and path_day("records.json") is None


@pytest.mark.slow
def test_streamed_demo_equals_a_full_sort_event_for_event(rules: RuleSet) -> None:
    stats = ReadStats()
    everything = in_time_order(read_paths([DEMO_SCENARIO], stats), stats)
    candidates = [e for e in everything if Prefilter.for_rules(rules).may_match(e.envelope)]
    streamed, streamed_stats = _stream([DEMO_SCENARIO], rules)
    assert [(e.moment, e.origin) for e in streamed] == [(e.moment, e.origin) for e in candidates]
    assert (streamed_stats.files, streamed_stats.records) == (stats.files, stats.records)
    assert streamed_stats.late_records == 0
    old = replay_events(read_paths([DEMO_SCENARIO], ReadStats()), rules, ReadStats())
    new = replay_timed(iter(streamed), rules, ReadStats())
    assert [n.to_json() for n in new.notifications] == [n.to_json() for n in old.notifications]
    assert new.matched == old.matched


def test_merge_orders_events_across_files_delivered_out_of_event_order(
    tmp_path: Path, rules: RuleSet
) -> None:
    # The file delivered first holds the later event; the next one an earlier event (within the
    # lateness window): the merge must still give event-time order.
    _write(tmp_path, "1", "20261102T1000Z", [_failure("2026-11-02T09:58:00Z", "b")])
    _write(tmp_path, "2", "20261102T1005Z", [_failure("2026-11-02T09:50:00Z", "a", "2")])
    _write(tmp_path, "1", "20261102T1010Z", [_failure("2026-11-02T10:09:00Z", "c")])
    events, stats = _stream([tmp_path], rules)
    assert [e.envelope["detail"]["eventID"] for e in events] == ["a", "b", "c"]
    assert stats.late_records == 0


def test_event_later_than_the_window_is_replayed_counted_and_reported(
    tmp_path: Path, rules: RuleSet
) -> None:
    _write(tmp_path, "1", "20261102T1000Z", [_failure("2026-11-02T09:58:00Z", "b")])
    late = _write(tmp_path, "1", "20261102T1300Z", [_failure("2026-11-02T09:00:00Z", "late")])
    _write(tmp_path, "1", "20261102T1200Z", [_failure("2026-11-02T11:59:00Z", "c")])
    events, stats = _stream([tmp_path], rules, lateness=timedelta(minutes=15))
    assert [e.envelope["detail"]["eventID"] for e in events] == ["b", "c", "late"]
    assert stats.late_records == 1
    assert f"{late}: event time 2026-11-02T09:00:00Z is more than 15 minutes" in stats.problems[0]


def test_unstamped_inputs_fall_back_to_a_full_sort(tmp_path: Path, rules: RuleSet) -> None:
    (tmp_path / "a.json").write_text(json.dumps(_failure("2026-11-02T10:00:00Z", "later")))
    (tmp_path / "b.jsonl").write_text(json.dumps(_failure("2026-11-01T10:00:00Z", "first")) + "\n")
    events, _ = _stream([tmp_path], rules)
    assert [e.envelope["detail"]["eventID"] for e in events] == ["first", "later"]


def test_since_until_filter_event_time_and_skip_files_by_path_date(
    tmp_path: Path, rules: RuleSet
) -> None:
    _write(tmp_path, "1", "20261101T1000Z", [_failure("2026-11-01T09:58:00Z", "old")])
    _write(tmp_path, "1", "20261102T0900Z", [_failure("2026-11-02T08:59:00Z", "before")])
    _write(tmp_path, "1", "20261102T0910Z", [_failure("2026-11-02T09:05:00Z", "in")])
    _write(tmp_path, "1", "20261102T1200Z", [_failure("2026-11-02T11:59:00Z", "after")])
    _write(tmp_path, "1", "20261105T1200Z", [_failure("2026-11-05T11:59:00Z", "later")])
    window = TimeRange(datetime(2026, 11, 2, 9, tzinfo=UTC), datetime(2026, 11, 2, 10, tzinfo=UTC))
    events, stats = _stream([tmp_path], rules, time_range=window)
    assert [e.envelope["detail"]["eventID"] for e in events] == ["in"]
    # 2026-11-01 and 11-05 folders and the 12:00 file are never read.
    assert (stats.files, stats.skipped_files) == (2, 3)


def test_cli_replay_since_until_and_rule_filters(tmp_path: Path) -> None:
    result = replay_jsonl(
        "--since",
        "2026-11-02T11:00:00Z",
        "--until",
        "2026-11-02T12:00Z",
        str(DEMO_SCENARIO),
    )
    assert result.exit_code == 0, result.output
    rules = [json.loads(line)["rule"] for line in result.stdout.splitlines()]
    assert set(rules) == {"root-console-failure", "root-console-success-without-mfa"}
    assert "skipped files" in result.stderr
    result = replay_jsonl("--rule", "mfa-device-removed", str(DEMO_SCENARIO))
    assert result.exit_code == 0, result.output
    items = [json.loads(line) for line in result.stdout.splitlines()]
    assert items and {item["rule"] for item in items} == {"mfa-device-removed"}
    assert "files 280, records 419" in result.stderr


def test_cli_unknown_rule_and_bad_time_exit_two() -> None:
    result = CliRunner().invoke(main, ["replay", "--rule", "nope"])
    assert result.exit_code == 2 and "no rule 'nope'" in result.stderr
    result = CliRunner().invoke(main, ["replay", "--since", "yesterday"])
    assert result.exit_code == 2 and "not an ISO-8601 time" in result.stderr


def test_progress_line_goes_to_stderr_and_jsonl_stdout_stays_clean() -> None:
    result = replay_jsonl("--progress")
    assert result.exit_code == 0
    assert "records/s" in result.stderr and "files 280/280" in result.stderr
    for line in result.stdout.splitlines():
        json.loads(line)


def test_corrupt_files_in_s3_layout_are_counted_not_fatal(tmp_path: Path, rules: RuleSet) -> None:
    good = _write(
        tmp_path, "1", "20261102T1000Z", [_failure("2026-11-02T09:58:00Z", "b"), {"x": 1}]
    )
    bad = good.with_name("1_CloudTrail_us-east-1_20261102T1005Z_bad.json.gz")
    bad.write_bytes(b"\x1f\x8b garbage")
    events, stats = _stream([tmp_path], rules)
    assert len(events) == 1
    assert (stats.unreadable_files, stats.malformed_records) == (1, 1)
    assert any(f"{bad}: unreadable" in p for p in stats.problems)
    assert any(f"{good}[1]: not a CloudTrail record" in p for p in stats.problems)


# ---- the prefilter never drops a record that a rule matches -------------------------------


def test_prefilter_is_derived_from_required_literals_only() -> None:
    assert required_alternatives(
        {"source": ["aws.iam"], "detail": {"eventSource": ["iam.amazonaws.com"]}}
    ) == [{"eventSource": frozenset({"iam.amazonaws.com"})}]
    # prefix and ignore-case operators are not exact literals: that alternative requires none
    assert required_alternatives({"detail": {"eventName": [{"prefix": "Console"}]}}) == [{}]
    # $or branches are alternatives; a field required twice keeps one of its sets
    assert required_alternatives(
        {"detail": {"eventName": ["A"], "$or": [{"eventName": ["B"]}, {"x": ["y"]}]}}
    ) == [{"eventName": frozenset({"A"})}, {"eventName": frozenset({"A"}), "x": frozenset({"y"})}]
    # a dotted key names the same field as nesting does
    assert required_alternatives({"detail": {"a": ["b"]}, "detail.c": ["d"]}) == [
        {"a": frozenset({"b"}), "c": frozenset({"d"})}
    ]
    # one rule (or branch) without a required literal turns the prefilter off
    assert not Prefilter.for_rules([]).enabled


def test_rules_with_or_branches_give_one_alternative_per_branch(rules: RuleSet) -> None:
    prefilter = Prefilter.for_rules([rules.get("sign-in-success")])
    assert prefilter.alternatives == (
        (("eventName", frozenset({"ConsoleLogin"})), ("eventSource", frozenset({SIGNIN}))),
        (("eventName", frozenset({"UserAuthentication"})), ("eventSource", frozenset({SIGNIN}))),
        (("eventName", frozenset({"AuthorizeOAuth2Access"})), ("eventSource", frozenset({SIGNIN}))),
    )
    assert not prefilter.may_match(load_event("iam-checkmfa"))
    assert prefilter.may_match(load_event("signin-authorizeoauth2access-iamuser"))


def test_every_rule_case_that_matches_passes_the_prefilter(rules: RuleSet) -> None:
    prefilter = Prefilter.for_rules(rules)
    assert prefilter.enabled
    for path in sorted(EVENTS.glob("*.json")):
        event = json.loads(path.read_text())
        envelope = as_envelope(event)
        if any(compile_pattern(rule.event_pattern).matches(envelope) for rule in rules):
            assert prefilter.may_match(event), path.name
            assert prefilter.may_match(envelope), path.name


_FIELD_VALUES = st.one_of(
    st.sampled_from(
        [
            "signin.amazonaws.com",
            "iam.amazonaws.com",
            "s3.amazonaws.com",
            "ConsoleLogin",
            "CredentialVerification",
            "DeactivateMFADevice",
            "CheckMfa",
            "GetObject",
        ]
    ),
    st.lists(st.sampled_from(["signin.amazonaws.com", "iam.amazonaws.com", "x"]), max_size=3),
    st.integers(),
    st.none(),
    st.dictionaries(st.sampled_from(["a"]), st.integers(), max_size=1),
)


@settings(max_examples=examples(400), deadline=None)
@given(
    source=_FIELD_VALUES,
    name=_FIELD_VALUES,
    drop=st.sampled_from([None, "eventSource", "eventName"]),
    wrap=st.booleans(),
    base=st.sampled_from(sorted(p.stem for p in EVENTS.glob("*.json"))),
)
def test_prefilter_never_drops_a_record_a_rule_matches(
    rules: RuleSet, *, source: Any, name: Any, drop: str | None, wrap: bool, base: str
) -> None:
    event = as_envelope(load_event(base))
    detail = copy.deepcopy(event["detail"])
    detail["eventSource"], detail["eventName"] = source, name
    if drop:
        del detail[drop]
    record = dict(event, detail=detail) if wrap else detail
    if "eventName" not in detail and not wrap:
        return  # no longer a CloudTrail record: the reader reports it, no rule sees it
    envelope = as_envelope(record)
    if any(compile_pattern(rule.event_pattern).matches(envelope) for rule in rules):
        assert Prefilter.for_rules(rules).may_match(record)


def test_fast_split_keeps_every_record_a_rule_matches(tmp_path: Path, rules: RuleSet) -> None:
    # Records in unusual but valid shapes: escapes, duplicate keys, arrays, missing fields.
    tricky = [
        _failure("2026-11-02T09:50:00Z", "plain"),
        dict(_failure("2026-11-02T09:51:00Z", "array"), eventSource=["signin.amazonaws.com"]),
        {
            k: v
            for k, v in _failure("2026-11-02T09:52:00Z", "no-source").items()
            if k != "eventSource"
        },
        load_event("iam-deactivatemfadevice"),
        dict(load_event("iam-checkmfa"), eventTime="2026-11-02T09:53:00Z"),
    ]
    text = json.dumps({"Records": tricky})
    text = text.replace(
        '"eventSource": "signin.amazonaws.com"', '"eventSource": "signin\\u002eamazonaws.com"', 1
    )
    text = text.replace(
        '"eventID": "plain"', '"eventID": "x", "eventName": "ConsoleLogin", "eventID": "plain"'
    )
    day = tmp_path / "AWSLogs" / "1" / "CloudTrail" / "us-east-1" / "2026" / "11" / "02"
    day.mkdir(parents=True)
    path = day / "1_CloudTrail_us-east-1_20261102T1000Z_t.json.gz"
    path.write_bytes(gzip.compress(text.encode()))
    stats = ReadStats()
    expected = [
        e.origin
        for e in in_time_order(read_paths([path], stats), stats)
        if any(compile_pattern(r.event_pattern).matches(e.envelope) for r in rules)
    ]
    streamed, streamed_stats = _stream([tmp_path], rules)
    assert expected and set(expected) <= {e.origin for e in streamed}
    assert (streamed_stats.records, streamed_stats.malformed_records) == (stats.records, 0)
