"""Offline replay: archives in, exactly what production would have published out.

Replay wraps bare records in the envelope EventBridge would deliver, matches every rule's
deployed pattern with our EventBridge engine, and hands each match to the same
:class:`service.AlertService` the Lambda handlers use, with an in-memory store and publisher and a
virtual clock taken from event times: before each event, whatever fell due by then (summaries,
storm digests) is sent, as the scheduled handler would; at the end, everything still open is
flushed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from chalicelib.core.config import Settings
from chalicelib.core.errors import EventParseError
from chalicelib.core.notifications import Notification
from chalicelib.core.records import as_envelope, parse_event, record_event_id, replay_time
from chalicelib.core.rules import Rule, RuleSet
from chalicelib.core.state import MemoryStore
from chalicelib.core.suppressions import Suppressions
from chalicelib.pipeline.service import AlertService, MemoryPublisher
from mfawatch.patterns.engine import compile_pattern
from mfawatch.replay.readers import ReadStats, SourcedEvent


@dataclass(frozen=True)
class TimedEvent:
    """An event ready for replay: its envelope and its event time (the virtual clock)."""

    moment: datetime
    origin: str
    envelope: dict[str, Any]


@dataclass
class ReplayResult:
    """What a replay saw and what it would have published."""

    notifications: list[Notification]
    stats: ReadStats
    sent_at: list[datetime] = field(default_factory=list)
    """The virtual time each notification went out (aligned with ``notifications``)."""
    deliveries: list[tuple[str, Notification]] = field(default_factory=list)
    """Every (output, notification) published, in order (what ``--output sns`` shows)."""
    matched: int = 0
    matched_by_rule: dict[str, int] = field(default_factory=dict)
    distinct_matched_by_rule: dict[str, int] = field(default_factory=dict)
    suppressions: tuple[str, ...] = ()
    """The ids of the suppressions the replay applied."""
    suppressed_by: dict[str, int] = field(default_factory=dict)
    """Matched events each suppression covered at their event time (by id; unused ones absent)."""


def timed(events: Iterable[SourcedEvent], stats: ReadStats) -> Iterator[TimedEvent]:
    """Envelope and event time of each event; events without a usable time are counted."""
    for sourced in events:
        try:
            envelope = as_envelope(sourced.event)
            moment = replay_time(envelope)
        except EventParseError as exc:
            stats.problem(f"{sourced.origin}: {exc}", file_level=False)
            continue
        yield TimedEvent(moment, sourced.origin, envelope)


def replay_timed(
    events: Iterable[TimedEvent],
    rules: RuleSet,
    stats: ReadStats,
    settings: Settings | None = None,
    suppressions: Suppressions | None = None,
) -> ReplayResult:
    """Replay events that are already in event-time order through the production decision path.

    ``suppressions`` apply as in Lambda (at the event time); the result counts, per suppression,
    the matched events of alert rules it covered (``suppressed_by``).
    """
    publisher = MemoryPublisher(settings)
    store = MemoryStore()
    suppressions = suppressions if suppressions is not None else Suppressions()
    service = AlertService(
        rules, publisher, store, settings or Settings(), suppressions=suppressions
    )
    matchers = [(rule, compile_pattern(rule.event_pattern)) for rule in rules]
    result = ReplayResult(
        notifications=publisher.sent,
        stats=stats,
        deliveries=publisher.deliveries,
        suppressions=tuple(s.id for s in suppressions),
    )
    seen: dict[str, set[str]] = {}
    last: datetime | None = None

    def stamp(moment: datetime) -> None:
        result.sent_at.extend([moment] * (len(publisher.sent) - len(result.sent_at)))

    for event in events:
        _run_due(service, store, until=event.moment, stamp=stamp)
        last = event.moment
        for rule, matcher in matchers:
            if matcher.matches(event.envelope):
                result.matched += 1
                result.matched_by_rule[rule.id] = result.matched_by_rule.get(rule.id, 0) + 1
                event_id = record_event_id(event.envelope.get("detail") or {})
                seen.setdefault(rule.id, set()).add(event_id)
                if suppressions and rule.mode == "alert":
                    _count_suppressed(result, suppressions, rule, event)
                service.handle(rule.id, event.envelope, now=event.moment)
                stamp(event.moment)
    if last is not None:
        _run_due(service, store, until=last, stamp=stamp)
        service.flush(last)
        stamp(last)
    result.distinct_matched_by_rule = {rule_id: len(ids) for rule_id, ids in seen.items()}
    return result


def _count_suppressed(
    result: ReplayResult, suppressions: Suppressions, rule: Rule, event: TimedEvent
) -> None:
    """Count the event against the suppression that covers it (as its alert would be)."""
    try:
        record = parse_event(event.envelope)
    except EventParseError:
        return  # the service reports it
    found = suppressions.matching(record, rule.id, rule.severity, event.moment.timestamp())
    if found is not None:
        result.suppressed_by[found.id] = result.suppressed_by.get(found.id, 0) + 1


def _run_due(
    service: AlertService, store: MemoryStore, until: datetime, stamp: Callable[[datetime], None]
) -> None:
    """Run the scheduler at each virtual time something falls due, up to ``until``.

    Production's scheduled handler runs every minute; replay runs it at the exact due times, so a
    summary is stamped with the end of its window rather than the next event's time.
    """
    previous = -math.inf
    for _ in range(10_000):  # a bound, not a limit met in practice: each tick settles its keys
        due = store.next_due()
        if due is None or due > until.timestamp():
            return
        at = max(due, previous)  # the clock never runs backwards
        moment = datetime.fromtimestamp(at, UTC)
        service.tick(moment)
        stamp(moment)
        previous = at
