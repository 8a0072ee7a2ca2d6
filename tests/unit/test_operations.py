"""The operator's view: EMF metrics, JSON logs, heartbeats, the SNS dry run."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from chalicelib.core.constants import HEARTBEAT_OVERDUE_SECONDS
from chalicelib.core.errors import ConfigError, PublishError, StateStoreError
from chalicelib.core.records import envelope_of
from chalicelib.core.rules import RuleSet
from chalicelib.core.state import Condition, Item, MemoryStore
from chalicelib.pipeline.heartbeats import PIPELINE_HEARTBEATS
from chalicelib.pipeline.observability import EmfMetrics, JsonFormatter, MemoryMetrics
from chalicelib.pipeline.service import AlertService, MemoryCanary, MemoryPublisher
from mfawatch.cli import main
from tests.conftest import load_event

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def test_emf_lines_are_cloudwatch_metrics() -> None:
    lines: list[str] = []
    metrics = EmfMetrics(write=lines.append, clock=lambda: 1_700_000_000.0)
    metrics.count("Notifications", Kind="alert")
    metrics.count("Notifications", Kind="alert")
    metrics.count("EventsMatched", Rule="root-console-failure")
    metrics.flush()
    documents = [json.loads(line) for line in lines]
    assert len(documents) == 2
    alert = next(d for d in documents if d.get("Kind") == "alert")
    assert alert["Notifications"] == 2 and alert["Service"] == "mfawatch"
    (directive,) = alert["_aws"]["CloudWatchMetrics"]
    assert directive == {
        "Namespace": "mfawatch",
        "Dimensions": [["Service"], ["Service", "Kind"]],
        "Metrics": [{"Name": "Notifications", "Unit": "Count"}],
    }
    assert alert["_aws"]["Timestamp"] == 1_700_000_000_000
    metrics.flush()
    assert len(lines) == 2, "flush resets the counters"


def test_service_counts_matches_repeats_duplicates_and_notifications(rules: RuleSet) -> None:
    metrics = MemoryMetrics()
    service = AlertService(rules, MemoryPublisher(), metrics=metrics)
    base = load_event("iam-consolelogin-failure-mfa-yes")
    for i in (0, 1, 1):  # event 1 is delivered twice
        record = dict(base, eventID=f"e{i}", eventTime=f"2026-11-02T09:00:0{i}Z")
        service.handle("iam-console-mfa-failure", envelope_of(record), T0)
    assert metrics.total("EventsMatched") == 3
    assert metrics.total("Repeats") == 1
    assert metrics.total("Duplicates") == 1
    assert metrics.counts[("Notifications", (("Kind", "alert"),))] == 1


def test_json_logs_carry_the_alerting_context() -> None:
    record = logging.LogRecord(
        "chalicelib.pipeline.service", logging.INFO, __file__, 1, "decision %s", ("alert",), None
    )
    record.rule = "iam-console-mfa-failure"
    record.event_id = "e1"
    record.dedup_key = "111122223333|ops-admin|203.0.113.7"
    document = json.loads(JsonFormatter().format(record))
    assert document["message"] == "decision alert"
    assert document["level"] == "INFO"
    assert (document["rule"], document["event_id"], document["dedup_key"]) == (
        "iam-console-mfa-failure",
        "e1",
        "111122223333|ops-admin|203.0.113.7",
    )


def _heartbeat(account: str, region: str, at: datetime) -> dict[str, object]:
    return {
        "version": "0",
        "id": "h",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "region": region,
        "time": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "resources": [f"arn:aws:events:{region}:{account}:rule/mfawatch-heartbeat"],
        "detail": {},
    }


def test_a_stopped_heartbeat_is_reported_once_then_its_recovery(rules: RuleSet) -> None:
    publisher = MemoryPublisher()
    metrics = MemoryMetrics()
    service = AlertService(rules, publisher, metrics=metrics)
    assert service.heartbeat(_heartbeat("444455556666", "eu-north-1", T0), T0) == []
    assert (
        metrics.counts[("Heartbeats", (("Account", "444455556666"), ("Region", "eu-north-1")))] == 1
    )
    assert service.tick(T0 + timedelta(minutes=20)) == []  # not overdue yet
    late = T0 + timedelta(seconds=HEARTBEAT_OVERDUE_SECONDS + 60)
    (missing,) = service.tick(late)
    assert missing.kind == "heartbeat" and missing.severity == "HIGH"
    assert missing.title == "Sign-in events from account 444455556666 eu-north-1 stopped arriving"
    assert "since 2026-11-02 09:00:00 UTC" in missing.summary
    assert service.tick(late + timedelta(hours=1)) == []  # once per outage
    back = late + timedelta(hours=2)
    (recovered,) = service.heartbeat(_heartbeat("444455556666", "eu-north-1", back), back)
    assert recovered.title == "Sign-in events from account 444455556666 eu-north-1 arrive again"
    assert recovered.severity == "LOW"


class _StoreDown(MemoryStore):
    """A table that fails every write (after botocore's retries), while ``down``."""

    down = False

    def put(self, key: str, item: Item, now: float, condition: Condition | None = None) -> None:
        if self.down:
            raise StateStoreError("DynamoDB PutItem failed (test)")
        super().put(key, item, now, condition)


def _heartbeats_counted(metrics: MemoryMetrics) -> int:
    return metrics.total("Heartbeats")


def test_the_heartbeat_metric_counts_only_once_the_store_and_sns_worked(rules: RuleSet) -> None:
    # Heartbeats must stop while the table or SNS fails (the alarm's metric: the next test).
    store = _StoreDown()
    publisher = MemoryPublisher(failing={"alerts"})
    metrics = MemoryMetrics()
    service = AlertService(rules, publisher, store, metrics=metrics)
    store.down = True
    with pytest.raises(StateStoreError):
        service.heartbeat(_heartbeat("444455556666", "eu-north-1", T0), T0)
    assert _heartbeats_counted(metrics) == 0
    store.down = False
    service.heartbeat(_heartbeat("444455556666", "eu-north-1", T0), T0)
    assert _heartbeats_counted(metrics) == 1
    # Reported missing, then back while SNS fails: the recovery notice cannot be published.
    late = T0 + timedelta(seconds=HEARTBEAT_OVERDUE_SECONDS + 60)
    publisher.failing.clear()
    service.tick(late)
    publisher.failing.add("alerts")
    with pytest.raises(PublishError):
        service.heartbeat(_heartbeat("444455556666", "eu-north-1", late), late)
    assert _heartbeats_counted(metrics) == 1


CENTRAL = ("111122223333", "us-east-1")


def test_the_pipeline_heartbeat_counts_only_once_the_store_write_and_the_canary_publish_succeeded(
    rules: RuleSet,
) -> None:
    # The stage's heartbeat alarm watches PipelineHeartbeats (missing data breaching): it must
    # be counted when the table and SNS both work, and never when either fails.
    store = _StoreDown()
    canary = MemoryCanary()
    metrics = MemoryMetrics()
    service = AlertService(rules, MemoryPublisher(), store, metrics=metrics, canary=canary)
    beat = _heartbeat(*CENTRAL, T0)

    assert service.pipeline_heartbeat(beat, T0) == []
    assert metrics.total(PIPELINE_HEARTBEATS) == 1
    (message,) = canary.sent
    assert json.loads(message) == {
        "mfawatch": "canary",
        "account": "111122223333",
        "region": "us-east-1",
        "time": "2026-11-02T09:00:00Z",
        "purpose": "proves that the stage's functions can publish with the stage key; "
        "the topic has no subscribers",
    }

    # SNS (or the key, or sns:Publish) fails: the store was written, the metric is not counted.
    later = T0 + timedelta(minutes=15)
    canary.failing = True
    with pytest.raises(PublishError):
        service.pipeline_heartbeat(_heartbeat(*CENTRAL, later), later)
    assert metrics.total(PIPELINE_HEARTBEATS) == 1
    assert metrics.total("Heartbeats") == 2, "the state write itself succeeded"

    # The table fails: no canary is published and nothing is counted.
    canary.failing = False
    store.down = True
    later += timedelta(minutes=15)
    with pytest.raises(StateStoreError):
        service.pipeline_heartbeat(_heartbeat(*CENTRAL, later), later)
    assert len(canary.sent) == 1
    assert metrics.total(PIPELINE_HEARTBEATS) == 1

    # Both work again.
    store.down = False
    later += timedelta(minutes=15)
    service.pipeline_heartbeat(_heartbeat(*CENTRAL, later), later)
    assert metrics.total(PIPELINE_HEARTBEATS) == 2
    assert json.loads(canary.sent[-1])["time"] == "2026-11-02T09:45:00Z"


def test_a_member_heartbeat_never_counts_the_pipeline_heartbeat(rules: RuleSet) -> None:
    # A member stack in the central account and Region sends the same account and Region
    # through on_heartbeat: it proves forwarding, not SNS, so the alarm's metric stays at zero.
    canary = MemoryCanary()
    metrics = MemoryMetrics()
    service = AlertService(rules, MemoryPublisher(), metrics=metrics, canary=canary)
    service.heartbeat(_heartbeat(*CENTRAL, T0), T0)
    assert metrics.total("Heartbeats") == 1
    assert (metrics.total(PIPELINE_HEARTBEATS), canary.sent) == (0, [])


def test_a_stage_without_a_canary_topic_never_counts_the_pipeline_heartbeat(
    rules: RuleSet,
) -> None:
    metrics = MemoryMetrics()
    service = AlertService(rules, MemoryPublisher(), metrics=metrics)
    with pytest.raises(ConfigError, match="MFAWATCH_CANARY_TOPIC_ARN"):
        service.pipeline_heartbeat(_heartbeat(*CENTRAL, T0), T0)
    assert metrics.total(PIPELINE_HEARTBEATS) == 0


def test_sns_dry_run_prints_the_exact_publish_parameters() -> None:
    result = CliRunner().invoke(
        main, ["replay", "--jobs", "1", "--output", "sns", "--stage", "dev"]
    )
    assert result.exit_code == 0, result.output
    publishes = [json.loads(line) for line in result.stdout.splitlines()]
    first = publishes[0]
    assert set(first) == {
        "Output",
        "TopicArn",
        "Subject",
        "Message",
        "MessageStructure",
        "MessageAttributes",
    }
    assert first["Output"] == "alerts"
    assert first["TopicArn"] == "arn:aws:sns:us-east-1:111122223333:mfawatch-dev-alerts"
    assert first["MessageStructure"] == "json"
    bodies = json.loads(first["Message"])
    assert bodies["email"].startswith("[HIGH] Failed MFA sign-in for IAM user ops-admin")
    assert json.loads(bodies["sqs"])["schema_version"] == "1"
    outputs = [p["Output"] for p in publishes]
    assert outputs.count("alerts") == 24  # every notification of the demo
    assert "pager" in outputs  # HIGH alerts and escalations, not summaries
    pager_kinds = {
        p["MessageAttributes"]["kind"]["StringValue"] for p in publishes if p["Output"] == "pager"
    }
    assert pager_kinds == {"alert", "escalation"}


def test_unknown_stage_is_a_clear_error() -> None:
    result = CliRunner().invoke(main, ["replay", "--stage", "nope"])
    assert result.exit_code == 2
    assert "no stage 'nope'" in result.output
