"""The Athena backtest's pure part: the table, the generated query, rows back to records, cost."""

from __future__ import annotations

import gzip
import json
from dataclasses import fields
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from click.testing import CliRunner

from chalicelib.core.records import (
    SignInRecord,
    as_envelope,
    is_cloudtrail_record,
    is_envelope,
    parse_event,
)
from chalicelib.core.rules import Rule, RuleSet, rule_from_mapping
from mfawatch.athena.sql import (
    SOURCE_COLUMN,
    backtest_select,
    candidate_events,
    condition_sql,
    create_table_ddl,
    record_from_row,
    scan_cost_usd,
    unload_statement,
)
from mfawatch.cli import main
from mfawatch.errors import AthenaError
from mfawatch.patterns.engine import compile_pattern
from mfawatch.patterns.requirements import AnyOf, paths_of, pattern_condition
from mfawatch.replay.archive import TimeRange
from mfawatch.replay.readers import ReadStats
from tests.athena_rows import row_of
from tests.conftest import EVENTS, ROOT, load_sample, needs_shared, sample_paths

DAY = TimeRange(datetime(2026, 11, 2, tzinfo=UTC), datetime(2026, 11, 3, tzinfo=UTC))


FIXTURES = sorted(EVENTS.glob("*.json"))


def _assert_survives_the_table(record: dict[str, Any], rules: RuleSet) -> None:
    """A record rebuilt from its table row parses and matches exactly as the original."""
    rebuilt = record_from_row(row_of(record))
    original, again = parse_event(record), parse_event(rebuilt)
    for field in fields(SignInRecord):
        if field.name != "raw":
            assert getattr(again, field.name) == getattr(original, field.name), field.name
    for rule in rules:
        matcher = compile_pattern(rule.event_pattern)
        assert matcher.matches(as_envelope(rebuilt)) == matcher.matches(as_envelope(record)), (
            rule.id
        )


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_table_keeps_every_field_the_parser_and_the_rules_read(path: Any, rules: RuleSet) -> None:
    event = json.loads(path.read_text(encoding="utf-8"))
    _assert_survives_the_table(event.get("detail", event), rules)


@needs_shared
@pytest.mark.parametrize("path", sample_paths(), ids=lambda p: p.stem)
def test_shared_samples_survive_the_table(path: Any, rules: RuleSet) -> None:
    for event in load_sample(path):
        record = event.get("detail", event) if is_envelope(event) else event
        if is_cloudtrail_record(record):
            _assert_survives_the_table(record, rules)


def test_identity_center_fields_survive_the_table() -> None:
    record = json.loads((EVENTS / "idc-new-credentialverification-totp-success.json").read_text())
    record = record.get("detail", record)
    record["userIdentity"]["onBehalfOf"] = {"userId": "u-1", "identityStoreArn": "arn:x"}
    rebuilt = record_from_row(row_of(record))
    assert rebuilt["userIdentity"]["onBehalfOf"] == {"userId": "u-1", "identityStoreArn": "arn:x"}
    assert (
        rebuilt["additionalEventData"]["AuthWorkflowID"]
        == (record["additionalEventData"]["AuthWorkflowID"])
    )
    assert rebuilt["serviceEventDetails"] == record["serviceEventDetails"]


def test_every_field_a_bundled_rule_reads_is_a_table_column(rules: RuleSet) -> None:
    envelope: set[tuple[str, ...]] = set()
    for rule in rules:
        for path in paths_of(pattern_condition(rule.event_pattern)):
            if path[0] != "detail":
                envelope.add(path)
                continue
            assert condition_sql(AnyOf(path, frozenset({"x"}))) != "TRUE", (rule.id, path)
    # The envelope's source is derived from eventSource when a record is wrapped.
    assert envelope == {("source",)}


def test_ddl_projects_account_region_and_date_of_an_organization_trail() -> None:
    ddl = create_table_ddl(
        "cloudtrail_org",
        "trail-bucket",
        "org/",
        org_id="o-abcdefghij",
        regions=["us-east-1", "eu-west-1"],
    )
    assert "LOCATION 's3://trail-bucket/org/AWSLogs/o-abcdefghij/'" in ddl
    assert (
        "'storage.location.template'='s3://trail-bucket/org/AWSLogs/o-abcdefghij/"
        "${account}/CloudTrail/${region}/${date}'" in ddl
    )
    assert "'projection.account.type'='injected'" in ddl
    assert "'projection.region.values'='us-east-1,eu-west-1'" in ddl
    assert "'projection.date.format'='yyyy/MM/dd'" in ddl
    assert "onbehalfof: STRUCT<userid: STRING, identitystorearn: STRING>" in ddl
    for column in ("additionaleventdata", "serviceeventdetails", "responseelements"):
        assert f"`{column}` STRING" in ddl


def test_ddl_with_accounts_enumerates_them() -> None:
    ddl = create_table_ddl(
        "t", "b-1", regions=["us-east-1"], accounts=["111122223333", "444455556666"]
    )
    assert "'projection.account.values'='111122223333,444455556666'" in ddl
    assert "LOCATION 's3://b-1/AWSLogs/'" in ddl


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"bucket": "b'; DROP"}, "bucket"),
        ({"accounts": ["1111' OR '1'='1"]}, "account"),
        ({"regions": ["us-east-1'"]}, "region"),
        ({"org_id": "o-x'"}, "Organization id"),
        ({"regions": []}, "--regions"),
    ],
)
def test_ddl_rejects_names_that_cannot_go_into_sql(kwargs: dict[str, Any], word: str) -> None:
    arguments: dict[str, Any] = {"bucket": "bucket", "regions": ["us-east-1"], **kwargs}
    with pytest.raises(AthenaError, match=word):
        create_table_ddl("t", arguments.pop("bucket"), **arguments)


def test_select_prunes_partitions_and_bounds_event_time(rules: RuleSet) -> None:
    sql = backtest_select(
        rules, "trail", DAY, accounts=["444455556666", "111122223333"], regions=["us-east-1"]
    )
    assert "\"account\" IN ('111122223333', '444455556666')" in sql
    assert "\"region\" IN ('us-east-1')" in sql
    # Files delivered up to an hour after an event (--lateness) sit in the next day's folder.
    assert "\"date\" BETWEEN '2026/11/01' AND '2026/11/03'" in sql
    assert "eventtime >= '2026-11-02T00:00:00'" in sql
    assert "eventtime < '2026-11-03T00:00:00'" in sql
    assert f'"$path" AS {SOURCE_COLUMN}' in sql


def test_event_time_bounds_widen_to_whole_seconds_in_utc(rules: RuleSet) -> None:
    east = timezone(timedelta(hours=2))
    since = datetime(2026, 11, 2, 11, 0, 0, 250_000, tzinfo=east)
    until = datetime(2026, 11, 2, 12, 0, 0, 500_000, tzinfo=east)
    sql = backtest_select(rules, "trail", TimeRange(since, until))
    assert "eventtime >= '2026-11-02T09:00:00'" in sql
    assert "eventtime < '2026-11-02T10:00:01'" in sql


def test_select_reads_json_string_columns_with_json_extract_scalar(rules: RuleSet) -> None:
    sql = backtest_select(RuleSet([rules.get("iam-console-mfa-failure")]), "trail", DAY)
    assert "-- iam-console-mfa-failure" in sql
    assert "json_extract_scalar(responseelements, '$.ConsoleLogin') IN ('Failure')" in sql
    assert "lower(json_extract_scalar(additionaleventdata, '$.MFAUsed')) IN ('yes')" in sql
    assert "useridentity.type IN ('IAMUser')" in sql
    assert "eventsource IN ('signin.amazonaws.com')" in sql


def _rule(pattern: dict[str, Any]) -> Rule:
    return rule_from_mapping(
        {
            "id": "probe",
            "title": "t",
            "description": "d",
            "severity": "LOW",
            "runbook": [],
            "event_pattern": pattern,
        },
        "probe.yaml",
    )


def test_a_rule_without_any_expressible_field_drops_the_rule_filter() -> None:
    rule = _rule({"source": ["aws.signin"], "detail": {"eventName": [{"anything-but": "x"}]}})
    assert condition_sql(pattern_condition(rule.event_pattern)) == "TRUE"
    sql = backtest_select(RuleSet([rule]), "trail", DAY)
    assert "-- probe" not in sql
    assert sql.rstrip().endswith("eventtime < '2026-11-03T00:00:00'")


def test_or_branches_become_sql_or_and_prefix_becomes_starts_with() -> None:
    rule = _rule(
        {
            "detail": {
                "eventSource": [{"prefix": "signin."}],
                "$or": [
                    {"eventName": ["A"]},
                    {"requestParameters.userName": ["root"]},
                ],
            }
        }
    )
    sql = backtest_select(RuleSet([rule]), "trail", DAY)
    assert "starts_with(eventsource, 'signin.')" in sql
    assert "(eventname IN ('A') OR (json_extract_scalar(requestparameters, '$.userName')" in sql


def test_an_array_on_the_way_to_a_json_field_keeps_the_row() -> None:
    condition = AnyOf(("detail", "requestParameters", "filters", "name"), frozenset({"x"}))
    assert condition_sql(condition) == (
        "(json_extract_scalar(requestparameters, '$.filters.name') IN ('x')"
        " OR json_format(json_extract(requestparameters, '$.filters')) LIKE '[%'"
        " OR json_format(json_extract(requestparameters, '$.filters.name')) LIKE '[%')"
    )


def test_select_needs_a_bounded_range_and_valid_names(rules: RuleSet) -> None:
    with pytest.raises(AthenaError, match="--since and --until"):
        backtest_select(rules, "trail", TimeRange(since=DAY.since))
    with pytest.raises(AthenaError, match="table"):
        backtest_select(rules, "trail; DROP", DAY)


def test_unload_writes_gzip_json_to_the_destination() -> None:
    statement = unload_statement("SELECT 1", "s3://out/run-1/")
    assert statement.startswith("UNLOAD (\nSELECT 1\n)\nTO 's3://out/run-1/'")
    assert statement.endswith("WITH (format = 'JSON', compression = 'GZIP')")
    with pytest.raises(AthenaError):
        unload_statement("SELECT 1", "https://x")


def test_cost_is_five_dollars_a_terabyte_with_a_ten_megabyte_minimum() -> None:
    assert scan_cost_usd(1024**4) == pytest.approx(5.0)
    assert scan_cost_usd(0) == scan_cost_usd(10 * 1024**2) == pytest.approx(10 / 1024**2 * 5)
    assert scan_cost_usd(10 * 1024**2 + 1) == pytest.approx(11 / 1024**2 * 5)


def _result(rows: list[Any]) -> bytes:
    return gzip.compress("\n".join(json.dumps(row) for row in rows).encode())


def _row(at: str, event_id: str, source: str = "s3://t/a.json.gz") -> dict[str, Any]:
    record = json.loads((EVENTS / "iam-consolelogin-failure-mfa-yes.json").read_text())
    return {**row_of(dict(record, eventTime=at, eventID=event_id)), SOURCE_COLUMN: source}


def test_result_rows_come_back_in_event_time_order_across_files() -> None:
    stats = ReadStats()
    events = candidate_events(
        [
            (
                "r/1.gz",
                _result([_row("2026-11-02T10:00:00Z", "c"), _row("2026-11-02T09:00:00Z", "a")]),
            ),
            ("r/2.gz", _result([_row("2026-11-02T09:30:00Z", "b")])),
        ],
        stats,
        DAY,
    )
    assert [e.envelope["detail"]["eventID"] for e in events] == ["a", "b", "c"]
    assert (stats.files, stats.records, stats.problems) == (2, 3, [])
    assert events[0].origin == "s3://t/a.json.gz (result r/1.gz:2)"


def test_bad_rows_are_reported_with_their_log_file_and_result_line() -> None:
    bad_json = dict(_row("2026-11-02T09:00:00Z", "x"), responseelements="{not json")
    no_time = dict(_row("2026-11-02T09:00:00Z", "y"), eventtime="yesterday")
    stats = ReadStats()
    events = candidate_events([("r/1.gz", _result([bad_json, [1], no_time]))], stats, DAY)
    assert events == []
    assert stats.malformed_records == 3
    assert stats.problems[0].startswith(
        "s3://t/a.json.gz (result r/1.gz:1): column responseelements"
    )
    assert stats.problems[1] == "r/1.gz:2: not a result row (a JSON object)"
    assert "eventTime 'yesterday'" in stats.problems[2]


def test_rows_outside_the_time_range_are_dropped() -> None:
    stats = ReadStats()
    rows = [_row("2026-11-03T00:00:00Z", "late"), _row("2026-11-02T23:59:59Z", "in")]
    events = candidate_events([("r.gz", _result(rows))], stats, DAY)
    assert [e.envelope["detail"]["eventID"] for e in events] == ["in"]


def test_athena_sql_command_prints_the_backtest_query(rules: RuleSet) -> None:
    result = CliRunner().invoke(
        main,
        ["athena-sql", "--since", "2026-11-02", "--until", "2026-11-03", "--regions", "us-east-1"],
    )
    assert result.exit_code == 0, result.output
    expected = backtest_select(rules, "cloudtrail_mfawatch", DAY, regions=["us-east-1"])
    assert result.output == expected + "\n"


def test_athena_ddl_command_prints_the_table_or_names_the_bad_value() -> None:
    runner = CliRunner()
    ok = runner.invoke(main, ["athena-ddl", "--bucket", "trail", "--regions", "us-east-1"])
    assert ok.exit_code == 0 and ok.output.startswith("CREATE EXTERNAL TABLE IF NOT EXISTS")
    bad = runner.invoke(
        main, ["athena-ddl", "--bucket", "trail", "--regions", "us-east-1", "--accounts", "12"]
    )
    assert bad.exit_code == 1 and "account '12' is not valid" in bad.output


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--since", "2026-11-02", "--until", "2026-11-03"], "--athena-output"),
        (["--athena-output", "s3://o/", "--since", "2026-11-02"], "--since and --until"),
        (["--athena-output", "s3://o/", "--since", "2026-11-03", "--until", "2026-11-02"], "after"),
        (["--athena-output", "s3://o/", "scenarios/demo"], "either PATHS or --athena"),
    ],
)
def test_replay_athena_checks_its_arguments_before_calling_aws(
    arguments: list[str], message: str
) -> None:
    result = CliRunner().invoke(main, ["replay", "--athena", "trail", *arguments])
    assert result.exit_code == 2
    assert message in result.output


def test_athena_options_without_athena_are_an_error() -> None:
    result = CliRunner().invoke(main, ["replay", "--accounts", "111122223333", "--workgroup", "w"])
    assert result.exit_code == 2
    assert "--workgroup, --accounts only apply with --athena" in result.output


def test_replay_docs_show_the_current_athena_sql_for_the_bundled_rules(rules: RuleSet) -> None:
    doc = (ROOT / "docs" / "replay.md").read_text(encoding="utf-8")
    shown = doc.split("### The query for the bundled rules", 1)[1]
    shown = shown.split("```sql\n", 1)[1].split("\n```", 1)[0]
    quarter = TimeRange(datetime(2026, 8, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC))
    accounts = ["111122223333", "444455556666"]
    assert shown == backtest_select(rules, "cloudtrail_org", quarter, accounts=accounts), (
        "docs/replay.md: paste the output of `python -m mfawatch athena-sql --table cloudtrail_org "
        "--since 2026-08-01 --until 2026-11-01 --accounts 111122223333,444455556666`"
    )
