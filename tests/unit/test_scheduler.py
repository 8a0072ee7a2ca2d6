"""The scheduler on the in-memory store (replay's store): isolation of failures, parking of
unknown references, bad input, bounded state."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.core.config import Settings, Threshold
from chalicelib.core.errors import StateStoreError
from chalicelib.core.notifications import KIND_ALERT, KIND_STORM, KIND_SUMMARY
from chalicelib.core.rules import RuleSet, load_bundle
from chalicelib.core.state import MemoryStore, due_mark
from chalicelib.pipeline.observability import MemoryMetrics
from chalicelib.pipeline.service import AlertService, MemoryPublisher
from tests.support.properties import BASE, IAM_RULE, failed_sign_in
from tests.support.simulation import at, iam_failure
from tests.support.simulation import settings as simulation_settings

RULES: RuleSet = load_bundle()


class FailingGet(MemoryStore):
    """A store whose reads of chosen keys fail (a throttled or broken item)."""

    def __init__(self) -> None:
        super().__init__()
        self.broken: set[str] = set()

    def get(self, key: str, now: float) -> Any:
        if key in self.broken:
            raise StateStoreError(f"DynamoDB GetItem {key}: throttled (test)")
        return super().get(key, now)


def test_one_failing_item_does_not_stop_the_scheduler_run() -> None:
    store = FailingGet()
    publisher = MemoryPublisher()
    service = AlertService(RULES, publisher, store)
    for user in (0, 1):
        for i in range(3):
            event = failed_sign_in(IAM_RULE, f"u{user}-{i}", i, user=user, ip=user)
            service.handle(IAM_RULE, event, at(i))
    leaders = [key for key in store.due(1e12, 0.0) if key.endswith("u0-0")]
    store.broken = set(leaders)
    sent = service.tick(at(2000))
    assert [(n.kind, n.principal) for n in sent] == [(KIND_SUMMARY, "u1")]
    assert isinstance(service.metrics, MemoryMetrics)
    assert service.metrics.total("SchedulerErrors") == 1
    store.broken.clear()  # the failing item is retried at the next run
    assert [(n.kind, n.principal) for n in service.tick(at(2060))] == [(KIND_SUMMARY, "u0")]


class LaggingDueIndex(MemoryStore):
    """A store whose due index still lists keys that are no longer due (the index is eventually
    consistent; or the run's own earlier work settled them after its query)."""

    def __init__(self) -> None:
        super().__init__()
        self.stale: list[str] = []

    def due(self, until: float, now: float) -> list[str]:
        return [*self.stale, *super().due(until, now)]


def test_a_key_listed_as_due_that_is_no_longer_due_is_left_alone() -> None:
    # Found by the fault harness's drain: a principal's key, listed as due, read without a due
    # time (settled after the query, e.g. by an earlier key's delivery in the same run):
    # KeyError, SchedulerErrors, the scheduled run failed.
    store = LaggingDueIndex()
    service = AlertService(RULES, MemoryPublisher(), store)
    store.put("prn#111122223333#alice", {"expires_at": 1e12, "escalated_by": "e1"}, 0.0)
    store.put("evt#iam-console-mfa-failure#e1", {"status": "done", "expires_at": 1e12}, 0.0)
    store.stale = ["prn#111122223333#alice", "evt#iam-console-mfa-failure#e1"]
    assert service.tick(at(60)) == []
    assert service.metrics.total("SchedulerErrors") == 0  # type: ignore[attr-defined]
    assert store.items()["prn#111122223333#alice"] == {
        "pk": "prn#111122223333#alice",
        "expires_at": 1e12,
        "escalated_by": "e1",
    }


def test_state_naming_an_unknown_rule_is_parked_not_retried_forever() -> None:
    store = MemoryStore()
    publisher = MemoryPublisher()
    service = AlertService(RULES, publisher, store)
    service.handle(IAM_RULE, failed_sign_in(IAM_RULE, "a", 0, 0, 0), at(0))
    service.handle(IAM_RULE, failed_sign_in(IAM_RULE, "b", 1, 0, 0), at(1))
    # The rule was renamed in a later deployment while its incident was open.
    renamed = RuleSet([r for r in RULES if r.id != IAM_RULE])
    later = AlertService(renamed, publisher, store)
    assert later.tick(at(2000)) == []
    assert isinstance(later.metrics, MemoryMetrics)
    assert later.metrics.total("Parked") == 1
    assert store.due(1e12, 2000.0) == [], "parked: out of the due index"
    assert later.tick(at(2060)) == []


def test_unknown_output_in_a_stored_outbox_is_parked(caplog: pytest.LogCaptureFixture) -> None:
    store = MemoryStore()
    publisher = MemoryPublisher(failing={"alerts"})
    service = AlertService(RULES, publisher, store)
    with pytest.raises(Exception, match="alerts"):
        service.handle(IAM_RULE, failed_sign_in(IAM_RULE, "a", 0, 0, 0), at(0))
    # The output "alerts" was renamed: the redelivery names an output this stage lacks.
    renamed = Settings(outputs=(Settings().routes[0].__class__("renamed", Settings().topic_arn),))
    later = AlertService(RULES, MemoryPublisher(renamed), store, renamed)
    assert later.tick(at(200)) == []
    assert isinstance(later.metrics, MemoryMetrics)
    assert later.metrics.total("Parked") == 1
    assert "no output named 'alerts'" in caplog.text


def test_expired_items_leave_the_due_index() -> None:
    store = MemoryStore()
    store.put("evt#r#old", {"status": "done", "expires_at": 10.0, **due_mark(5.0)}, 0.0)
    service = AlertService(RULES, MemoryPublisher(), store)
    service.tick(at(0))  # BASE is long after 10.0
    assert store.due(1e12, 0.0) == []


def test_a_future_event_time_is_processed_at_arrival_with_a_note() -> None:
    publisher = MemoryPublisher()
    service = AlertService(RULES, publisher, MemoryStore())
    forged = failed_sign_in(IAM_RULE, "forged", 0, 0, 0)
    forged["detail"]["eventTime"] = "9999-12-31T23:59:59Z"
    forged["time"] = "9999-12-31T23:59:59Z"
    (alert,) = service.handle(IAM_RULE, forged, at(0))
    assert alert.first_seen == at(0)
    assert any("processed at its arrival time" in note for note in alert.notes)
    # A real event of the same incident later is a repeat, summarized: not swallowed.
    service.handle(IAM_RULE, failed_sign_in(IAM_RULE, "real", 60, 0, 0), at(60))
    (summary,) = service.tick(at(60 + 900 + 200))
    assert summary.event_ids == ("real",)


def test_a_huge_user_agent_is_bounded_in_state() -> None:
    store = MemoryStore()
    service = AlertService(RULES, MemoryPublisher(), store)
    event = failed_sign_in(IAM_RULE, "ua", 0, 0, 0)
    event["detail"]["userAgent"] = "Mozilla/5.0 " + "A" * 200 * 1024
    service.handle(IAM_RULE, event, at(0))
    sizes = {key: len(json.dumps(item, default=list)) for key, item in store._items.items()}
    assert max(sizes.values()) < 16 * 1024, sizes


class FailingLeader(MemoryStore):
    """A store where the scheduler's save of a leading event's decision fails once, and that
    item then cannot be read for a while (a throttled or broken item)."""

    def __init__(self, unreadable_until: float) -> None:
        super().__init__()
        self.fail_save = False
        self.unreadable_from = float("inf")
        self.unreadable_until = unreadable_until

    def update(self, key: str, now: float, **changes: Any) -> Any:
        if self.fail_save and key.startswith("evt#") and "v" in (changes.get("add") or {}):
            self.fail_save = False
            self.unreadable_from = now
            raise StateStoreError(f"DynamoDB UpdateItem {key}: throttled (test)")
        return super().update(key, now, **changes)

    def get(self, key: str, now: float) -> Any:
        if key.startswith("evt#") and self.unreadable_from < now < self.unreadable_until:
            raise StateStoreError(f"DynamoDB GetItem {key}: throttled (test)")
        return super().get(key, now)


def test_a_summary_held_once_stays_held_when_its_save_is_retried() -> None:
    settings = Settings(topic_rate=Threshold(1, 5), principal_rate=Threshold(100, 5))
    store = FailingLeader(unreadable_until=BASE.timestamp() + 3000)
    publisher = MemoryPublisher(settings)
    service = AlertService(RULES, publisher, store, settings)
    service.handle(IAM_RULE, failed_sign_in(IAM_RULE, "a", 0, 0, 0), at(0))
    service.handle(IAM_RULE, failed_sign_in(IAM_RULE, "b", 10, 0, 0), at(10))
    service.handle(IAM_RULE, failed_sign_in(IAM_RULE, "c", 995, 1, 1), at(995))  # spends the window
    # The summary is held (the topic's window is spent): saving that decision fails, and the
    # leading event's item stays unreadable while the storm digests the held summary and ends.
    store.fail_save = True
    clock = 1000.0
    while (store.due(float("inf"), clock) or clock < 3000) and clock < 4 * 3600:
        service.tick(at(clock))
        clock += 60
    # Then the topic's window has room again: the retry must not admit what the storm counted.
    kinds = [n.kind for n in publisher.sent]
    assert KIND_SUMMARY not in kinds, kinds
    assert KIND_STORM in kinds
    assert sum(n.count for n in publisher.sent if n.kind in (KIND_ALERT, KIND_STORM)) == 3


def test_the_scheduler_takes_the_earliest_due_first_and_stops_before_its_deadline() -> None:
    config = simulation_settings(topic_rate=Threshold(1000, 5))
    store = MemoryStore()
    publisher = MemoryPublisher(config)
    service = AlertService(RULES, publisher, store, config)
    # 40 incidents (users z39 .. z00, so key order is the reverse of due order), 2 events each.
    for n in range(40):
        user = f"z{39 - n:02d}"
        for k in range(2):
            arrival = iam_failure(f"{user}-{k}", 5.0 * n + k, user=user, ip=f"192.0.2.{n + 1}")
            service.handle(arrival.rule_id, arrival.envelope, at(arrival.at))
    first_summary = len(publisher.sent)
    # Each request takes a simulated half second of a 30-second invocation.
    runs = 0
    while store.due(float("inf"), 0.0) and runs < 20:
        runs += 1
        start = store.calls

        def remaining(start: int = start) -> float:
            return 30.0 - 0.5 * (store.calls - start)

        service.tick(at(1200.0 + 60.0 * runs), remaining=remaining)
        assert remaining() > 0, "the run ended before the invocation's deadline"
    summaries = publisher.sent[first_summary:]
    assert runs > 1, "the backlog took several runs"
    assert [n.principal for n in summaries] == [f"z{39 - n:02d}" for n in range(40)], (
        "earliest window first"
    )
    assert sum(n.count for n in summaries) == 40
    assert isinstance(service.metrics, MemoryMetrics)
    assert service.metrics.total("SchedulerDeferred") > 0
