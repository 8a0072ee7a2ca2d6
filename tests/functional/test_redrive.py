"""`mfawatch redrive`: the final dead-letter queue back to the failed-events queue (moto)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from click.testing import CliRunner
from moto import mock_aws

from chalicelib.core.records import envelope_of
from mfawatch.cli.redrive import make_redrive_command
from tests.conftest import load_event
from tests.factory import on_failure_record

FUNCTION = "arn:aws:lambda:us-east-1:123456789012:function:mfawatch-dev-on_root_console_failure"


@pytest.fixture
def queues(aws_credentials: None) -> Iterator[dict[str, Any]]:
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        failed = sqs.create_queue(QueueName="mfawatch-dev-failed-events")["QueueUrl"]
        dead = sqs.create_queue(QueueName="mfawatch-dev-dead-letters")["QueueUrl"]
        yield {"sqs": sqs, "failed": failed, "dead": dead}


def _park(queues: dict[str, Any], count: int) -> list[str]:
    ids = []
    for n in range(count):
        record = load_event("root-consolelogin-failure-mfa-yes")
        record["eventID"] = f"dead-{n:02d}"
        body = on_failure_record(envelope_of(record), FUNCTION, condition="RetriesExhausted")
        queues["sqs"].send_message(QueueUrl=queues["dead"], MessageBody=json.dumps(body))
        ids.append(record["eventID"])
    queues["sqs"].send_message(QueueUrl=queues["dead"], MessageBody="not a record")
    return ids


def _bodies(queues: dict[str, Any], queue: str) -> list[str]:
    bodies: list[str] = []
    while (
        batch := queues["sqs"]
        .receive_message(QueueUrl=queues[queue], MaxNumberOfMessages=10, VisibilityTimeout=600)
        .get("Messages", [])
    ):
        bodies += [m["Body"] for m in batch]
    return bodies


def _run(*args: str) -> Any:
    command = make_redrive_command(lambda: boto3.Session(region_name="us-east-1"))
    return CliRunner().invoke(command, ["--stage", "dev", *args])


def test_redrive_moves_every_dead_letter_back_unchanged_and_lists_it(
    queues: dict[str, Any],
) -> None:
    ids = _park(queues, 12)  # more than one SQS batch
    result = _run()
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(line["event_id"] for line in lines if line["event_id"]) == ids
    assert all(line["moved"] for line in lines) and len(lines) == 13
    root = next(line for line in lines if line["event_id"] == "dead-00")
    assert root["function"] == "mfawatch-dev-on_root_console_failure"
    assert root["condition"] == "RetriesExhausted"
    assert root["error"] == "DynamoDB UpdateItem failed"
    assert [line["error"] for line in lines if not line["event_id"]] == [
        "not a Lambda on-failure record"
    ]
    assert "13 dead letters, moved 13 to mfawatch-dev-failed-events" in result.stderr
    moved = _bodies(queues, "failed")
    records = [json.loads(b) for b in moved if b != "not a record"]
    assert sorted(r["requestPayload"]["detail"]["eventID"] for r in records) == ids
    assert "not a record" in moved
    assert _bodies(queues, "dead") == []


def test_a_dry_run_lists_and_moves_nothing(queues: dict[str, Any]) -> None:
    _park(queues, 3)
    result = _run("--dry-run")
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["moved"] for line in result.stdout.splitlines()] == [False] * 4
    assert "would move 4" in result.stderr
    assert _bodies(queues, "failed") == []


def test_max_limits_how_many_move(queues: dict[str, Any]) -> None:
    _park(queues, 5)
    result = _run("--max", "2")
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 2
    assert len(_bodies(queues, "failed")) == 2


def test_a_missing_queue_is_a_clear_error(aws_credentials: None) -> None:
    with mock_aws():
        result = _run()
    assert result.exit_code == 1
    assert "queue mfawatch-dev-dead-letters" in result.output
