"""Parked events (issue 18): on-failure records replayed through the rule's own path."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.core.errors import ParkedRecordError, StateStoreError
from chalicelib.core.records import envelope_of
from chalicelib.core.rules import RuleSet
from chalicelib.pipeline.observability import MemoryMetrics
from chalicelib.pipeline.parked import (
    MAX_RETRY_SECONDS,
    ParkedEvents,
    parse_sqs_record,
    plan,
    retry_delay,
)
from chalicelib.pipeline.service import AlertService, MemoryPublisher
from tests.conftest import load_event
from tests.factory import on_failure_record, sqs_event_record

QUEUE = "arn:aws:sqs:us-east-1:111122223333:mfawatch-dev-failed-events"
FUNCTION = "arn:aws:lambda:us-east-1:111122223333:function:mfawatch-dev-"
EVENT_TIME = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _failed_mfa(event_id: str = "parked-1", user: str = "ops-admin") -> dict[str, Any]:
    record = load_event("iam-consolelogin-failure-mfa-yes")
    record["eventID"] = event_id
    record["eventTime"] = EVENT_TIME.strftime("%Y-%m-%dT%H:%M:%SZ")
    record["userIdentity"]["userName"] = user
    return envelope_of(record)


def _message(
    event: dict[str, Any],
    handler: str = "on_iam_console_mfa_failure",
    message_id: str = "m-1",
    receives: int = 1,
    **record: Any,
) -> dict[str, Any]:
    body = json.dumps(on_failure_record(event, FUNCTION + handler, **record))
    return sqs_event_record(body, QUEUE, message_id, receives)


class Delays:
    """The visibility edge, recorded."""

    def __init__(self) -> None:
        self.delays: list[tuple[str, str, int]] = []

    def delay(self, queue_arn: str, receipt_handle: str, seconds: int) -> None:
        self.delays.append((queue_arn, receipt_handle, seconds))


def _consumer(
    rules: RuleSet, now: datetime, handle: Any = None
) -> tuple[ParkedEvents, MemoryPublisher, Delays, MemoryMetrics]:
    publisher = MemoryPublisher()
    metrics = MemoryMetrics()
    service = AlertService(rules, publisher, metrics=metrics)
    delays = Delays()
    consumer = ParkedEvents(rules, handle or service.handle, delays, metrics, lambda: now)
    return consumer, publisher, delays, metrics


def test_the_documented_on_failure_record_parses_with_its_original_event() -> None:
    event = _failed_mfa()
    parked = parse_sqs_record(_message(event, receives=2))
    assert parked.function_name == "mfawatch-dev-on_iam_console_mfa_failure"
    assert parked.condition == "RetriesExhausted"
    assert parked.invoke_count == 3
    assert parked.receive_count == 2
    assert parked.error == "StateStoreError: DynamoDB UpdateItem failed"
    assert parked.event == event
    assert parked.event_id == "parked-1"
    assert parked.queue_arn == QUEUE


def test_an_event_age_record_has_no_response_and_still_parses() -> None:
    parked = parse_sqs_record(_message(_failed_mfa(), condition="EventAgeExceeded", error=None))
    assert (parked.condition, parked.error) == ("EventAgeExceeded", "")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("not json", "body is not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"requestPayload": {}}', "no requestContext.functionArn"),
        (
            '{"requestContext": {"functionArn": "arn:aws:lambda:us-east-1:1:function:f"}}',
            "requestPayload is missing",
        ),
        (
            '{"requestContext": {"functionArn": "arn:aws:sns:us-east-1:1:t"}, '
            '"requestPayload": {}}',
            "not a Lambda function ARN",
        ),
    ],
)
def test_a_malformed_record_is_a_clear_error_naming_the_message(body: str, message: str) -> None:
    with pytest.raises(ParkedRecordError, match=f"SQS message m-9: {message}|{message}"):
        parse_sqs_record(sqs_event_record(body, QUEUE, "m-9"))


def test_plan_replays_rule_functions_and_skips_periodic_ones(rules: RuleSet) -> None:
    event = _failed_mfa()
    assert plan(parse_sqs_record(_message(event)), rules).rule_id == "iam-console-mfa-failure"
    root = parse_sqs_record(_message(event, handler="on_root_console_failure"))
    assert plan(root, rules).rule_id == "root-console-failure"
    tick = parse_sqs_record(_message({}, handler="send_due_summaries"))
    assert plan(tick, rules).rule_id == ""
    with pytest.raises(ParkedRecordError, match="runs none of this app's handlers"):
        plan(parse_sqs_record(_message(event, handler="on_something_else")), rules)


def test_a_parked_event_hours_old_alerts_through_the_rule_path(rules: RuleSet) -> None:
    # Parked after the maximum event age (6 hours at most): the consumer must still save it.
    consumer, publisher, delays, metrics = _consumer(rules, EVENT_TIME + timedelta(hours=6))
    response = consumer.consume([_message(_failed_mfa(), condition="EventAgeExceeded", error=None)])
    assert response == {"batchItemFailures": []}
    (alert,) = publisher.sent
    assert alert.kind == "alert"
    assert alert.title == "Failed MFA sign-in for IAM user ops-admin from 203.0.113.7"
    assert alert.count == 1
    assert metrics.total("ParkedReplayed") == 1 and delays.delays == []


def test_a_parked_event_already_handled_publishes_nothing_again(rules: RuleSet) -> None:
    consumer, publisher, _, metrics = _consumer(rules, EVENT_TIME + timedelta(minutes=5))
    message = _message(_failed_mfa())
    consumer.consume([message])
    consumer.consume([message])  # SQS delivers at least once
    assert len(publisher.sent) == 1
    assert metrics.total("Duplicates") == 1


def test_only_the_failed_records_of_a_batch_are_reported_and_backed_off(rules: RuleSet) -> None:
    publisher = MemoryPublisher()
    service = AlertService(rules, publisher)

    def handle(rule_id: str, event: Any, now: datetime) -> Any:
        if event["detail"]["eventID"] == "parked-bad":
            raise StateStoreError("DynamoDB still down (test)")
        return service.handle(rule_id, event, now)

    consumer, _, delays, metrics = _consumer(rules, EVENT_TIME + timedelta(minutes=5), handle)
    response = consumer.consume(
        [
            _message(_failed_mfa("parked-ok", "alice"), message_id="m-ok"),
            _message(_failed_mfa("parked-bad", "bob"), message_id="m-bad", receives=3),
            sqs_event_record("garbage", QUEUE, "m-garbage"),
        ]
    )
    assert response == {
        "batchItemFailures": [{"itemIdentifier": "m-bad"}, {"itemIdentifier": "m-garbage"}]
    }
    assert [n.event_ids for n in publisher.sent] == [("parked-ok",)]
    # The transient failure comes back later; the malformed one goes to the dead-letter queue
    # after maxReceiveCount without hammering anything.
    assert delays.delays == [(QUEUE, "receipt-m-bad", retry_delay(3))]
    assert metrics.total("ParkedErrors") == 2


def test_retry_delay_doubles_up_to_its_ceiling() -> None:
    assert [retry_delay(n) for n in (1, 2, 3, 4, 5, 6, 50)] == [
        60,
        120,
        240,
        480,
        MAX_RETRY_SECONDS,
        MAX_RETRY_SECONDS,
        MAX_RETRY_SECONDS,
    ]


def test_records_not_started_before_the_deadline_go_back_whole(rules: RuleSet) -> None:
    consumer, publisher, delays, _ = _consumer(rules, EVENT_TIME + timedelta(minutes=5))
    left = iter([60.0, 5.0])  # time for the first record only
    response = consumer.consume(
        [
            _message(_failed_mfa("parked-a", "alice"), message_id="m-a"),
            _message(_failed_mfa("parked-b", "bob"), message_id="m-b"),
            _message(_failed_mfa("parked-c", "carol"), message_id="m-c"),
        ],
        lambda: next(left),
    )
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-b"}, {"itemIdentifier": "m-c"}]}
    assert [n.event_ids for n in publisher.sent] == [("parked-a",)]
    assert delays.delays == []  # not failures: back after the queue's own visibility timeout
