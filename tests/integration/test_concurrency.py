"""Exactly once under concurrency: 16 "Lambda invocations" (threads, each with its own boto3
client, DynamoStateStore and AlertService) deliver the same events and overlapping incidents to
one DynamoDB table served by moto_server on 127.0.0.1."""

from __future__ import annotations

import random
import re
import threading
import time
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.config import Config

from chalicelib.aws.dynamo import DynamoStateStore, create_state_table
from chalicelib.core.config import Settings, Threshold
from chalicelib.core.errors import EventInProgressError
from chalicelib.core.notifications import (
    KIND_ALERT,
    KIND_ESCALATION,
    KIND_STORM,
    KIND_SUMMARY,
    Notification,
)
from chalicelib.core.records import envelope_of
from chalicelib.core.rules import RuleSet, load_bundle
from chalicelib.pipeline.service import AlertService, MemoryPublisher
from tests.conftest import load_event

pytestmark = pytest.mark.integration

THREADS = 16
RULE = "iam-console-mfa-failure"
BASE = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
#: (user, source IP) of each incident; u0 has two incidents (two IPs): 12 failures in 84 s.
INCIDENTS = [("u0", "203.0.113.1"), ("u0", "203.0.113.2"), ("u1", "203.0.113.1"),
             ("u2", "198.51.100.3"), ("u3", "198.51.100.4")]  # fmt: skip
EVENTS_PER_INCIDENT = 6


# Every publish call, thread-safe: chalicelib.pipeline.service.MemoryPublisher.published.
CollectingPublisher = MemoryPublisher


def dynamodb_client(endpoint: str) -> Any:
    return boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 2, "mode": "standard"}, max_pool_connections=4),
    )


def failed_mfa(event_id: str, user: str, ip: str, seconds: float) -> dict[str, Any]:
    record = load_event("iam-consolelogin-failure-mfa-yes")
    record["eventID"] = event_id
    record["userIdentity"]["userName"] = user
    record["sourceIPAddress"] = ip
    record["eventTime"] = (BASE + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return envelope_of(record)


def incident_events() -> dict[str, list[dict[str, Any]]]:
    """Dedup key -> its events (distinct eventIDs, times 7 s apart, interleaved across keys)."""
    events: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for n in range(EVENTS_PER_INCIDENT):
        for k, (user, ip) in enumerate(INCIDENTS):
            seconds = 7.0 * (n * len(INCIDENTS) + k) / len(INCIDENTS) * 2
            events[f"111122223333|{user}|{ip}"].append(
                failed_mfa(f"evt-{k}-{n}-{uuid.uuid4().hex[:8]}", user, ip, seconds)
            )
    return events


def deliver_concurrently(
    endpoint: str,
    table: str,
    rules: RuleSet,
    settings: Settings,
    *,
    publisher: CollectingPublisher,
    events: list[dict[str, Any]],
    now: datetime,
) -> Counter[str]:
    """Every thread delivers every event (in its own order): 16 concurrent deliveries each.
    An EventInProgressError is retried after a short sleep, as Lambda's async retry would."""
    outcomes: Counter[str] = Counter()
    failures: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(THREADS)

    def invocation(seed: int) -> None:
        service = AlertService(
            rules, publisher, DynamoStateStore(dynamodb_client(endpoint), table), settings
        )
        order = list(events)
        random.Random(seed).shuffle(order)
        start.wait()
        try:
            for event in order:
                for attempt in range(400):
                    try:
                        service.handle(RULE, event, now)
                    except EventInProgressError:
                        with lock:
                            outcomes["in_progress"] += 1
                        time.sleep(0.005 * min(attempt + 1, 10))
                        continue
                    with lock:
                        outcomes["handled"] += 1
                    break
                else:
                    raise AssertionError("still in progress after 400 retries")
        except BaseException as exc:
            with lock:
                failures.append(exc)
            raise

    threads = [threading.Thread(target=invocation, args=(seed,)) for seed in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a delivery thread hung"
    assert failures == []
    return outcomes


@pytest.fixture
def table(moto_server: str) -> str:
    name = f"mfawatch-{uuid.uuid4().hex[:8]}"
    create_state_table(dynamodb_client(moto_server), name)
    return name


def _check_once(published: list[Notification]) -> None:
    ids = Counter(n.id for n in published)
    assert {i: c for i, c in ids.items() if c > 1} == {}, "a notification was published twice"


def _run(
    endpoint: str, table: str, settings: Settings
) -> tuple[dict[str, list[dict[str, Any]]], CollectingPublisher, Counter[str]]:
    rules = load_bundle()
    publisher = CollectingPublisher()
    by_key = incident_events()
    events = [e for group in by_key.values() for e in group]
    now = BASE + timedelta(minutes=2)  # processing time: all events are in one 15-minute window
    outcomes = deliver_concurrently(
        endpoint, table, rules, settings, publisher=publisher, events=events, now=now
    )
    assert outcomes["handled"] == THREADS * len(events)
    closer = AlertService(
        rules, publisher, DynamoStateStore(dynamodb_client(endpoint), table), settings
    )
    closer.tick(BASE + timedelta(minutes=20), force=True)
    closer.flush(BASE + timedelta(minutes=20))
    return by_key, publisher, outcomes


def test_sixteen_concurrent_invocations_publish_one_alert_per_incident(
    moto_server: str, table: str
) -> None:
    settings = Settings(topic_rate=Threshold(10000, 5), principal_rate=Threshold(10000, 5))
    by_key, publisher, _ = _run(moto_server, table, settings)
    _check_once(publisher.published)
    for dedup_key, group in by_key.items():
        mine = [n for n in publisher.published if n.dedup_key == dedup_key]
        alerts = [n for n in mine if n.kind == KIND_ALERT]
        summaries = [n for n in mine if n.kind == KIND_SUMMARY]
        assert len(alerts) == 1, (dedup_key, [n.id for n in alerts])
        assert len(summaries) == 1, (dedup_key, [n.id for n in summaries])
        assert alerts[0].count + summaries[0].count == EVENTS_PER_INCIDENT
        covered = [*alerts[0].event_ids, *summaries[0].event_ids]
        expected = sorted(e["detail"]["eventID"] for e in group)
        assert sorted(covered) == expected, "every event exactly once"
        assert summaries[0].title.startswith(f"{EVENTS_PER_INCIDENT - 1} more failed MFA attempts")
    # u0 failed 12 times within two minutes: one brute-force escalation, never two.
    escalations = [n for n in publisher.published if n.kind == KIND_ESCALATION]
    assert [n.principal for n in escalations] == ["u0"]
    # The count is the burst as the escalating event saw it: 10, or more when concurrent
    # failures of u0 were written just before it decided.
    title = re.fullmatch(
        r"Possible MFA brute force / fatigue: (\d+) failed MFA attempts for u0 in 5 minutes",
        escalations[0].title,
    )
    assert title is not None and 10 <= int(title.group(1)) <= 12, escalations[0].title
    assert len(publisher.published) == 2 * len(by_key) + 1


def test_storm_digest_accounting_under_concurrency(moto_server: str, table: str) -> None:
    settings = Settings(topic_rate=Threshold(3, 5), principal_rate=Threshold(2, 5))
    by_key, publisher, _ = _run(moto_server, table, settings)
    _check_once(publisher.published)

    def counted(n: Notification) -> bool:
        return n.kind in (KIND_ALERT, KIND_SUMMARY, KIND_STORM)

    total = sum(n.count for n in publisher.published if counted(n))
    distinct = sum(len(group) for group in by_key.values())
    assert total == distinct
    covered = Counter(e for n in publisher.published if counted(n) for e in n.event_ids)
    assert {e: c for e, c in covered.items() if c > 1} == {}
    assert len(covered) == distinct
    kinds = Counter(n.kind for n in publisher.published)
    assert kinds[KIND_ALERT] <= 3, "the topic bucket admits at most 3"
    assert kinds[KIND_STORM] >= 1
    (storm, *_) = [n for n in publisher.published if n.kind == KIND_STORM]
    assert storm.title.startswith(("Alert storm: ", "Alert storm ended: ", "Held by rate limit: "))
