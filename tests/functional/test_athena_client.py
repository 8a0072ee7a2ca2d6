"""The Athena calls with botocore's Stubber, where moto cannot go: a query that runs for several
polls with growing scanned bytes, one that fails or is cancelled with Athena's reason, a start
that Athena refuses, and Ctrl-C stopping the query."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from mfawatch.athena.client import (
    AthenaQueries,
    QueryStatus,
    run_backtest,
)
from mfawatch.errors import AthenaQueryError
from tests.support.clock import FakeClock

QUERY_ID = "4f0d1d0e-0000-4000-8000-000000000001"
OUTPUT = "s3://athena-results/backtests/"


@pytest.fixture
def athena() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client(
        "athena",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def _execution(state: str, scanned: int, **status: Any) -> dict[str, Any]:
    return {
        "QueryExecution": {
            "QueryExecutionId": QUERY_ID,
            "Status": {"State": state, **status},
            "Statistics": {"DataScannedInBytes": scanned},
        }
    }


def _poll(stubber: Stubber, state: str, scanned: int, **status: Any) -> None:
    stubber.add_response(
        "get_query_execution", _execution(state, scanned, **status), {"QueryExecutionId": QUERY_ID}
    )


def test_backtest_unloads_to_a_fresh_folder_and_reports_progress(
    athena: tuple[Any, Stubber],
) -> None:
    client, stubber = athena
    destination = f"{OUTPUT}mfawatch-backtest/run-1/"
    stubber.add_response(
        "start_query_execution",
        {"QueryExecutionId": QUERY_ID},
        {
            "QueryString": (
                f"UNLOAD (\nSELECT 1\n)\nTO '{destination}'\n"
                "WITH (format = 'JSON', compression = 'GZIP')"
            ),
            "ResultConfiguration": {"OutputLocation": OUTPUT},
            "WorkGroup": "backtests",
        },
    )
    _poll(stubber, "QUEUED", 0)
    _poll(stubber, "RUNNING", 3 * 1024**3)
    _poll(stubber, "RUNNING", 9 * 1024**3)
    _poll(stubber, "SUCCEEDED", 12 * 1024**3)
    clock = FakeClock(100.0)
    seen: list[QueryStatus] = []
    backtest = run_backtest(
        AthenaQueries(client, sleep=clock.sleep, clock=clock),
        "SELECT 1",
        output=OUTPUT,
        run_id="run-1",
        workgroup="backtests",
        progress=seen.append,
    )
    assert backtest.destination == destination
    assert [(s.state, s.scanned_bytes, s.elapsed_seconds) for s in seen] == [
        ("QUEUED", 0, 0.0),
        ("RUNNING", 3 * 1024**3, 0.5),
        ("RUNNING", 9 * 1024**3, 1.5),
        ("SUCCEEDED", 12 * 1024**3, 3.5),
    ]
    assert clock.sleeps == [0.5, 1.0, 2.0]  # backing off, at most 5 s
    assert backtest.status.cost_usd == pytest.approx(12 / 1024 * 5)


@pytest.mark.parametrize(
    ("state", "status", "expected"),
    [
        (
            "FAILED",
            {
                "StateChangeReason": "HIVE_BAD_DATA: Error parsing field value for field 3",
                "AthenaError": {"ErrorCategory": 2, "ErrorType": 1003},
            },
            "Athena query 4f0d1d0e-0000-4000-8000-000000000001 FAILED after scanning "
            "2,048 bytes: HIVE_BAD_DATA: Error parsing field value for field 3 "
            "(error category 2, type 1003)",
        ),
        (
            "CANCELLED",
            {"StateChangeReason": "Query cancelled by user"},
            "CANCELLED after scanning 2,048 bytes: Query cancelled by user",
        ),
        (
            "FAILED",
            {"AthenaError": {"ErrorCategory": 1, "ErrorType": 1, "ErrorMessage": "Access Denied"}},
            "FAILED after scanning 2,048 bytes: Access Denied",
        ),
        ("FAILED", {}, "FAILED after scanning 2,048 bytes: Athena gave no reason"),
    ],
)
def test_failed_or_cancelled_query_is_an_error_with_athenas_reason(
    athena: tuple[Any, Stubber], state: str, status: dict[str, Any], expected: str
) -> None:
    client, stubber = athena
    _poll(stubber, "RUNNING", 1024)
    _poll(stubber, state, 2048, **status)
    clock = FakeClock(100.0)
    with pytest.raises(AthenaQueryError) as caught:
        AthenaQueries(client, sleep=clock.sleep, clock=clock).wait(QUERY_ID)
    assert expected in str(caught.value)


def test_a_start_athena_refuses_is_an_error_with_its_message(athena: tuple[Any, Stubber]) -> None:
    client, stubber = athena
    stubber.add_client_error(
        "start_query_execution",
        service_error_code="InvalidRequestException",
        service_message="line 3:6: Table awsdatacatalog.default.trail does not exist",
    )
    with pytest.raises(
        AthenaQueryError, match=r"Table awsdatacatalog\.default\.trail does not exist"
    ):
        AthenaQueries(client).start("SELECT 1", output=OUTPUT)


def test_an_unreadable_state_is_an_error(athena: tuple[Any, Stubber]) -> None:
    client, stubber = athena
    stubber.add_client_error(
        "get_query_execution", service_error_code="ThrottlingException", service_message="Rate"
    )
    with pytest.raises(AthenaQueryError, match=f"cannot read the state of query {QUERY_ID}"):
        AthenaQueries(client).wait(QUERY_ID)


def test_interrupting_the_wait_stops_the_query(athena: tuple[Any, Stubber]) -> None:
    client, stubber = athena
    _poll(stubber, "RUNNING", 0)
    stubber.add_response("stop_query_execution", {}, {"QueryExecutionId": QUERY_ID})

    def interrupted(_seconds: float) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        AthenaQueries(client, sleep=interrupted).wait(QUERY_ID)


def test_results_must_go_to_s3(athena: tuple[Any, Stubber]) -> None:
    client, _ = athena
    with pytest.raises(AthenaQueryError, match="must be an s3://bucket/prefix URL"):
        run_backtest(AthenaQueries(client), "SELECT 1", output="/tmp/out", run_id="r")
