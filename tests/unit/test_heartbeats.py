"""Heartbeats: a member account's stopped and resumed, the stage's own counted only once the
store write and the canary publish worked."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from chalicelib.core.constants import HEARTBEAT_OVERDUE_SECONDS
from chalicelib.core.errors import ConfigError, PublishError, StateStoreError
from chalicelib.core.rules import RuleSet
from chalicelib.core.state import Condition, Item, MemoryStore
from chalicelib.pipeline.heartbeats import PIPELINE_HEARTBEATS
from chalicelib.pipeline.observability import MemoryMetrics
from chalicelib.pipeline.service import AlertService, MemoryCanary, MemoryPublisher
from tests.support.events import BASE as T0


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
