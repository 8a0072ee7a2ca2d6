"""Offline replay: archives in, exactly what production would have published out.

Replay wraps bare records in the envelope EventBridge would deliver, matches every rule's
deployed pattern with our EventBridge engine, and hands each match to the same
:class:`service.AlertService` the Lambda handlers use, with in-memory adapters and a virtual
clock taken from event times.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .errors import EventParseError
from .eventpattern import compile_pattern
from .notifications import Notification
from .readers import ReadStats, SourcedEvent
from .records import as_envelope, parse_event
from .rules import RuleSet
from .service import AlertService, MemoryPublisher


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
    matched: int = 0
    matched_by_rule: dict[str, int] = field(default_factory=dict)


def timed(events: Iterable[SourcedEvent], stats: ReadStats) -> Iterator[TimedEvent]:
    """Envelope and event time of each event; events without a usable time are counted."""
    for sourced in events:
        try:
            envelope = as_envelope(sourced.event)
            moment = parse_event(envelope).event_time
        except EventParseError as exc:
            stats.problem(f"{sourced.origin}: {exc}", file_level=False)
            continue
        yield TimedEvent(moment, sourced.origin, envelope)


def in_time_order(events: Iterable[SourcedEvent], stats: ReadStats) -> list[TimedEvent]:
    """All events sorted by event time (stable: ties keep reading order)."""
    return sorted(timed(events, stats), key=lambda event: event.moment)


def replay_timed(events: Iterable[TimedEvent], rules: RuleSet, stats: ReadStats) -> ReplayResult:
    """Replay events that are already in event-time order through the production decision path."""
    publisher = MemoryPublisher()
    service = AlertService(rules, publisher)
    matchers = [(rule, compile_pattern(rule.event_pattern)) for rule in rules]
    result = ReplayResult(notifications=publisher.sent, stats=stats)
    for event in events:
        for rule, matcher in matchers:
            if matcher.matches(event.envelope):
                result.matched += 1
                result.matched_by_rule[rule.id] = result.matched_by_rule.get(rule.id, 0) + 1
                service.handle(rule.id, event.envelope, now=event.moment)
    return result


def replay_events(
    events: Iterable[SourcedEvent], rules: RuleSet, stats: ReadStats
) -> ReplayResult:
    """Replay events in any order: sort them by event time, then :func:`replay_timed`."""
    return replay_timed(in_time_order(events, stats), rules, stats)
