"""Invariants of the alerting service over random event streams (hypothesis).

Nothing is lost, nothing is sent twice, one alert per incident window, and replay is
deterministic, whatever the users, IPs, times, duplicate deliveries and rate limits. Plus
deterministic regression tests for the ways those invariants were found to break.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.core.config import Settings, Threshold
from chalicelib.core.errors import PublishError
from chalicelib.core.notifications import (
    KIND_ALERT,
    KIND_ESCALATION,
    KIND_STORM,
    KIND_SUMMARY,
    Notification,
)
from chalicelib.core.rules import RuleSet, load_bundle
from chalicelib.core.state import MemoryStore
from chalicelib.pipeline.service import AlertService, MemoryPublisher
from mfawatch.replay.readers import ReadStats
from mfawatch.replay.runner import TimedEvent, replay_timed
from tests.conftest import examples
from tests.support.properties import BASE, IAM_RULE, ROOT_RULE, failed_sign_in

RULES: RuleSet = load_bundle()

COUNTED = (KIND_ALERT, KIND_SUMMARY, KIND_STORM)


# Every publish call, thread-safe: chalicelib.pipeline.service.MemoryPublisher.published.
RecordingPublisher = MemoryPublisher


# --- invariants ------------------------------------------------------------------------------


def assert_counts_add_up(notifications: Iterable[Notification], distinct: dict[str, int]) -> None:
    """(a) per rule, alert + summary + storm counts == distinct matched events."""
    counts: Counter[str] = Counter()
    for n in notifications:
        if n.kind in COUNTED:
            counts[n.rule_id] += n.count
    assert dict(counts) == distinct


def assert_nothing_sent_twice(notifications: Sequence[Notification]) -> None:
    """(b) no notification id is published twice."""
    ids = Counter(n.id for n in notifications)
    assert {i: c for i, c in ids.items() if c > 1} == {}
    assert "" not in ids


def assert_each_event_covered_once(notifications: Iterable[Notification]) -> None:
    """(c) an event id is in at most one alert/summary/storm (when the ids are not truncated)."""
    seen: Counter[tuple[str, str]] = Counter()
    for n in notifications:
        if n.kind in COUNTED and len(n.event_ids) == n.count:
            seen.update((n.rule_id, e) for e in n.event_ids)
    assert {k: c for k, c in seen.items() if c > 1} == {}


def assert_one_alert_per_window(notifications: Iterable[Notification]) -> None:
    """(d) alerts of one dedup key are at least a window apart in event time."""
    alerts: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    for n in notifications:
        if n.kind == KIND_ALERT:
            alerts[(n.rule_id, n.dedup_key)].append(n.first_seen)
    for (rule_id, _), times in alerts.items():
        window = timedelta(minutes=RULES.get(rule_id).window_minutes)
        times.sort()
        assert all(b - a >= window for a, b in itertools.pairwise(times)), times


# --- strategies --------------------------------------------------------------------------------

events = st.lists(
    st.tuples(
        st.sampled_from([IAM_RULE, IAM_RULE, ROOT_RULE]),
        st.integers(0, 5),  # user
        st.integers(0, 3),  # source IP
        st.integers(0, 3 * 3600),  # seconds after 09:00
        st.integers(0, 2),  # extra (duplicate) deliveries
    ),
    min_size=1,
    max_size=40,
)
limits = st.builds(
    lambda topic, topic_m, principal, principal_m: Settings(
        topic_rate=Threshold(topic, topic_m), principal_rate=Threshold(principal, principal_m)
    ),
    st.integers(1, 25),
    st.sampled_from([1.0, 5.0, 10.0]),
    st.integers(1, 8),
    st.sampled_from([1.0, 5.0]),
)
PROPERTIES = settings(
    max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def _stream(spec: list[tuple[str, int, int, int, int]], duplicates: bool) -> list[TimedEvent]:
    timed: list[TimedEvent] = []
    for index, (rule_id, user, ip, offset, extra) in enumerate(spec):
        envelope = failed_sign_in(rule_id, f"evt-{index:03d}", offset, user, ip)
        moment = BASE + timedelta(seconds=offset)
        timed += [TimedEvent(moment, f"#{index}", envelope)] * (1 + (extra if duplicates else 0))
    return sorted(timed, key=lambda event: event.moment)


def _distinct(spec: list[tuple[str, int, int, int, int]]) -> dict[str, int]:
    return dict(Counter(rule_id for rule_id, *_ in spec))


@PROPERTIES
@given(spec=events, config=limits)
def test_replay_accounts_for_every_event_once(
    spec: list[tuple[str, int, int, int, int]], config: Settings
) -> None:
    result = replay_timed(_stream(spec, duplicates=True), RULES, ReadStats(), config)
    assert result.distinct_matched_by_rule == _distinct(spec)
    assert_counts_add_up(result.notifications, result.distinct_matched_by_rule)
    assert_nothing_sent_twice(result.notifications)
    assert_each_event_covered_once(result.notifications)
    assert_one_alert_per_window(result.notifications)
    assert len(result.sent_at) == len(result.notifications)


@PROPERTIES
@given(spec=events, config=limits)
def test_replay_is_deterministic_and_ignores_duplicate_deliveries(
    spec: list[tuple[str, int, int, int, int]], config: Settings
) -> None:
    once = replay_timed(_stream(spec, duplicates=False), RULES, ReadStats(), config)
    again = replay_timed(_stream(spec, duplicates=False), RULES, ReadStats(), config)
    duplicated = replay_timed(_stream(spec, duplicates=True), RULES, ReadStats(), config)
    view = [(n.id, n.to_json()) for n in once.notifications]
    assert [(n.id, n.to_json()) for n in again.notifications] == view
    assert [(n.id, n.to_json()) for n in duplicated.notifications] == view
    assert duplicated.sent_at == once.sent_at


def _drive(
    service: AlertService,
    deliveries: list[tuple[float, dict[str, Any]]],
    tick_every: float = 60.0,
) -> None:
    """Deliver ``(processing time, event)`` in processing-time order with a scheduler tick
    every ``tick_every`` seconds, as Lambda and the one-minute schedule would; then flush."""
    clock = BASE.timestamp()
    for now, event in sorted(deliveries, key=lambda d: d[0]):
        while clock + tick_every <= now:
            clock += tick_every
            service.tick(datetime.fromtimestamp(clock, UTC))
        service.handle(str(event["rule"]), event["envelope"], datetime.fromtimestamp(now, UTC))
    end = max(now for now, _ in deliveries)
    service.flush(datetime.fromtimestamp(end + 4 * 3600, UTC))


@PROPERTIES
@given(
    spec=events,
    config=limits,
    redelivery=st.lists(st.integers(1, 6 * 3600), min_size=120, max_size=120),
)
def test_service_with_late_duplicate_deliveries_and_a_minute_scheduler(
    spec: list[tuple[str, int, int, int, int]], config: Settings, redelivery: list[int]
) -> None:
    """Events arrive in time order; their duplicates arrive up to 6 hours later (Lambda's
    asynchronous retry horizon), interleaved with other events and scheduler ticks."""
    publisher = RecordingPublisher()
    service = AlertService(RULES, publisher, MemoryStore(), config)
    deliveries: list[tuple[float, dict[str, Any]]] = []
    delays = iter(redelivery)
    for index, (rule_id, user, ip, offset, extra) in enumerate(spec):
        event = {
            "rule": rule_id,
            "envelope": failed_sign_in(rule_id, f"evt-{index:03d}", offset, user, ip),
        }
        t = BASE.timestamp() + offset
        deliveries.append((t, event))
        deliveries += [(t + next(delays), event) for _ in range(extra)]
    _drive(service, deliveries)
    assert_counts_add_up(publisher.published, _distinct(spec))
    assert_nothing_sent_twice(publisher.published)
    assert_each_event_covered_once(publisher.published)
    assert_one_alert_per_window(publisher.published)


@PROPERTIES
@given(
    spec=events,
    config=limits,
    lag=st.lists(st.integers(0, 600), min_size=40, max_size=40),
)
def test_service_with_delivery_lag_loses_nothing(
    spec: list[tuple[str, int, int, int, int]], config: Settings, lag: list[int]
) -> None:
    """CloudTrail reaches EventBridge minutes after the event: events arrive up to 10 minutes
    late and out of order, while the scheduler keeps closing windows every minute."""
    publisher = RecordingPublisher()
    service = AlertService(RULES, publisher, MemoryStore(), config)
    deliveries = [
        (
            BASE.timestamp() + offset + lag[index],
            {
                "rule": rule_id,
                "envelope": failed_sign_in(rule_id, f"evt-{index:03d}", offset, user, ip),
            },
        )
        for index, (rule_id, user, ip, offset, _) in enumerate(spec)
    ]
    _drive(service, deliveries)
    assert_counts_add_up(publisher.published, _distinct(spec))
    assert_nothing_sent_twice(publisher.published)
    assert_each_event_covered_once(publisher.published)


# --- deterministic cases ---------------------------------------------------------------------


def _at(seconds: float) -> datetime:
    return BASE + timedelta(seconds=seconds)


def test_incident_alert_then_summary_with_exact_count_and_times() -> None:
    publisher = RecordingPublisher()
    service = AlertService(RULES, publisher, MemoryStore())
    for i in range(13):
        event = failed_sign_in(IAM_RULE, f"e{i}", 8 + 18 * i, user=0, ip=6)
        service.handle(IAM_RULE, event, _at(8 + 18 * i))
    assert [n.kind for n in publisher.published] == [KIND_ALERT, KIND_ESCALATION]
    assert publisher.published[0].title == "Failed MFA sign-in for IAM user u0 from 203.0.113.7"
    assert publisher.published[1].title == (
        "Possible MFA brute force / fatigue: 10 failed MFA attempts for u0 in 5 minutes"
    )
    # The window ends at 8 + 900; the scheduler looks once the settle time (the lease) has
    # passed, so that repeats still being written are in the summary.
    settle = Settings().lease_seconds
    assert service.tick(_at(8 + 899 + settle)) == []
    (summary,) = service.tick(_at(8 + 900 + settle))
    assert summary.kind == KIND_SUMMARY and summary.count == 12
    assert summary.event_ids == tuple(f"e{i}" for i in range(1, 13))
    assert summary.summary.startswith(
        "12 more failed MFA attempts for u0 from 203.0.113.7 between 09:00:26 and 09:03:44 UTC"
    )
    assert service.tick(_at(8 + 960 + 2 * settle)) == []


def test_flush_sends_the_digest_of_summaries_held_at_the_end() -> None:
    """A pass of ``flush`` can hold every summary in a storm that it opened itself: the digest,
    and the repeats it counts, still come out of replay."""
    publisher = RecordingPublisher()
    config = Settings(topic_rate=Threshold(1, 5), principal_rate=Threshold(100, 5))
    service = AlertService(RULES, publisher, MemoryStore(), config)
    service.handle(IAM_RULE, failed_sign_in(IAM_RULE, "a", 0, 0, 0), _at(0))
    service.handle(IAM_RULE, failed_sign_in(IAM_RULE, "b", 1, 0, 0), _at(1))
    assert [n.kind for n in publisher.published] == [KIND_ALERT]
    service.flush(_at(2))  # end of replay: the summary of "b" is held by the empty topic bucket
    assert [(n.kind, n.event_ids) for n in publisher.published] == [
        (KIND_ALERT, ("a",)),
        (KIND_STORM, ("b",)),
    ]


def test_late_repeat_after_the_window_was_summarized_is_not_lost() -> None:
    """An event of a window that the scheduler already summarized (delivered a few minutes late,
    as CloudTrail -> EventBridge often is) makes a late batch instead of being lost."""
    publisher = RecordingPublisher()
    service = AlertService(RULES, publisher, MemoryStore())
    service.handle(IAM_RULE, failed_sign_in(IAM_RULE, "a", 0, 0, 0), _at(0))
    service.handle(IAM_RULE, failed_sign_in(IAM_RULE, "b", 60, 0, 0), _at(60))
    assert [n.kind for n in service.tick(_at(1000))] == [KIND_SUMMARY]
    # Event time 09:14:50 (inside the window), delivered at 09:17:00.
    service.handle(IAM_RULE, failed_sign_in(IAM_RULE, "late", 890, 0, 0), _at(1020))
    service.tick(_at(2000))
    service.flush(_at(10_000))
    assert_counts_add_up(publisher.published, {IAM_RULE: 3})
    assert_nothing_sent_twice(publisher.published)


def test_a_late_batch_in_the_same_second_gets_its_own_summary_id() -> None:
    """CloudTrail times have one-second resolution: a late repeat stamped in the same second as
    the batch already summarized makes a second summary with its own id."""
    publisher = RecordingPublisher()
    service = AlertService(RULES, publisher, MemoryStore())
    service.handle(IAM_RULE, failed_sign_in(IAM_RULE, "a", 0, 0, 0), _at(0))
    service.handle(IAM_RULE, failed_sign_in(IAM_RULE, "b", 60, 0, 0), _at(60))
    service.tick(_at(1000))
    service.handle(IAM_RULE, failed_sign_in(IAM_RULE, "c", 60, 0, 0), _at(1020))  # late, same s
    service.tick(_at(1200))
    service.flush(_at(10_000))
    summaries = [n for n in publisher.published if n.kind == KIND_SUMMARY]
    assert [n.event_ids for n in summaries] == [("b",), ("c",)]
    assert_nothing_sent_twice(publisher.published)


class _ReentrantPublisher(RecordingPublisher):
    """Simulates a concurrent duplicate delivery arriving while the first one is publishing."""

    def __init__(self) -> None:
        super().__init__()
        self.during_publish: Any = None

    def publish(self, notification: Notification, destination: str) -> None:
        hook, self.during_publish = self.during_publish, None
        if hook is not None:
            hook()
        super().publish(notification, destination)


def test_duplicate_delivery_during_publish_does_not_publish_again() -> None:
    """Between saving the decision and the outputs' confirmations, a concurrent duplicate
    delivery finds the claim leased (in progress) and publishes nothing."""
    publisher = _ReentrantPublisher()
    service = AlertService(RULES, publisher, MemoryStore())
    event = failed_sign_in(IAM_RULE, "a", 0, 0, 0)
    duplicate_result: list[Any] = []

    def duplicate_delivery() -> None:
        try:
            duplicate_result.append(service.handle(IAM_RULE, event, _at(1)))
        except Exception as exc:
            duplicate_result.append(exc)

    publisher.during_publish = duplicate_delivery
    service.handle(IAM_RULE, event, _at(0))
    assert [n.id for n in publisher.published] == [f"alert:{IAM_RULE}:a"]


def test_failed_destination_is_retried_without_resending_or_recounting() -> None:
    class Flaky(RecordingPublisher):
        failures = 1

        def publish(self, notification: Notification, destination: str) -> None:
            if self.failures:
                self.failures -= 1
                raise PublishError("SNS throttled")
            super().publish(notification, destination)

    publisher = Flaky()
    service = AlertService(RULES, publisher, MemoryStore())
    event = failed_sign_in(IAM_RULE, "a", 0, 0, 0)
    try:
        service.handle(IAM_RULE, event, _at(0))
    except PublishError:
        pass
    else:  # pragma: no cover
        raise AssertionError("a failed publish must raise so that Lambda retries")
    service.handle(IAM_RULE, event, _at(30))  # Lambda's retry
    service.handle(IAM_RULE, event, _at(40))  # a late duplicate
    service.handle(IAM_RULE, failed_sign_in(IAM_RULE, "b", 50, 0, 0), _at(50))
    service.flush(_at(100))
    assert [(n.kind, n.count) for n in publisher.published] == [
        (KIND_ALERT, 1),
        (KIND_SUMMARY, 1),
    ]
