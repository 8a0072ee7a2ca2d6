"""Lambda handlers end to end: chalice.test.Client -> service -> SNS (moto) -> SQS subscriber."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from chalice.test import Client
from moto import mock_aws

from chalicelib.aws.dynamo import create_state_table
from chalicelib.core.constants import HEARTBEAT_PATTERN
from chalicelib.core.errors import ConfigError, EventParseError, FailedOpenError, PublishError
from chalicelib.core.records import envelope_of
from mfawatch.deploy.templates import load_stage_config
from tests.conftest import load_event
from tests.factory import on_failure_record, sqs_event_record
from tests.support.wire import receive_all

ACCOUNT = "111122223333"  # the account of the dev stage's topic ARN in .chalice/config.json
TOPIC = "mfawatch-dev-alerts"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, aws_credentials: None) -> Iterator[dict[str, Any]]:
    monkeypatch.setenv("MOTO_ACCOUNT_ID", ACCOUNT)
    with mock_aws():
        sns = boto3.client("sns", region_name="us-east-1")
        sqs = boto3.client("sqs", region_name="us-east-1")
        topic_arn = sns.create_topic(Name=TOPIC)["TopicArn"]
        queue_url = sqs.create_queue(QueueName="subscriber")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
        # The dev stage routes HIGH/CRITICAL alerts, escalations and storms to a pager too.
        pager_arn = sns.create_topic(Name="mfawatch-dev-pager")["TopicArn"]
        pager_url = sqs.create_queue(QueueName="pager")["QueueUrl"]
        pager_queue = sqs.get_queue_attributes(QueueUrl=pager_url, AttributeNames=["QueueArn"])
        sns.subscribe(
            TopicArn=pager_arn,
            Protocol="sqs",
            Endpoint=pager_queue["Attributes"]["QueueArn"],
            Attributes={"RawMessageDelivery": "true"},
        )
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        create_state_table(dynamodb, "mfawatch-dev-state")
        yield {
            "sns": sns,
            "sqs": sqs,
            "dynamodb": dynamodb,
            "topic_arn": topic_arn,
            "queue_url": queue_url,
            "pager_url": pager_url,
        }


@pytest.fixture
def client(aws: dict[str, Any], project_dir: Path) -> Iterator[Client]:
    import app as chalice_app

    chalice_app._wiring = None  # fresh boto3 clients and service inside this moto context
    chalice_app._parked = None
    with Client(chalice_app.app, stage_name="dev", project_dir=str(project_dir)) as test_client:
        yield test_client
    chalice_app._wiring = None
    chalice_app._parked = None


def _received(aws: dict[str, Any]) -> list[dict[str, Any]]:
    return receive_all(aws["sqs"], aws["queue_url"])


def test_every_rule_has_a_registered_handler() -> None:
    import app as chalice_app
    from chalicelib.core.rules import load_bundle

    rules = load_bundle()
    assert {rule.handler_name for rule in rules} <= set(chalice_app.app.handler_map)
    deployed = {
        s.name: s.event_pattern
        for s in chalice_app.app.event_sources
        if hasattr(s, "event_pattern")
    }
    assert len(deployed) == len(rules) + 1  # and the heartbeat
    for rule in rules:
        assert deployed[rule.handler_name] == dict(rule.event_pattern)
    assert deployed["on_heartbeat"] == HEARTBEAT_PATTERN


def test_failed_mfa_reaches_the_subscriber_with_text_and_attributes(
    client: Client, aws: dict[str, Any]
) -> None:
    event = envelope_of(load_event("iam-consolelogin-failure-mfa-yes"))
    client.lambda_.invoke("on_iam_console_mfa_failure", event)
    (body,) = _received(aws)
    assert body["TopicArn"] == aws["topic_arn"]
    assert body["Subject"] == "[HIGH] Failed MFA sign-in for IAM user ops-admin from 203.0.113.7"
    document = json.loads(body["Message"])  # SQS subscribers get the alert document
    assert document["schema_version"] == "1"
    assert document["principal"] == {"name": "ops-admin", "type": "IAMUser"}
    assert document["account"] == {"id": "111122223333", "name": "security-tooling"}
    assert document["event"]["event_id"] == "0b6a3c1e-5a7d-4c43-9f1e-6f4d2a9b8c01"
    assert document["event"]["mfa_used"] is True
    assert document["runbook"][0].startswith("Ask the user")
    assert document["notes"] == []
    # HIGH: the pager output gets it too (raw delivery: the body is the document itself).
    pager = aws["sqs"].receive_message(QueueUrl=aws["pager_url"])["Messages"]
    assert [json.loads(m["Body"])["id"] for m in pager] == [document["id"]]
    attributes = {k: v["Value"] for k, v in body["MessageAttributes"].items()}
    assert attributes == {
        "rule": "iam-console-mfa-failure",
        "severity": "HIGH",
        "kind": "alert",
        "account": "111122223333",
        "region": "us-east-1",
        "principal_type": "IAMUser",
    }


def test_identity_center_failure_in_the_new_format_waits_for_the_step_naming_its_user(
    client: Client, aws: dict[str, Any]
) -> None:
    event = envelope_of(load_event("idc-new-credentialverification-totp-failure"))
    client.lambda_.invoke("on_identity_center_mfa_failure", event)
    assert _received(aws) == [], "it names nobody: it waits for the step that names the user"
    # The password step of the same sign-in (same AuthWorkflowID), processed after it.
    step = envelope_of(load_event("idc-new-credentialchallenge-password"))
    client.lambda_.invoke("on_identity_center_sign_in_steps", step)
    (body,) = _received(aws)
    assert body["Subject"] == (
        "[HIGH] Failed Identity Center MFA (TOTP) for jane@example.com from 198.51.100.23"
    )
    document = json.loads(body["Message"])
    assert document["event"]["auth_workflow_id"] == "6d1e7c2a-9f3b-4e8d-a1c5-2b7f0e9d4a11"
    assert body["MessageAttributes"]["principal_type"]["Value"] == "IdentityCenterUser"


def test_root_failure_from_an_eventbridge_envelope(client: Client, aws: dict[str, Any]) -> None:
    client.lambda_.invoke(
        "on_root_console_failure", load_event("eventbridge-root-consolelogin-failure")
    )
    (body,) = _received(aws)
    assert body["Subject"] == "[HIGH] Failed root sign-in to account 111122223333 from 192.0.2.44"
    assert body["MessageAttributes"]["principal_type"]["Value"] == "Root"


def test_mfa_device_removal(client: Client, aws: dict[str, Any]) -> None:
    client.lambda_.invoke(
        "on_mfa_device_removed", envelope_of(load_event("iam-deactivatemfadevice"))
    )
    (body,) = _received(aws)
    assert (
        body["Subject"]
        == "[HIGH] MFA device ops-admin-phone removed by ops-admin (DeactivateMFADevice)"
    )
    assert json.loads(body["Message"])["event"]["target_user"] == "ops-admin"


def test_publish_failure_raises_so_lambda_retries(client: Client, aws: dict[str, Any]) -> None:
    aws["sns"].delete_topic(TopicArn=aws["topic_arn"])
    with pytest.raises(PublishError, match="mfawatch-dev-alerts"):
        client.lambda_.invoke(
            "on_iam_console_mfa_failure",
            envelope_of(load_event("iam-consolelogin-failure-mfa-yes")),
        )


def test_missing_topic_setting_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib.core.config import settings_from_env

    with pytest.raises(ConfigError, match="MFAWATCH_TOPIC_ARN"):
        settings_from_env({})
    with pytest.raises(ConfigError, match="MFAWATCH_ACCOUNT_NAMES"):
        settings_from_env(
            {"MFAWATCH_TOPIC_ARN": "arn:aws:sns:us-east-1:1:t", "MFAWATCH_ACCOUNT_NAMES": "[1]"}
        )
    assert os.environ.get("MFAWATCH_TOPIC_ARN") is None


def _failed_mfa(event_id: str, second: int) -> dict[str, Any]:
    record = load_event("iam-consolelogin-failure-mfa-yes")
    record["eventID"] = event_id
    record["eventTime"] = f"2026-11-02T09:00:{second:02d}Z"
    return envelope_of(record)


def test_duplicate_delivery_publishes_once(client: Client, aws: dict[str, Any]) -> None:
    event = envelope_of(load_event("iam-consolelogin-failure-mfa-yes"))
    for _ in range(3):
        client.lambda_.invoke("on_iam_console_mfa_failure", event)
    assert [b["Subject"][:40] for b in _received(aws)] == [
        "[HIGH] Failed MFA sign-in for IAM user o"
    ]


def _tick(client: Client) -> dict[str, Any]:
    event: dict[str, Any] = client.events.generate_cw_event(
        source="aws.events",
        detail_type="Scheduled Event",
        detail={},
        resources=["arn:aws:events:us-east-1:111122223333:rule/mfawatch-dev-send_due_summaries"],
    )
    return event


def test_repeats_are_counted_then_summarized_by_the_scheduled_handler(
    client: Client, aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The wall clock drives the handlers: writes are taken as settled at once (no 90 s wait).
    monkeypatch.setenv("MFAWATCH_SETTLE_SECONDS", "0")
    for second in range(5):
        client.lambda_.invoke("on_iam_console_mfa_failure", _failed_mfa(f"e-{second}", second))
    first = _received(aws)
    assert len(first) == 1 and first[0]["MessageAttributes"]["kind"]["Value"] == "alert"
    # The events are from 2026-11-02: their 15-minute window has long closed by the wall clock.
    client.lambda_.invoke("send_due_summaries", _tick(client))
    (summary,) = _received(aws)
    assert summary["Subject"] == (
        "[HIGH] summary: 4 more failed MFA attempts for ops-admin from 203.0.113.7"
    )
    document = json.loads(summary["Message"])
    assert document["summary"].startswith(
        "4 more failed MFA attempts for ops-admin from 203.0.113.7 between 09:00:01 and "
        "09:00:04 UTC"
    )
    assert document["count"] == 4 and document["event_ids"] == ["e-1", "e-2", "e-3", "e-4"]
    assert summary["MessageAttributes"]["kind"]["Value"] == "summary"
    client.lambda_.invoke("send_due_summaries", _tick(client))
    assert _received(aws) == []


def test_state_store_failure_fails_open_with_a_note(client: Client, aws: dict[str, Any]) -> None:
    aws["dynamodb"].delete_table(TableName="mfawatch-dev-state")
    event = envelope_of(load_event("iam-consolelogin-failure-mfa-yes"))
    # The marked copy goes out, and the invocation fails so that Lambda retries the event.
    with pytest.raises(FailedOpenError):
        client.lambda_.invoke("on_iam_console_mfa_failure", event)
    (body,) = _received(aws)
    assert body["Subject"] == "[HIGH] Failed MFA sign-in for IAM user ops-admin from 203.0.113.7"
    document = json.loads(body["Message"])
    assert document["id"].startswith("failopen:iam-console-mfa-failure:")
    assert document["count"] == 0, "the copy counts no event: the deduplicated path will"
    assert document["notes"][0].startswith("dedup unavailable: DynamoDB PutItem mfawatch-dev-state")


def test_retry_after_publish_failure_sends_once(client: Client, aws: dict[str, Any]) -> None:
    event = envelope_of(load_event("iam-consolelogin-failure-mfa-yes"))
    attributes = aws["sns"].get_topic_attributes(TopicArn=aws["topic_arn"])
    aws["sns"].delete_topic(TopicArn=aws["topic_arn"])
    with pytest.raises(PublishError):
        client.lambda_.invoke("on_iam_console_mfa_failure", event)
    assert attributes["Attributes"]["TopicArn"] == aws["topic_arn"]
    aws["sns"].create_topic(Name=TOPIC)
    queue_arn = aws["sqs"].get_queue_attributes(
        QueueUrl=aws["queue_url"], AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    aws["sns"].subscribe(TopicArn=aws["topic_arn"], Protocol="sqs", Endpoint=queue_arn)
    client.lambda_.invoke("on_iam_console_mfa_failure", event)  # Lambda's retry
    client.lambda_.invoke("on_iam_console_mfa_failure", event)  # a late duplicate
    assert len(_received(aws)) == 1


def test_what_lambda_calls_is_bound_on_the_module_for_every_function(
    client: Client, aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lambda calls ``getattr(app, name)(event, context)``, not Chalice's handler_map."""
    import app as chalice_app

    for name, value in load_stage_config("dev").environment("on_iam_console_mfa_failure").items():
        monkeypatch.setenv(name, value)  # what chalice.test.Client sets around its invokes

    names = sorted(chalice_app.app.handler_map)
    assert [n for n in names if not callable(getattr(chalice_app, n, None))] == []
    resolved = {name: getattr(chalice_app, name) for name in names}  # as the runtime does
    event = envelope_of(load_event("iam-consolelogin-failure-mfa-yes"))
    assert resolved["on_iam_console_mfa_failure"](event, None) is None
    (body,) = _received(aws)
    assert body["Subject"] == "[HIGH] Failed MFA sign-in for IAM user ops-admin from 203.0.113.7"
    with pytest.raises(EventParseError, match=r"not an EventBridge event \(missing version"):
        resolved["on_root_console_failure"]({"hello": "world"}, None)
    no_resources = {k: v for k, v in event.items() if k != "resources"}
    with pytest.raises(EventParseError, match=r"\(missing resources\)"):
        resolved["on_root_console_failure"](no_resources, None)


class _Context:
    """What Lambda passes to a handler, as far as the consumer reads it (chalice.test's own
    context gives every function 3 s, whatever the stage's lambda_timeout)."""

    aws_request_id = "c0ffee00-0000-4000-8000-000000000001"
    function_name = "mfawatch-dev-consume_parked_events"

    def __init__(self, seconds_left: float) -> None:
        self.seconds_left = seconds_left

    def get_remaining_time_in_millis(self) -> int:
        return int(self.seconds_left * 1000)


def _parked_root_failure() -> dict[str, Any]:
    queue_arn = f"arn:aws:sqs:us-east-1:{ACCOUNT}:mfawatch-dev-failed-events"
    function_arn = (
        f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:mfawatch-dev-on_root_console_failure"
    )
    event = envelope_of(load_event("root-consolelogin-failure-mfa-yes"))
    body = json.dumps(on_failure_record(event, function_arn, condition="EventAgeExceeded"))
    return {"Records": [sqs_event_record(body, queue_arn, "m-1")]}


def test_the_consumer_replays_a_parked_event_through_the_rule_path(
    client: Client, aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import app as chalice_app

    for name, value in load_stage_config("dev").environment().items():
        monkeypatch.setenv(name, value)
    # What Lambda calls for the function (app.<name>), with 30 s left as its timeout gives.
    response = chalice_app.consume_parked_events(_parked_root_failure(), _Context(30))
    assert response == {"batchItemFailures": []}
    (received,) = _received(aws)
    assert received["Subject"].startswith("[HIGH] Failed root sign-in ")


def test_the_consumer_hands_back_what_it_has_no_time_for(
    client: Client, aws: dict[str, Any]
) -> None:
    # chalice.test's context: 3 s left, less than one record's budget.
    response = client.lambda_.invoke("consume_parked_events", _parked_root_failure())
    assert response.payload == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
    assert _received(aws) == []
