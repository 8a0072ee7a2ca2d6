"""The one place where decisions meet side effects. The Lambda handlers and replay both call it.

Data flows one way: raw event -> :func:`records.parse_event` -> decision -> notification ->
``publisher.publish``. The publisher is injected: SNS in Lambda, a list in replay.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from .notifications import Notification, alert_for
from .records import parse_event
from .rules import RuleSet

logger = logging.getLogger(__name__)


class Publisher(Protocol):
    """Where notifications go. Raises :class:`errors.PublishError` when delivery failed."""

    def publish(self, notification: Notification) -> None: ...


class MemoryPublisher:
    """Collects notifications in order (replay, tests)."""

    def __init__(self) -> None:
        self.sent: list[Notification] = []

    def publish(self, notification: Notification) -> None:
        self.sent.append(notification)


class AlertService:
    """Turns matched events into published notifications."""

    def __init__(self, rules: RuleSet, publisher: Publisher) -> None:
        self.rules = rules
        self._publisher = publisher

    def handle(self, rule_id: str, event: Mapping[str, Any], now: datetime) -> list[Notification]:
        """Process one event that EventBridge (or replay) matched to ``rule_id``.

        ``now`` is the processing time: the wall clock in Lambda, the event time in replay.
        Returns what was published. Raises :class:`errors.EventParseError` for an event that is
        not a CloudTrail sign-in record and :class:`errors.PublishError` when publishing failed.
        """
        rule = self.rules.get(rule_id)
        record = parse_event(event)
        if rule.mode != "alert":
            return []
        notification = alert_for(rule, record)
        self._publisher.publish(notification)
        logger.info(
            "rule=%s event_id=%s dedup_key=%s kind=%s published at %s",
            rule.id,
            record.event_id,
            notification.dedup_key,
            notification.kind,
            now.isoformat(),
        )
        return [notification]
