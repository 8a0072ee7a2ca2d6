"""The Athena backtest against moto_server on 127.0.0.1: the UNLOAD query is started, polled
through QUEUED and RUNNING to SUCCEEDED, and the rows ``UNLOAD`` wrote are read back from S3
and replayed.

moto records the query and steps its state, but runs no SQL and writes no UNLOAD output (its
seeded results feed GetQueryResults, which a backtest does not use): the test writes the result
files where UNLOAD would, as gzip JSON lines. Failures and scanned bytes, which moto always
reports as 0, are covered with botocore's Stubber in tests/functional/test_athena_client.py.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from chalicelib.core.rules import RuleSet
from mfawatch.athena.client import AthenaQueries, QueryStatus, result_files, run_backtest
from mfawatch.athena.sql import SOURCE_COLUMN, backtest_select, candidate_events
from mfawatch.replay.archive import TimeRange
from mfawatch.replay.readers import ReadStats
from mfawatch.replay.runner import replay_timed
from mfawatch.replay.s3archive import S3Archive
from tests.athena_rows import row_of
from tests.conftest import ROOT, load_event

pytestmark = pytest.mark.integration

RESULTS = "athena-results"
DAY = TimeRange(datetime(2026, 11, 2, tzinfo=UTC), datetime(2026, 11, 3, tzinfo=UTC))
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def _client(service: str, endpoint: str) -> Any:
    return boto3.client(  # type: ignore[call-overload]  # boto3-stubs take literal names
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _moto_api(endpoint: str, path: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(
        f"{endpoint}/moto-api/{path}", data=json.dumps(body).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=10):
        pass


@pytest.fixture
def stepping_queries(moto_server: str) -> Iterator[str]:
    """moto steps a query to its next state every second GetQueryExecution."""
    model = {"model_name": "athena::execution"}
    _moto_api(
        moto_server,
        "state-manager/set-transition",
        {**model, "transition": {"progression": "manual", "times": 2}},
    )
    _s3 = _client("s3", moto_server)
    _s3.create_bucket(Bucket=RESULTS)
    yield moto_server
    _moto_api(moto_server, "state-manager/unset-transition", model)


def _failure(at: datetime, event_id: str) -> dict[str, Any]:
    record = load_event("iam-consolelogin-failure-mfa-yes")
    stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    source = (
        "s3://trail/AWSLogs/o-abcdefghij/111122223333/CloudTrail/us-east-1/2026/11/02/x.json.gz"
    )
    return {**row_of(dict(record, eventTime=stamp, eventID=event_id)), SOURCE_COLUMN: source}


def test_backtest_runs_the_unload_and_replays_what_it_wrote(
    stepping_queries: str, rules: RuleSet
) -> None:
    endpoint = stepping_queries
    s3 = _client("s3", endpoint)
    athena = _client("athena", endpoint)
    start = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    rows = [_failure(start + timedelta(minutes=n), f"e{n}") for n in range(4)]
    # UNLOAD writes files in parallel, in no order: the later attempts land in the first file.
    for name, part in (("part-a.gz", rows[2:]), ("part-b.gz", rows[:2])):
        body = "\n".join(json.dumps(row) for row in part).encode()
        s3.put_object(
            Bucket=RESULTS,
            Key=f"backtests/mfawatch-backtest/run-1/{name}",
            Body=gzip.compress(body),
        )
    select = backtest_select(rules, "cloudtrail_org", DAY, accounts=["111122223333"])
    seen: list[QueryStatus] = []
    backtest = run_backtest(
        AthenaQueries(athena, sleep=lambda _: None),
        select,
        output=f"s3://{RESULTS}/backtests/",
        run_id="run-1",
        progress=seen.append,
    )
    assert [status.state for status in seen] == ["QUEUED", "RUNNING", "RUNNING", "SUCCEEDED"]
    (query_id,) = athena.list_query_executions()["QueryExecutionIds"]
    assert backtest.status.query_id == query_id
    query = athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]["Query"]
    assert query.startswith("UNLOAD (\nSELECT\n")
    assert "FROM cloudtrail_org\nWHERE \"account\" IN ('111122223333')" in query
    assert f"TO 's3://{RESULTS}/backtests/mfawatch-backtest/run-1/'" in query

    stats = ReadStats()
    events = candidate_events(result_files(S3Archive(s3), backtest.destination, stats), stats, DAY)
    assert [e.envelope["detail"]["eventID"] for e in events] == ["e0", "e1", "e2", "e3"]
    assert (stats.files, stats.records, stats.problems) == (2, 4, [])

    result = replay_timed(events, rules, stats)
    alerts = [n for n in result.notifications if n.kind == "alert"]
    assert [(n.rule.id, n.principal, n.source_ip) for n in alerts] == [
        ("iam-console-mfa-failure", "ops-admin", "203.0.113.7")
    ]
    assert sum(n.count for n in result.notifications if n.rule.id == alerts[0].rule.id) == 4


def test_replay_athena_command_end_to_end(stepping_queries: str) -> None:
    env = dict(
        os.environ,
        **CREDENTIALS,
        AWS_ENDPOINT_URL=stepping_queries,
        AWS_DEFAULT_REGION="us-east-1",
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mfawatch",
            "replay",
            "--athena",
            "cloudtrail_org",
            "--athena-output",
            f"s3://{RESULTS}/cli/",
            "--since",
            "2026-11-02",
            "--until",
            "2026-11-03",
            "--accounts",
            "111122223333",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "No notifications."
    assert "SUCCEEDED" in done.stderr
    assert "scanned 0 B (0 bytes), cost $0.0000 at $5 per TB" in done.stderr
    assert "files 0, records 0, matched 0, notifications 0" in done.stderr
