"""The stage's own heartbeat in moto: its state item in DynamoDB, its canary on the stage's canary
topic (each Publish counted at the wire, by topic), and ``PipelineHeartbeats`` only when both
worked. moto does not enforce KMS, so what the canary adds for the key (a role or key policy that
no longer lets the function use it) is held by the template tests instead."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import boto3
import pytest
from chalice.test import Client
from moto import mock_aws

import app as app_module
from chalicelib.aws.dynamo import DynamoStateStore, create_state_table
from chalicelib.aws.sns import SnsCanary, SnsPublisher
from chalicelib.core.config import Settings
from chalicelib.core.errors import PublishError
from chalicelib.core.rules import load_bundle
from chalicelib.pipeline.heartbeats import PIPELINE_HEARTBEATS, heartbeat_key
from chalicelib.pipeline.observability import MemoryMetrics
from chalicelib.pipeline.service import AlertService
from tests.support.wire import dev_settings

ACCOUNT = "111122223333"  # the account of the dev stage's ARNs (tests/stage/config.json)
REGION = "us-east-1"
NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


class SnsWire:
    """Counts the Publish requests a boto3 SNS client sends, by topic, as they leave it."""

    def __init__(self, events: Any) -> None:
        self.publishes: Counter[str] = Counter()
        events.register("before-send.sns.Publish", self._before_send)

    def _before_send(self, request: Any, **_: Any) -> None:
        body = request.body.decode() if isinstance(request.body, bytes) else request.body
        self.publishes[parse_qs(body)["TopicArn"][0]] += 1


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, aws_credentials: None) -> Iterator[dict[str, Any]]:
    """The dev stage's table and topics, the canary encrypted with a KMS key like the stage's."""
    monkeypatch.setenv("MOTO_ACCOUNT_ID", ACCOUNT)
    with mock_aws():
        sns = boto3.client("sns", region_name=REGION)
        key = boto3.client("kms", region_name=REGION).create_key()["KeyMetadata"]["Arn"]
        for name in ("alerts", "pager"):
            sns.create_topic(Name=f"mfawatch-dev-{name}", Attributes={"KmsMasterKeyId": key})
        canary = sns.create_topic(Name="mfawatch-dev-canary", Attributes={"KmsMasterKeyId": key})
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        create_state_table(dynamodb, "mfawatch-dev-state")
        yield {"sns": sns, "dynamodb": dynamodb, "canary_arn": canary["TopicArn"]}


def _scheduled(at: datetime = NOW) -> dict[str, Any]:
    """The scheduled event of the app's own heartbeat rule."""
    return {
        "version": "0",
        "id": "hb-1",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "region": REGION,
        "time": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "resources": [f"arn:aws:events:{REGION}:{ACCOUNT}:rule/mfawatch-dev-heartbeat-event"],
        "detail": {},
    }


def _service(
    aws: dict[str, Any], settings: Settings
) -> tuple[AlertService, SnsWire, MemoryMetrics]:
    """The service as app.wiring() builds it, on clients whose requests the wire counts."""
    sns = boto3.client("sns", region_name=REGION, config=app_module.SNS_CLIENT_CONFIG)
    wire = SnsWire(sns.meta.events)
    store = DynamoStateStore(boto3.client("dynamodb", region_name=REGION), settings.table_name)
    metrics = MemoryMetrics()
    service = AlertService(
        load_bundle(),
        SnsPublisher(sns, settings),
        store,
        settings,
        metrics=metrics,
        canary=SnsCanary(sns, settings.canary_topic_arn),
    )
    return service, wire, metrics


def test_the_heartbeat_writes_its_item_and_publishes_one_canary_then_counts(
    aws: dict[str, Any],
) -> None:
    settings = dev_settings()
    assert settings.canary_topic_arn == aws["canary_arn"]
    service, wire, metrics = _service(aws, settings)
    assert service.pipeline_heartbeat(_scheduled(), NOW) == []
    assert wire.publishes == {aws["canary_arn"]: 1}, "one Publish, to the canary topic only"
    item = aws["dynamodb"].get_item(
        TableName="mfawatch-dev-state", Key={"pk": {"S": heartbeat_key(ACCOUNT, REGION)}}
    )
    assert float(item["Item"]["last_seen"]["N"]) == NOW.timestamp()
    assert metrics.total(PIPELINE_HEARTBEATS) == 1


def test_a_canary_that_cannot_be_published_stops_the_pipeline_heartbeat(
    aws: dict[str, Any],
) -> None:
    settings = dev_settings()
    aws["sns"].delete_topic(TopicArn=aws["canary_arn"])  # or its key, or sns:Publish, is gone
    service, wire, metrics = _service(aws, settings)
    with pytest.raises(PublishError, match=r"canary publish to .*mfawatch-dev-canary failed"):
        service.pipeline_heartbeat(_scheduled(), NOW)
    assert wire.publishes == {aws["canary_arn"]: 1}, "sent once: the SNS client does not retry"
    assert metrics.total(PIPELINE_HEARTBEATS) == 0


def test_the_scheduled_handler_publishes_the_canary_and_writes_the_alarms_metric(
    aws: dict[str, Any],
    project_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The app's own clients, built by wiring() from the dev stage's environment: the wire hook
    # sits on the default session they are made from.
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    boto3.setup_default_session(region_name=REGION)
    assert boto3.DEFAULT_SESSION is not None
    wire = SnsWire(boto3.DEFAULT_SESSION.events)
    monkeypatch.setattr(app_module, "_wiring", None)
    with Client(app_module.app, stage_name="dev", project_dir=str(project_dir)) as client:
        client.lambda_.invoke("heartbeat", _scheduled(datetime.now(UTC)))
    assert wire.publishes == {aws["canary_arn"]: 1}
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "_aws" in line]
    assert [d for d in emitted if d.get(PIPELINE_HEARTBEATS) == 1], emitted
