"""Offline replay: archives in, exactly what production would have published out.

Replay wraps bare records in the envelope EventBridge would deliver, matches every rule's
deployed pattern with our EventBridge engine, and hands each match to the same
:class:`service.AlertService` the Lambda handlers use, with in-memory adapters and a virtual
clock taken from event times.
"""

from __future__ import annotations

from collections.abc import Iterable
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


@dataclass
class ReplayResult:
    """What a replay saw and what it would have published."""

    notifications: list[Notification]
    stats: ReadStats
    matched: int = 0
    matched_by_rule: dict[str, int] = field(default_factory=dict)


def replay_events(events: Iterable[SourcedEvent], rules: RuleSet, stats: ReadStats) -> ReplayResult:
    """Replay events in event-time order through the production decision path."""
    publisher = MemoryPublisher()
    service = AlertService(rules, publisher)
    matchers = [(rule, compile_pattern(rule.event_pattern)) for rule in rules]

    timed: list[tuple[datetime, int, dict[str, Any]]] = []
    for sequence, sourced in enumerate(events):
        try:
            envelope = as_envelope(sourced.event)
            moment = parse_event(envelope).event_time
        except EventParseError as exc:
            stats.problem(f"{sourced.origin}: {exc}", file_level=False)
            continue
        timed.append((moment, sequence, envelope))
    timed.sort(key=lambda item: (item[0], item[1]))

    result = ReplayResult(notifications=publisher.sent, stats=stats)
    for moment, _, envelope in timed:
        for rule, matcher in matchers:
            if matcher.matches(envelope):
                result.matched += 1
                result.matched_by_rule[rule.id] = result.matched_by_rule.get(rule.id, 0) + 1
                service.handle(rule.id, envelope, now=moment)
    return result
